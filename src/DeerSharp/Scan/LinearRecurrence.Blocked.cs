using System.Numerics.Tensors;

namespace DeerSharp.Scan;

// The blocked three-phase scan (reference §2): chunk maps in parallel, their scan from h0, then each chunk re-run.
public static partial class LinearRecurrence
{
    /// <summary>
    /// The blocked three-phase scan over <paramref name="workers"/> cores (exposed for tests). Layout, for p workers:
    /// the first L/p steps form chunk 0, which worker 0 simply runs from h0 while workers 1..p-1 each fold one region of
    /// the rest into affine maps, one map per sub-chunk (p sub-chunks per region). The carries into every sub-chunk then
    /// follow serially, and all p workers re-run the (p-1)·p sub-chunks. Per step that is one run for chunk 0 and a fold
    /// plus a run for the rest, with the re-runs shared by every core: critical path ≈ L(2p-1)/p² steps against L.
    /// </summary>
    internal static void SolveBlocked<T>(T[] a, T[] b, T[] h0, T[] h, int length, int n, bool dense, int workers, int maxDegreeOfParallelism, ScanWorkspace<T>? workspace = null)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        SolveBlocked(a, b, h0, h, length, n, dense ? ScanForm.Dense : ScanForm.Diagonal, workers, maxDegreeOfParallelism, workspace);

    internal static void SolveBlocked<T>(T[] a, T[] b, T[] h0, T[] h, int length, int n, ScanForm form, int workers, int maxDegreeOfParallelism, ScanWorkspace<T>? workspace = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int m = form.PerStep(n);
        workers = Math.Clamp(workers, 1, Math.Max(1, length));
        int head = length / workers;                                   // chunk 0: [0, head)
        int subchunks = workers == 1 ? 0 : Math.Min((workers - 1) * workers, length - head);
        workspace ??= new ScanWorkspace<T>();
        workspace.Ensure(subchunks + 1, n, m, form.ComposeScratch(n), workers);
        T[] mapA = workspace.MapA, mapB = workspace.MapB, carries = workspace.Carries, scratch = workspace.Scratch;
        int scratchPerWorker = form.ComposeScratch(n);
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, maxDegreeOfParallelism) };
        (int Start, int End) Sub(int j) => (head + (int)((long)(length - head) * j / subchunks), head + (int)((long)(length - head) * (j + 1) / subchunks));

        // Phase 1: worker 0 runs chunk 0 from h0; worker w ≥ 1 folds its region's sub-chunks j = (w-1)·p .. w·p - 1.
        Parallel.For(0, workers, parallel, w =>
        {
            if (w == 0)
            {
                RunChunk(a, b, h0.AsSpan(0, n), h, 0, head, n, form);
                return;
            }

            int per = subchunks / (workers - 1), first = (w - 1) * per, last = w == workers - 1 ? subchunks : first + per;
            for (int j = first; j < last; j++)
            {
                (int start, int end) = Sub(j);
                Span<T> pa = mapA.AsSpan(j * m, m), pb = mapB.AsSpan(j * n, n);
                Span<T> own = scratch.AsSpan(w * scratchPerWorker, scratchPerWorker);
                switch (form.Kind)
                {
                    case ScanKind.Dense:
                        AffineMap.DenseIdentity<T>(pa, pb, n);
                        for (int t = start; t < end; t++)
                        {
                            AffineMap.ComposeDense<T>(pa, pb, a.AsSpan(t * m, m), b.AsSpan(t * n, n), pa, pb, n, own);
                        }

                        break;
                    case ScanKind.Block:
                        FoldBlocks<T>(a.AsSpan(start * m, (end - start) * m), b.AsSpan(start * n, (end - start) * n), pa, pb, end - start, n, form.Structure, own);
                        break;
                    default:
                        AffineMap.DiagonalIdentity<T>(pa, pb);
                        FoldDiagonal<T>(a.AsSpan(start * n, (end - start) * n), b.AsSpan(start * n, (end - start) * n), pa, pb, end - start, n);
                        break;
                }
            }
        });

        if (subchunks == 0)
        {
            return;
        }

        // Phase 2: carries in order; sub-chunk 0 starts from chunk 0's last state.
        h.AsSpan((head - 1) * n, n).CopyTo(carries.AsSpan(0, n));
        for (int j = 0; j < subchunks - 1; j++)
        {
            Span<T> next = carries.AsSpan((j + 1) * n, n);
            ReadOnlySpan<T> carry = carries.AsSpan(j * n, n);
            switch (form.Kind)
            {
                case ScanKind.Dense:
                    Linear.MatVec<T>(mapA.AsSpan(j * m, m), carry, next);
                    TensorPrimitives.Add(next, mapB.AsSpan(j * n, n), next);
                    break;
                case ScanKind.Block:
                    RunBlocks<T>(mapA.AsSpan(j * m, m), mapB.AsSpan(j * n, n), carry, next, 1, n, form.Structure);
                    break;
                default:
                    TensorPrimitives.MultiplyAdd(carry, mapA.AsSpan(j * n, n), mapB.AsSpan(j * n, n), next);
                    break;
            }
        }

        // Phase 3: every core re-runs an equal share of the sub-chunks from their incoming states.
        Parallel.For(0, workers, parallel, w =>
        {
            for (int j = w; j < subchunks; j += workers)
            {
                (int start, int end) = Sub(j);
                RunChunk(a, b, carries.AsSpan(j * n, n), h, start, end, n, form);
            }
        });
    }

    private static void RunChunk<T>(T[] a, T[] b, ReadOnlySpan<T> carry, T[] h, int start, int end, int n, ScanForm form)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int m = form.PerStep(n);
        int steps = end - start;
        switch (form.Kind)
        {
            case ScanKind.Dense:
                SolveDenseSequential<T>(a.AsSpan(start * m, steps * m), b.AsSpan(start * n, steps * n), carry, h.AsSpan(start * n, steps * n), n);
                break;
            case ScanKind.Block:
                RunBlocks<T>(a.AsSpan(start * m, steps * m), b.AsSpan(start * n, steps * n), carry, h.AsSpan(start * n, steps * n), steps, n, form.Structure);
                break;
            default:
                RunDiagonal<T>(a.AsSpan(start * m, steps * m), b.AsSpan(start * n, steps * n), carry, h.AsSpan(start * n, steps * n), steps, n);
                break;
        }
    }

    internal static (int Start, int End) ChunkRange(int k, int chunks, int length)
    {
        long start = (long)length * k / chunks;
        long end = (long)length * (k + 1) / chunks;
        return ((int)start, (int)end);
    }
}
