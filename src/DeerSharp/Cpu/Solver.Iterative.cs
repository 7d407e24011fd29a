using System.Runtime.CompilerServices;
using DeerSharp.Engines;
using DeerSharp.Scan;

namespace DeerSharp.Cpu;

internal static partial class Solver
{
    private const int MinimumEvaluationChunk = 256;

    /// <summary>Steps per <see cref="IRecurrentCell{T}.EvaluateBlock"/> call: small enough that the block's gates stay in L1/L2.</summary>
    internal const int BlockSteps = 64;

    /// <summary>
    /// DEER, quasi-DEER and Picard (reference §3-5) on one window, by the one Newton driver (<see cref="NewtonIteration"/>).
    /// Each pass evaluates f (and J) at the current iterate for all t in parallel; the residual of that iterate falls out of
    /// the same pass, and the driver stops only on it, so convergence is only ever declared for an iterate whose residual
    /// was computed. Otherwise it updates: Picard h_t ← f_t; Newton solves h_t = J_t h_{t-1} + (f_t - J_t h^(k)_{t-1}) by one scan.
    /// </summary>
    private static SequenceOutcome SolveIterative<TCell, T>(in TCell cell, SequenceWorkspace<T> ws, int length, ReadOnlySpan<T> warmStart,
        in SolverSettings<T> settings, int sequence, int window)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        InitialIterate(ws, length, cell.StateSize, warmStart, settings);
        var system = new NewtonSystem<TCell, T>(cell, ws, length, settings);
        var outcome = new SequenceOutcome[1];
        NewtonIteration.Run(ref system, settings.Iterations(sequence, window), outcome);
        return outcome[0];
    }

    /// <summary>One sequence's Newton (or Picard) system in a <see cref="SequenceWorkspace{T}"/>: the iterate in States, f and b in Evaluations.</summary>
    private struct NewtonSystem<TCell, T>(TCell cell, SequenceWorkspace<T> ws, int length, SolverSettings<T> settings) : INewtonSystem
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        private readonly JacobianMode _update = settings.UpdateMode;
        private bool _fused;

        public void Linearise(bool last, ReadOnlySpan<bool> active, Span<IterateResidual> residuals)
        {
            // A diagonal update fuses the scan into the evaluation pass: the next iterate lands in Evaluations, and
            // becomes the iterate (by swapping the two arrays) only if this one is neither accepted nor rejected.
            _fused = !last && _update == JacobianMode.Diagonal && !settings.SeparateScan;
            var (max, within, finite) = _fused
                ? EvaluateAndScanDiagonal(cell, ws, length, settings)
                : EvaluateAll(cell, ws, length, last ? JacobianMode.None : _update, settings, newtonTerm: true);
            residuals[0] = new IterateResidual(max, within, finite);
        }

        public readonly void Settle(int sequence)
        {
            // The iterate stays in States, which the engine copies out.
        }

        public readonly void Update(ReadOnlySpan<bool> active)
        {
            int s = cell.StateSize;
            if (_fused)
            {
                (ws.States, ws.Evaluations) = (ws.Evaluations, ws.States);
            }
            else if (_update == JacobianMode.None)
            {
                Array.Copy(ws.Evaluations, ws.States, length * s);
            }
            else if (_update == JacobianMode.Block)
            {
                LinearRecurrence.SolveBlockDiagonal(ws.Jacobians, ws.Evaluations, ws.InitialState, ws.States, length, s,
                    settings.Structure!.Value, settings.MaxDegreeOfParallelism, ws.Scan);
            }
            else
            {
                LinearRecurrence.Solve(ws.Jacobians, ws.Evaluations, ws.InitialState, ws.States, length, s,
                    dense: _update == JacobianMode.Full, settings.MaxDegreeOfParallelism, ws.Scan);
            }
        }
    }

    /// <summary>The starting iterate: the warm start, h0 broadcast, or zeros.</summary>
    private static void InitialIterate<T>(SequenceWorkspace<T> ws, int length, int s, ReadOnlySpan<T> warmStart, in SolverSettings<T> settings)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Span<T> states = ws.States.AsSpan(0, length * s);
        if (!warmStart.IsEmpty)
        {
            warmStart.CopyTo(states);
        }
        else if (settings.InitialGuess == InitialGuess.BroadcastInitialState)
        {
            for (int t = 0; t < length; t++)
            {
                ws.InitialState.AsSpan(0, s).CopyTo(states.Slice(t * s, s));
            }
        }
        else
        {
            states.Clear();
        }
    }

    /// <summary>Chunks for a parallel evaluation pass: a few per core for balance, none shorter than the minimum.</summary>
    internal static int EvaluationChunks(int length, int maxDegreeOfParallelism) =>
        maxDegreeOfParallelism <= 1 || length < 2 * MinimumEvaluationChunk
            ? 1
            : Math.Min(4 * maxDegreeOfParallelism, length / MinimumEvaluationChunk);

    /// <summary>
    /// One parallel pass over all t: f, J (as asked), the residual reduction, and, when <paramref name="newtonTerm"/>,
    /// b_t = f_t - J_t h_{t-1} in place of f_t.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static (double Max, bool Within, bool Finite) EvaluateAll<TCell, T>(TCell cell, SequenceWorkspace<T> ws, int length,
        JacobianMode mode, SolverSettings<T> settings, bool newtonTerm)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int chunks = EvaluationChunks(length, settings.MaxDegreeOfParallelism);
        if (chunks == 1)
        {
            EvaluateRange(cell, ws, 0, length, 0, mode, settings, newtonTerm);
        }
        else
        {
            var parallel = new ParallelOptions { MaxDegreeOfParallelism = settings.MaxDegreeOfParallelism };
            Parallel.For(0, chunks, parallel, k =>
            {
                (int start, int end) = LinearRecurrence.ChunkRange(k, chunks, length);
                EvaluateRange(cell, ws, start, end, k, mode, settings, newtonTerm);
            });
        }

        return CombineChunks(ws, chunks);
    }

    /// <summary>The residual of the whole iterate from the first <paramref name="count"/> per-chunk (or per-worker) reductions.</summary>
    private static (double Max, bool Within, bool Finite) CombineChunks<T>(SequenceWorkspace<T> ws, int count)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        double max = 0;
        bool within = true, finite = true;
        for (int k = 0; k < count; k++)
        {
            max = Math.Max(max, ws.ChunkMax[k]);
            within &= ws.ChunkWithin[k];
            finite &= ws.ChunkFinite[k];
        }

        return (finite ? max : double.NaN, within && finite, finite);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void EvaluateRange<TCell, T>(TCell cell, SequenceWorkspace<T> ws, int start, int end, int chunk,
        JacobianMode mode, SolverSettings<T> settings, bool newtonTerm)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize;
        int p = cell.ProjectionSize;
        int w = BlockWorkspaceSize<TCell, T>(cell);
        int m = settings.JacobianPerStep(mode, s);
        Span<T> scratch = ws.CellScratch.AsSpan(chunk * w, w);
        T atol = settings.AbsoluteTolerance, rtol = settings.RelativeTolerance;
        T max = T.Zero;
        bool within = true, finite = true;
        for (int t0 = start; t0 < end;)
        {
            // Step 0 starts from h0, the others from the previous step of the iterate: contiguous in States.
            int t1 = t0 == 0 ? 1 : Math.Min(end, t0 + BlockSteps);
            int count = t1 - t0;
            ReadOnlySpan<T> previous = t0 == 0 ? ws.InitialState.AsSpan(0, s) : ws.States.AsSpan((t0 - 1) * s, count * s);
            Span<T> f = ws.Evaluations.AsSpan(t0 * s, count * s);
            cell.EvaluateBlock(previous, ws.Projections.AsSpan(t0 * p, count * p), f, ws.Jacobians.AsSpan(t0 * m, count * m), mode, scratch, count);

            ReadOnlySpan<T> current = ws.States.AsSpan(t0 * s, count * s);
            if (newtonTerm && mode == JacobianMode.Diagonal)
            {
                // quasi-DEER's hot path: the residual and the Newton term b_t = f_t - d_t ⊙ h_{t-1} in one pass over the block.
                if (!ResidualWithin(current, f, atol, rtol, ref max, ref within, ws.Jacobians.AsSpan(t0 * s, count * s), previous[..f.Length]))
                {
                    finite = false;
                }

                t0 = t1;
                continue;
            }

            if (!ResidualWithin(current, f, atol, rtol, ref max, ref within))
            {
                finite = false;
            }

            // Newton's affine term in place: b_t = f_t - J_t h_{t-1}.
            if (newtonTerm && mode == JacobianMode.Full)
            {
                for (int k = 0; k < count; k++)
                {
                    ReadOnlySpan<T> jt = ws.Jacobians.AsSpan((t0 + k) * m, m);
                    ReadOnlySpan<T> hp = previous.Slice(k * s, s);
                    for (int i = 0; i < s; i++)
                    {
                        f[k * s + i] -= Linear.Dot(jt.Slice(i * s, s), hp);
                    }
                }
            }
            else if (newtonTerm && mode == JacobianMode.Block)
            {
                SubtractBlockProducts(ws.Jacobians.AsSpan(t0 * m, count * m), previous[..f.Length], f, settings.Structure!.Value, s, count);
            }

            t0 = t1;
        }

        ws.ChunkMax[chunk] = double.CreateTruncating(max);
        ws.ChunkWithin[chunk] = within;
        ws.ChunkFinite[chunk] = finite;
    }

    /// <summary>b_t = f_t - J_t h_{t-1} for block-diagonal J_t ([count, S/K, K, K]), block by block.</summary>
    private static void SubtractBlockProducts<T>(ReadOnlySpan<T> jacobians, ReadOnlySpan<T> previous, Span<T> f, JacobianStructure structure, int s, int count)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int side = structure.Side, units = s / structure.Parts, m = s * side;
        for (int k = 0; k < count; k++)
        {
            ReadOnlySpan<T> jt = jacobians.Slice(k * m, m), hp = previous.Slice(k * s, s);
            Span<T> ft = f.Slice(k * s, s);
            for (int blk = 0; blk < s / side; blk++)
            {
                for (int r = 0; r < side; r++)
                {
                    T sum = T.Zero;
                    ReadOnlySpan<T> row = jt.Slice((blk * side + r) * side, side);
                    for (int c = 0; c < side; c++)
                    {
                        sum = T.FusedMultiplyAdd(row[c], hp[structure.Index(blk, c, units)], sum);
                    }

                    ft[structure.Index(blk, r, units)] -= sum;
                }
            }
        }
    }

    /// <summary>Scratch per chunk: one block's cell workspace, and room for the diagonal product b_t = f_t - d_t ⊙ h_{t-1}.</summary>
    internal static int BlockWorkspaceSize<TCell, T>(in TCell cell)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T> =>
        Math.Max(1, Math.Max(cell.BlockWorkspaceSize(BlockSteps), BlockSteps * cell.StateSize));
}
