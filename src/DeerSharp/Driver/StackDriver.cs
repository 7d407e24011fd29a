using System.Diagnostics;
using System.Globalization;

namespace DeerSharp.Driver;

/// <summary>Stacks of layers (PyTorch's num_layers): each layer through <see cref="SolveDriver"/>, its outputs the next layer's inputs.</summary>
internal static class StackDriver
{
    /// <summary>Solves the layers one after another, each over the whole sequence; a layer that fails stops the stack.</summary>
    internal static SolveResult<T> Solve<TCell, T>(this StackedCells<TCell, T> stack, ReadOnlySpan<T> inputs, int batchSize, int length, T[]? initialStates,
        SolveOptions? options, T[][]? warmStarts = null)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        IReadOnlyList<TCell> layers = stack.Layers;
        long statesPerLayer = 0;
        if (initialStates is not null)
        {
            long expected = layers.Sum(l => (long)batchSize * l.StateSize);
            Require.Length(initialStates, expected, nameof(initialStates), $"[{layers.Count}, {batchSize}, S]");
        }

        var clock = Stopwatch.StartNew();
        var results = new List<SolveResult<T>>(layers.Count);
        T[]? layerInputs = null;
        for (int k = 0; k < layers.Count; k++)
        {
            TCell layer = layers[k];
            ReadOnlySpan<T> h0 = initialStates is null ? default : initialStates.AsSpan((int)statesPerLayer, batchSize * layer.StateSize);
            statesPerLayer += (long)batchSize * layer.StateSize;
            ReadOnlySpan<T> warm = warmStarts is null ? default : warmStarts[k];
            SolveResult<T> result = SolveDriver.Solve(layer, k == 0 ? inputs : layerInputs, batchSize, length, h0, warm, options, layer: k);
            results.Add(result);
            if (!result.Converged)
            {
                break;
            }

            // The next layer only reads these: no copy when the whole state is the output.
            layerInputs = result.OutputSize == result.StateSize ? result.States : result.Outputs();
        }

        clock.Stop();
        SolveResult<T> top = results[^1];
        SolveResult<T>? failed = results.FirstOrDefault(r => !r.Converged);
        string message = failed is null || layers.Count == 1
            ? (failed ?? top).Message
            : string.Create(CultureInfo.InvariantCulture, $"Layer {results.IndexOf(failed)} of {layers.Count}: {failed.Message}");
        return new SolveResult<T>(top.States, batchSize, length, top.StateSize, top.OutputSize, top.Method,
            results.Sum(r => r.Iterations), failed?.Status ?? SolveStatus.Converged, message,
            [.. results.SelectMany(r => r.ResidualHistory)], results.Max(r => r.MaxResidual), clock.Elapsed, results,
            results.Sum(r => r.FallbackSequences), results.Select(r => r.FallbackReason).FirstOrDefault(r => r is not null),
            results.Max(r => r.Windows))
        {
            // Where the stack ran: its layers' device when they agree (an Auto solve may put small layers on the CPU).
            Device = results.Select(r => r.Device).Distinct().Count() == 1 ? results[0].Device : ComputeDevice.Auto,
        };
    }

    /// <summary>
    /// Gradients through a stack, top layer first. Generic over the differentiable cell type, so every layer's adjoint
    /// runs on the struct itself: no cast to the interface, no interface call per step.
    /// </summary>
    internal static GradientResult<T> Gradient<TCell, T>(this StackedCells<TCell, T> stack, ReadOnlySpan<T> inputs, int batchSize, int length,
        ReadOnlySpan<T> outputCotangent, T[]? initialStates, SolveOptions? options, GradientOptions? gradientOptions, SolveResult<T>? solved = null)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        IReadOnlyList<TCell> layers = stack.Layers;
        if (initialStates is not null)
        {
            Require.Length(initialStates, layers.Sum(l => (long)batchSize * l.StateSize), nameof(initialStates), $"[{layers.Count}, {batchSize}, S]");
        }

        // Forward, keeping every layer's inputs.
        var layerInputs = new T[layers.Count][];
        layerInputs[0] = inputs.ToArray();
        var offsets = new int[layers.Count];
        for (int k = 1; k < layers.Count; k++)
        {
            offsets[k] = offsets[k - 1] + batchSize * layers[k - 1].StateSize;
        }

        SolveResult<T> top = solved ?? stack.Solve(inputs, batchSize, length, initialStates, GradientDriver.ForwardOptions(options ?? SolveOptions.Default));
        if (!top.Converged)
        {
            throw new InvalidOperationException($"The forward solve did not converge, so there is no solution to differentiate at: {top.Message}");
        }

        for (int k = 1; k < layers.Count; k++)
        {
            layerInputs[k] = top.Layers![k - 1].Outputs();
        }

        // Backward, top down.
        var parameters = new T[layers.Count][];
        var initialGradients = new T[offsets[^1] + batchSize * layers[^1].StateSize];
        T[] cotangent = outputCotangent.ToArray();
        AdjointMethod method = AdjointMethod.Sequential;
        int windows = 1;
        var devices = new HashSet<ComputeDevice>();
        for (int k = layers.Count - 1; k >= 0; k--)
        {
            ReadOnlySpan<T> h0 = initialStates is null ? default : initialStates.AsSpan(offsets[k], batchSize * layers[k].StateSize);
            var r = GradientDriver.Gradient(layers[k], layerInputs[k], batchSize, length, cotangent, h0, options, gradientOptions, k,
                top.Layers![k]);
            parameters[k] = r.Parameters;
            r.InitialStates.CopyTo(initialGradients.AsSpan(offsets[k]));
            cotangent = r.Inputs;
            method = r.Method;
            windows = Math.Max(windows, r.Windows);
            devices.Add(r.Device);
        }

        return new GradientResult<T>(top, parameters, cotangent, initialGradients, method, windows,
            devices.Count == 1 ? devices.First() : ComputeDevice.Auto);
    }
}
