using System.Runtime.CompilerServices;
using System.Numerics;
using DeerSharp.Cells;
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

    /// <summary>Block k of the fused pass: step 0 alone (its predecessor is h0, not in States), then BlockSteps at a time.</summary>
    private static (int Start, int End) FusedBlock(int k, int length) =>
        k == 0 ? (0, 1) : (1 + (k - 1) * BlockSteps, Math.Min(length, 1 + k * BlockSteps));

    /// <summary>
    /// quasi-DEER's iteration (any diagonal Newton update) in one pass. Workers claim blocks of steps in order and
    /// evaluate each: f and the diagonal d into Evaluations and Jacobians, and the residual of the current iterate. Right
    /// after a block is evaluated, whichever worker finds the scan's frontier at a ready block advances it over every
    /// ready block: h'_t = f_t + d_t ⊙ (h'_{t-1} - h_{t-1}), which is the Newton step h'_t = d_t h'_{t-1} + (f_t - d_t h_{t-1})
    /// written so that f_t is overwritten in place by h'_t. The scan thus reads f and d while they are still in cache,
    /// and runs beside the evaluation instead of as a second single-core pass over memory. No worker ever waits for
    /// another: a worker that finds the scan busy leaves the block to the scanner, which re-checks the frontier after
    /// releasing it, and the caller finishes whatever is left. The current iterate (States) is not written, so the residual
    /// reported is that of the states <see cref="SolveIterative{TCell, T}"/> returns if it stops here.
    /// </summary>
    private static (double Max, bool Within, bool Finite) EvaluateAndScanDiagonal<TCell, T>(TCell cell, SequenceWorkspace<T> ws, int length,
        SolverSettings<T> settings)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int blocks = 1 + (length - 1 + BlockSteps - 1) / BlockSteps;
        int workers = Math.Min(EvaluationChunks(length, settings.MaxDegreeOfParallelism), settings.MaxDegreeOfParallelism);
        if (ws.BlockReady.Length < blocks)
        {
            ws.BlockReady = new int[blocks];
        }
        else
        {
            Array.Clear(ws.BlockReady, 0, blocks);
        }

        var pass = new FusedPass(ws.BlockReady, blocks);
        workers = Math.Max(1, workers);
        for (int w = 0; w < workers; w++)
        {
            ws.ChunkMax[w] = 0;
            ws.ChunkWithin[w] = ws.ChunkFinite[w] = true;
        }

        if (workers == 1)
        {
            for (int k = 0; k < blocks; k++)
            {
                EvaluateFusedBlock(cell, ws, k, length, 0, settings, pass);
            }
        }
        else
        {
            // Parallel.For runs every index, on as many threads as it gets; an index that starts late finds no blocks left.
            Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, w =>
            {
                for (int k = Interlocked.Increment(ref pass.NextBlock) - 1; k < blocks; k = Interlocked.Increment(ref pass.NextBlock) - 1)
                {
                    EvaluateFusedBlock(cell, ws, k, length, w, settings, pass);
                }
            });
            pass.Advance(ws, cell.StateSize, length);                       // everything is evaluated: the caller finishes the scan
        }

        if (pass.Frontier != blocks)
        {
            throw new InvalidOperationException($"fused quasi-DEER pass: the scan stopped at block {pass.Frontier} of {blocks}");
        }

        return CombineChunks(ws, workers);
    }

    private static void EvaluateFusedBlock<TCell, T>(TCell cell, SequenceWorkspace<T> ws, int k, int length, int worker, SolverSettings<T> settings,
        FusedPass pass)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize, p = cell.ProjectionSize, w = BlockWorkspaceSize<TCell, T>(cell);
        (int t0, int t1) = FusedBlock(k, length);
        int count = t1 - t0;
        ReadOnlySpan<T> previous = t0 == 0 ? ws.InitialState.AsSpan(0, s) : ws.States.AsSpan((t0 - 1) * s, count * s);
        Span<T> f = ws.Evaluations.AsSpan(t0 * s, count * s);
        cell.EvaluateBlock(previous, ws.Projections.AsSpan(t0 * p, count * p), f, ws.Jacobians.AsSpan(t0 * s, count * s), JacobianMode.Diagonal,
            ws.CellScratch.AsSpan(worker * w, w), count);
        T max = T.CreateTruncating(ws.ChunkMax[worker]);
        bool within = ws.ChunkWithin[worker];
        if (!ResidualWithin(ws.States.AsSpan(t0 * s, count * s), f, settings.AbsoluteTolerance, settings.RelativeTolerance, ref max, ref within))
        {
            ws.ChunkFinite[worker] = false;
        }

        ws.ChunkMax[worker] = double.CreateTruncating(max);
        ws.ChunkWithin[worker] = within;
        Volatile.Write(ref pass.Ready[k], 1);
        pass.Advance(ws, s, length);
    }

    /// <summary>The shared state of one fused pass: which blocks are evaluated, how far the scan has gone, who scans.</summary>
    private sealed class FusedPass(int[] ready, int blocks)
    {
        public readonly int[] Ready = ready;
        public readonly int Blocks = blocks;
        public int NextBlock;
        public int Frontier;
        private int _scanning;

        /// <summary>Scans every ready block from the frontier on, unless another worker is scanning; never waits.</summary>
        public void Advance<T>(SequenceWorkspace<T> ws, int s, int length)
            where T : unmanaged, IFloatingPointIeee754<T>
        {
            while (true)
            {
                if (Interlocked.CompareExchange(ref _scanning, 1, 0) != 0)
                {
                    return;                                                 // the scanner re-checks after it lets go
                }

                int k = Frontier;
                while (k < Blocks && Volatile.Read(ref Ready[k]) == 1)
                {
                    (int t0, int t1) = FusedBlock(k, length);
                    ScanFused(ws, s, t0, t1);
                    k++;
                }

                Frontier = k;
                // A full fence: a block made ready while this worker scanned, whose worker then found the scan busy, is seen here.
                Interlocked.Exchange(ref _scanning, 0);
                if (k >= Blocks || Volatile.Read(ref Ready[k]) == 0)
                {
                    return;
                }
            }
        }
    }

    /// <summary>h'_t = f_t + d_t ⊙ (h'_{t-1} - h_{t-1}) for t in [t0, t1), in place of f_t in Evaluations.</summary>
    private static void ScanFused<T>(SequenceWorkspace<T> ws, int s, int t0, int t1)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int v = Vector<T>.Count;
        T[] next = ws.Evaluations, current = ws.States, d = ws.Jacobians;
        for (int t = t0; t < t1; t++)
        {
            if (t == 0)
            {
                continue;                                                   // h'_0 = f_0: both predecessors are h0
            }

            int o = t * s, q = o - s, i = 0;
            for (; i + v <= s; i += v)
            {
                Vector<T> delta = new Vector<T>(next, q + i) - new Vector<T>(current, q + i);
                Kernels.Fma(new Vector<T>(d, o + i), delta, new Vector<T>(next, o + i)).CopyTo(next, o + i);
            }

            for (; i < s; i++)
            {
                next[o + i] = T.FusedMultiplyAdd(d[o + i], next[q + i] - current[q + i], next[o + i]);
            }
        }
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

    /// <summary>
    /// Folds |h - f| of one block into the running maximum and the tolerance test |h - f| ≤ atol + rtol·|f|; returns
    /// false if any value is NaN or infinite. SIMD while every lane is finite; the scalar loop classifies a block that is not.
    /// With <paramref name="d"/> and <paramref name="previous"/> given (quasi-DEER's hot path), the same pass then turns f
    /// into the Newton term f - d ⊙ h_prev, after its residual is taken.
    /// </summary>
    private static bool ResidualWithin<T>(ReadOnlySpan<T> current, Span<T> f, T atol, T rtol, ref T max, ref bool within,
        ReadOnlySpan<T> d = default, ReadOnlySpan<T> previous = default)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        bool term = !d.IsEmpty;
        int v = Vector<T>.Count, i = 0;
        var vmax = new Vector<T>(max);
        var infinity = new Vector<T>(T.PositiveInfinity);
        var vatol = new Vector<T>(atol);
        var vrtol = new Vector<T>(rtol);
        bool vectorWithin = true;
        for (; i + v <= f.Length; i += v)
        {
            var fv = new Vector<T>(f[i..]);
            Vector<T> r = Vector.Abs(new Vector<T>(current[i..]) - fv);
            // r < ∞ is false for NaN and for ∞: either sends the rest to the scalar path, which classifies it.
            if (!Vector.LessThanAll(r, infinity))
            {
                break;
            }

            vmax = Vector.Max(vmax, r);
            vectorWithin &= Vector.LessThanOrEqualAll(r, Kernels.Fma(vrtol, Vector.Abs(fv), vatol));
            if (term)
            {
                (fv - (new Vector<T>(d[i..]) * new Vector<T>(previous[i..]))).CopyTo(f[i..]);
            }
        }

        for (int k = 0; k < v; k++)
        {
            max = T.Max(max, vmax[k]);
        }

        within &= vectorWithin;
        bool finite = ResidualScalar(current[i..], f[i..], atol, rtol, ref max, ref within);
        for (; term && i < f.Length; i++)
        {
            f[i] -= d[i] * previous[i];
        }

        return finite;
    }

    private static bool ResidualScalar<T>(ReadOnlySpan<T> current, ReadOnlySpan<T> f, T atol, T rtol, ref T max, ref bool within)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        bool finite = true;
        for (int i = 0; i < f.Length; i++)
        {
            T r = T.Abs(current[i] - f[i]);
            if (!T.IsFinite(r))
            {
                finite = false;
            }
            else
            {
                max = T.Max(max, r);
                within &= r <= atol + rtol * T.Abs(f[i]);
            }
        }

        return finite;
    }

    /// <summary>Scratch per chunk: one block's cell workspace, and room for the diagonal product b_t = f_t - d_t ⊙ h_{t-1}.</summary>
    internal static int BlockWorkspaceSize<TCell, T>(in TCell cell)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T> =>
        Math.Max(1, Math.Max(cell.BlockWorkspaceSize(BlockSteps), BlockSteps * cell.StateSize));
}
