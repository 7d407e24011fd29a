using System.Diagnostics;
using System.Globalization;
using System.Numerics;
using DeerSharp.Solvers;

namespace DeerSharp.Cells;

/// <summary>
/// Layers of the same cell type stacked as in PyTorch's num_layers: layer k+1 reads layer k's outputs.
/// Each layer is solved over the whole sequence before the next one starts.
/// </summary>
public sealed class StackedCells<TCell, T>
    where TCell : IRecurrentCell<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly TCell[] _layers;

    /// <summary>Stacks <paramref name="layers"/>, bottom first; each layer's InputSize must equal the previous layer's OutputSize.</summary>
    public StackedCells(params TCell[] layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        if (layers.Length == 0)
        {
            throw new ArgumentException("A stack needs at least one layer.", nameof(layers));
        }

        for (int k = 1; k < layers.Length; k++)
        {
            if (layers[k].InputSize != layers[k - 1].OutputSize)
            {
                throw new ArgumentException(
                    string.Create(CultureInfo.InvariantCulture,
                        $"Layer {k} reads {layers[k].InputSize} inputs, but layer {k - 1} outputs {layers[k - 1].OutputSize}."),
                    nameof(layers));
            }
        }

        _layers = (TCell[])layers.Clone();
    }

    /// <summary>The layers, bottom first.</summary>
    public IReadOnlyList<TCell> Layers => _layers;

    internal SolveResult<T> Solve(ReadOnlySpan<T> inputs, int batchSize, int length, T[]? initialStates, SolveOptions? options)
    {
        long statesPerLayer = 0;
        if (initialStates is not null)
        {
            long expected = _layers.Sum(l => (long)batchSize * l.StateSize);
            Require.Length(initialStates, expected, nameof(initialStates), $"[{_layers.Length}, {batchSize}, S]");
        }

        var clock = Stopwatch.StartNew();
        var results = new List<SolveResult<T>>(_layers.Length);
        T[]? layerInputs = null;
        for (int k = 0; k < _layers.Length; k++)
        {
            TCell layer = _layers[k];
            ReadOnlySpan<T> h0 = initialStates is null ? default : initialStates.AsSpan((int)statesPerLayer, batchSize * layer.StateSize);
            statesPerLayer += (long)batchSize * layer.StateSize;
            SolveResult<T> result = Solver.Solve(layer, k == 0 ? inputs : layerInputs, batchSize, length, h0, default, options, layer: k);
            results.Add(result);
            if (!result.Converged)
            {
                break;
            }

            layerInputs = result.Outputs();
        }

        clock.Stop();
        SolveResult<T> top = results[^1];
        SolveResult<T>? failed = results.FirstOrDefault(r => !r.Converged);
        string message = failed is null
            ? top.Message
            : string.Create(CultureInfo.InvariantCulture, $"Layer {results.IndexOf(failed)} of {_layers.Length}: {failed.Message}");
        return new SolveResult<T>(top.States, batchSize, length, top.StateSize, top.OutputSize, top.Method,
            results.Sum(r => r.Iterations), failed?.Status ?? SolveStatus.Converged, message,
            [.. results.SelectMany(r => r.ResidualHistory)], results.Max(r => r.MaxResidual), clock.Elapsed, results,
            results.Sum(r => r.FallbackSequences), results.Select(r => r.FallbackReason).FirstOrDefault(r => r is not null),
            results.Max(r => r.Windows));
    }
}
