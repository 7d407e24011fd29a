using System.Numerics;
using DeerSharp.Cells;
using DeerSharp.Scan;

namespace DeerSharp.Solvers;

/// <summary>
/// The backward pass (reference §7): at the solved trajectory, v_t = g_t + J_{t+1}ᵀ v_{t+1} with g_t = ∂L/∂h_t, then
/// ∂L/∂θ = Σ_t (∂f/∂θ)ᵀ v_t, ∂L/∂x_t = (∂f/∂x_t)ᵀ v_t and ∂L/∂h_0 = J_1ᵀ v_1. Nothing is differentiated through the
/// Newton loop: the gradient is BPTT's exactly, whatever method solved the forward pass.
/// </summary>
internal static class Adjoint
{
    internal readonly record struct Result<T>(SolveResult<T> Forward, T[] Parameters, T[] Inputs, T[] InitialStates, AdjointMethod Method)
        where T : unmanaged, IFloatingPointIeee754<T>;

    public static Result<T> Gradient<TCell, T>(TCell cell, ReadOnlySpan<T> inputs, int batchSize, int length, ReadOnlySpan<T> outputCotangent,
        ReadOnlySpan<T> initialState, SolveOptions? options, GradientOptions? gradientOptions, int layer = 0, SolveResult<T>? solved = null)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        options ??= SolveOptions.Default;
        gradientOptions ??= GradientOptions.Default;
        if (!Enum.IsDefined(gradientOptions.Adjoint))
        {
            throw new ArgumentException($"Adjoint must be one of {string.Join(", ", Enum.GetNames<AdjointMethod>())}; it is {(int)gradientOptions.Adjoint}.", nameof(gradientOptions));
        }

        int s = cell.StateSize, d = cell.InputSize, o = cell.OutputSize;
        Require.Length(outputCotangent, (long)batchSize * length * o, nameof(outputCotangent), $"[{batchSize}, {length}, {o}]");
        Require.Finite(outputCotangent, nameof(outputCotangent), batchSize, length, o);
        // A stack passes each layer's solve in, having solved the layers on the way up.
        SolveResult<T> forward = solved ?? Solver.Solve(cell, inputs, batchSize, length, initialState, default, options, layer);
        if (!forward.Converged)
        {
            throw new InvalidOperationException(
                $"The forward solve did not converge, and gradients at a state that is not a solution would be wrong: {forward.Message}");
        }

        AdjointMethod method = gradientOptions.Adjoint switch
        {
            AdjointMethod.Auto => forward.Method == SolveMethod.Sequential ? AdjointMethod.Sequential : AdjointMethod.Scan,
            var m => m,
        };
        int cores = options.MaxDegreeOfParallelism ?? Environment.ProcessorCount;
        var parameters = new T[cell.ParameterCount];
        var dInputs = new T[(long)batchSize * length * d];
        var dInitial = new T[(long)batchSize * s];
        T[] x = inputs.ToArray(), h0 = initialState.IsEmpty ? new T[(long)batchSize * s] : initialState.ToArray(), cot = outputCotangent.ToArray();
        // Each sequence's gradient in its own array, summed in sequence order afterwards: the same bits on every run.
        int inner = batchSize >= cores ? 1 : cores;
        var perSequence = new T[batchSize][];
        Parallel.For(0, batchSize, new ParallelOptions { MaxDegreeOfParallelism = batchSize >= cores ? cores : 1 }, b =>
        {
            var local = new T[parameters.Length];
            Sequence(cell, x.AsSpan(b * length * d, length * d), forward.States.AsSpan(b * length * s, length * s), h0.AsSpan(b * s, s),
                cot.AsSpan(b * length * o, length * o), local, dInputs.AsSpan(b * length * d, length * d), dInitial.AsSpan(b * s, s),
                method, inner, options.CancellationToken);
            perSequence[b] = local;
        });
        foreach (T[] local in perSequence)
        {
            for (int i = 0; i < local.Length; i++)
            {
                parameters[i] += local[i];
            }
        }

        return new Result<T>(forward, parameters, dInputs, dInitial, method);
    }

    private static void Sequence<TCell, T>(TCell cell, ReadOnlySpan<T> x, ReadOnlySpan<T> states, ReadOnlySpan<T> h0, ReadOnlySpan<T> cotangent,
        Span<T> parameters, Span<T> dInputs, Span<T> dInitial, AdjointMethod method, int cores, CancellationToken cancellation)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize, d = cell.InputSize, o = cell.OutputSize, p = cell.ProjectionSize;
        int length = states.Length / s;
        if (length == 0)
        {
            dInitial.Clear();
            return;
        }

        var projections = new T[length * p];
        cell.ProjectInputs(x, projections, length);
        // g_t: the cotangent on the output, zero on the rest of the state (an LSTM's c).
        var g = new T[length * s];
        for (int t = 0; t < length; t++)
        {
            cotangent.Slice(t * o, o).CopyTo(g.AsSpan(t * s, o));
        }

        // previous[t] = h_{t-1}: h0, then the solved states shifted by one step.
        var previous = new T[length * s];
        h0.CopyTo(previous);
        states[..((length - 1) * s)].CopyTo(previous.AsSpan(s));
        if (method == AdjointMethod.Sequential)
        {
            Backpropagate(cell, x, previous, projections, g, parameters, dInputs, dInitial, cancellation);
        }
        else
        {
            ScanAdjoint(cell, x, previous, projections, g, parameters, dInputs, dInitial, cores, cancellation);
        }
    }

    /// <summary>Backpropagation through time: v_t = g_t + J_{t+1}ᵀ v_{t+1}, one vector-Jacobian product per step from the end.</summary>
    private static void Backpropagate<TCell, T>(TCell cell, ReadOnlySpan<T> x, T[] previous, T[] projections, T[] g, Span<T> parameters,
        Span<T> dInputs, Span<T> dInitial, CancellationToken cancellation)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize, d = cell.InputSize, p = cell.ProjectionSize, length = g.Length / s;
        var v = new T[s];
        var carry = new T[s];
        var workspace = new T[cell.BackwardWorkspaceSize(1)];
        for (int t = length - 1; t >= 0; t--)
        {
            if ((t & 4095) == 0)
            {
                cancellation.ThrowIfCancellationRequested();
            }

            for (int i = 0; i < s; i++)
            {
                v[i] = g[t * s + i] + carry[i];
            }

            cell.BackwardBlock(previous.AsSpan(t * s, s), projections.AsSpan(t * p, p), x.Slice(t * d, d), v, carry, dInputs.Slice(t * d, d),
                parameters, workspace, 1);
        }

        carry.CopyTo(dInitial);
    }

    /// <summary>
    /// The adjoint as DEER computes it: every J_t at once, the reverse-time recurrence w_u = J_{T-u}ᵀ w_{u-1} + g_{T-1-u}
    /// (u = T-1-t) by the scan, then all steps' backward products at once, in blocks over the cores.
    /// </summary>
    private static void ScanAdjoint<TCell, T>(TCell cell, ReadOnlySpan<T> x, T[] previous, T[] projections, T[] g, Span<T> parameters,
        Span<T> dInputs, Span<T> dInitial, int cores, CancellationToken cancellation)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize, d = cell.InputSize, p = cell.ProjectionSize, length = g.Length / s, ss = s * s;
        int block = Solver.BlockSteps;
        int blocks = (length + block - 1) / block;
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, cores), CancellationToken = cancellation };

        // 1. Jacobians at the solution, in parallel blocks: J_t = ∂f/∂h at (h_{t-1}, x_t).
        var jacobians = new T[(long)length * ss];
        var next = new T[length * s];
        TCell local = cell;
        Parallel.For(0, blocks, parallel, () => new T[local.BlockWorkspaceSize(block)], (k, _, ws) =>
        {
            int t0 = k * block, count = Math.Min(block, length - t0);
            local.EvaluateBlock(previous.AsSpan(t0 * s, count * s), projections.AsSpan(t0 * p, count * p), next.AsSpan(t0 * s, count * s),
                jacobians.AsSpan(t0 * ss, count * ss), JacobianMode.Full, ws, count);
            return ws;
        }, _ => { });

        // 2. Reverse time and transpose: A'_u = J_{T-u}ᵀ (A'_0 unused: w starts from zero), b'_u = g_{T-1-u}.
        var a = new T[(long)length * ss];
        var b = new T[length * s];
        for (int u = 0; u < length; u++)
        {
            g.AsSpan((length - 1 - u) * s, s).CopyTo(b.AsSpan(u * s, s));
            if (u == 0)
            {
                continue;
            }

            ReadOnlySpan<T> j = jacobians.AsSpan((length - u) * ss, ss);
            Span<T> at = a.AsSpan(u * ss, ss);
            for (int r = 0; r < s; r++)
            {
                for (int c = 0; c < s; c++)
                {
                    at[r * s + c] = j[c * s + r];
                }
            }
        }

        var w = new T[length * s];
        LinearRecurrence.Solve(a, b, new T[s], w, length, s, dense: true, cores);
        var adjoints = new T[length * s];
        for (int t = 0; t < length; t++)
        {
            w.AsSpan((length - 1 - t) * s, s).CopyTo(adjoints.AsSpan(t * s, s));
        }

        // 3. Every step's backward product at once, in a fixed partition of the blocks: each chunk sums its blocks' parameter
        //    gradients in order, and the chunks are summed in order, so the result does not depend on scheduling.
        var stepPrevious = new T[length * s];
        T[] inputsCopy = x.ToArray();
        var inputGradients = new T[length * d];
        int chunks = Math.Min(blocks, 4 * Math.Max(1, cores));
        int parameterCount = parameters.Length;
        var perChunk = new T[chunks][];
        Parallel.For(0, chunks, parallel, c =>
        {
            var ws = new T[local.BackwardWorkspaceSize(block)];
            var sum = new T[parameterCount];
            for (int k = (int)((long)blocks * c / chunks); k < (int)((long)blocks * (c + 1) / chunks); k++)
            {
                int t0 = k * block, count = Math.Min(block, length - t0);
                local.BackwardBlock(previous.AsSpan(t0 * s, count * s), projections.AsSpan(t0 * p, count * p), inputsCopy.AsSpan(t0 * d, count * d),
                    adjoints.AsSpan(t0 * s, count * s), stepPrevious.AsSpan(t0 * s, count * s), inputGradients.AsSpan(t0 * d, count * d),
                    sum, ws, count);
            }

            perChunk[c] = sum;
        });

        foreach (T[] sum in perChunk)
        {
            for (int i = 0; i < sum.Length; i++)
            {
                parameters[i] += sum[i];
            }
        }

        inputGradients.CopyTo(dInputs);
        stepPrevious.AsSpan(0, s).CopyTo(dInitial);
    }
}
