using System.Runtime.CompilerServices;
using DeerSharp.Engines;

namespace DeerSharp.Cpu;

internal static partial class Solver
{
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

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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
}
