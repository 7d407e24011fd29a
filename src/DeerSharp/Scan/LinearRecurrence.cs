using System.Numerics;
using System.Numerics.Tensors;

namespace DeerSharp.Scan;

/// <summary>
/// Solves h_t = A_t h_{t-1} + b_t for t = 0..L-1 from a given h_{-1} = <c>h0</c>, with A_t diagonal (vectors a_t)
/// or dense (n×n, row-major). Arrays are time-major: step t occupies [t·n, (t+1)·n) (or [t·n², (t+1)·n²) for A).
/// </summary>
/// <remarks>
/// <para>
/// Two strategies compute the same states: the sequential loop (O(L n) diagonal, O(L n²) dense), and the blocked
/// three-phase parallel scan of Martin &amp; Cundy (reference §2): reduce each chunk to one <see cref="AffineMap"/>, scan the
/// chunk maps from h0, then re-run each chunk from its incoming state. The blocked scan does about 2.5× the diagonal
/// work and O(n³) instead of O(n²) dense work per step, so it only pays with spare cores, and for dense maps only when
/// n is small against the core count: <see cref="Solve{T}"/> picks by that cost.
/// </para>
/// <para>The outputs may alias <c>b</c>: each b_t is read before h_t is written.</para>
/// </remarks>
public static class LinearRecurrence
{
    /// <summary>Sequential diagonal recurrence h_t = a_t ⊙ h_{t-1} + b_t.</summary>
    public static void SolveDiagonalSequential<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, ReadOnlySpan<T> h0, Span<T> h, int n)
        where T : IFloatingPointIeee754<T>
    {
        int length = CheckShapes(a, b, h0, h, n, dense: false);
        ReadOnlySpan<T> previous = h0;
        for (int t = 0; t < length; t++)
        {
            Span<T> current = h.Slice(t * n, n);
            TensorPrimitives.MultiplyAdd(previous, a.Slice(t * n, n), b.Slice(t * n, n), current);
            previous = current;
        }
    }

    /// <summary>Sequential dense recurrence h_t = A_t h_{t-1} + b_t.</summary>
    public static void SolveDenseSequential<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, ReadOnlySpan<T> h0, Span<T> h, int n)
        where T : IFloatingPointIeee754<T>
    {
        int length = CheckShapes(a, b, h0, h, n, dense: true);
        int nn = n * n;
        ReadOnlySpan<T> previous = h0;
        for (int t = 0; t < length; t++)
        {
            ReadOnlySpan<T> at = a.Slice(t * nn, nn);
            Span<T> current = h.Slice(t * n, n);
            for (int i = 0; i < n; i++)
            {
                current[i] = b[t * n + i] + TensorPrimitives.Dot(at.Slice(i * n, n), previous);
            }

            previous = current;
        }
    }

    /// <summary>
    /// Solves the recurrence on arrays, choosing the strategy: the blocked parallel scan when it has at least two chunks
    /// of work and (for dense maps) its O(n³) per-step cost beats the O(n²) loop on <paramref name="maxDegreeOfParallelism"/> cores.
    /// </summary>
    /// <param name="a">a_t (diagonal: L·n values) or A_t (dense: L·n² values).</param>
    /// <param name="b">b_t, L·n values.</param>
    /// <param name="h0">The state before step 0, n values.</param>
    /// <param name="h">Destination, L·n values; may be the same array as <paramref name="b"/>.</param>
    /// <param name="length">L.</param>
    /// <param name="n">The state dimension.</param>
    /// <param name="dense">Whether A_t is dense.</param>
    /// <param name="maxDegreeOfParallelism">Cores to use; 1 forces the sequential loop.</param>
    /// <param name="workspace">Chunk buffers reused across calls; null allocates them.</param>
    public static void Solve<T>(T[] a, T[] b, T[] h0, T[] h, int length, int n, bool dense, int maxDegreeOfParallelism, ScanWorkspace<T>? workspace = null)
        where T : IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(h0);
        ArgumentNullException.ThrowIfNull(h);
        int chunks = ChooseChunks(length, n, dense, maxDegreeOfParallelism);
        if (chunks <= 1)
        {
            int m = dense ? n * n : n;
            if (dense)
            {
                SolveDenseSequential<T>(a.AsSpan(0, length * m), b.AsSpan(0, length * n), h0.AsSpan(0, n), h.AsSpan(0, length * n), n);
            }
            else
            {
                SolveDiagonalSequential<T>(a.AsSpan(0, length * m), b.AsSpan(0, length * n), h0.AsSpan(0, n), h.AsSpan(0, length * n), n);
            }

            return;
        }

        SolveBlocked(a, b, h0, h, length, n, dense, chunks, maxDegreeOfParallelism, workspace);
    }

    /// <summary>The number of chunks the blocked scan would use; 1 means the sequential loop.</summary>
    internal static int ChooseChunks(int length, int n, bool dense, int maxDegreeOfParallelism)
    {
        const int MinimumChunkSteps = 512;
        if (maxDegreeOfParallelism <= 1 || length < 2 * MinimumChunkSteps)
        {
            return 1;
        }

        // Dense: the blocked scan costs ≈ L n³/p against L n² sequential; it needs n < p to win.
        if (dense && n >= maxDegreeOfParallelism)
        {
            return 1;
        }

        return Math.Min(maxDegreeOfParallelism, length / MinimumChunkSteps);
    }

    /// <summary>The blocked three-phase scan with an explicit chunk count (exposed for tests).</summary>
    internal static void SolveBlocked<T>(T[] a, T[] b, T[] h0, T[] h, int length, int n, bool dense, int chunks, int maxDegreeOfParallelism, ScanWorkspace<T>? workspace = null)
        where T : IFloatingPointIeee754<T>
    {
        int m = dense ? n * n : n;
        chunks = Math.Clamp(chunks, 1, Math.Max(1, length));
        workspace ??= new ScanWorkspace<T>();
        workspace.Ensure(chunks, n, dense);
        T[] mapA = workspace.MapA, mapB = workspace.MapB, carries = workspace.Carries, scratch = workspace.Scratch;
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, maxDegreeOfParallelism) };

        // Phase 1: chunk 0 runs its steps from h0 for real; every other chunk folds its steps into one affine map.
        Parallel.For(0, chunks, parallel, k =>
        {
            (int start, int end) = ChunkRange(k, chunks, length);
            if (k == 0)
            {
                RunChunk(a, b, h0.AsSpan(0, n), h, start, end, n, dense);
                return;
            }

            Span<T> pa = mapA.AsSpan(k * m, m);
            Span<T> pb = mapB.AsSpan(k * n, n);
            if (dense)
            {
                Span<T> own = scratch.AsSpan(k * (m + n), m + n);
                AffineMap.DenseIdentity<T>(pa, pb, n);
                for (int t = start; t < end; t++)
                {
                    AffineMap.ComposeDense<T>(pa, pb, a.AsSpan(t * m, m), b.AsSpan(t * n, n), pa, pb, n, own);
                }
            }
            else
            {
                AffineMap.DiagonalIdentity<T>(pa, pb);
                for (int t = start; t < end; t++)
                {
                    AffineMap.ComposeDiagonal<T>(pa, pb, a.AsSpan(t * n, n), b.AsSpan(t * n, n), pa, pb);
                }
            }
        });

        if (chunks == 1)
        {
            return;
        }

        // Phase 2: carries in order. Chunk 1's carry is chunk 0's last state; chunk k+1's is chunk k's map applied to chunk k's carry.
        (_, int end0) = ChunkRange(0, chunks, length);
        h.AsSpan((end0 - 1) * n, n).CopyTo(carries.AsSpan(n, n));
        for (int k = 1; k < chunks - 1; k++)
        {
            Span<T> next = carries.AsSpan((k + 1) * n, n);
            ReadOnlySpan<T> carry = carries.AsSpan(k * n, n);
            if (dense)
            {
                Linear.MatVec<T>(mapA.AsSpan(k * m, m), carry, next);
                TensorPrimitives.Add(next, mapB.AsSpan(k * n, n), next);
            }
            else
            {
                TensorPrimitives.MultiplyAdd(carry, mapA.AsSpan(k * n, n), mapB.AsSpan(k * n, n), next);
            }
        }

        // Phase 3: every chunk after the first re-runs its steps from its incoming state.
        Parallel.For(1, chunks, parallel, k =>
        {
            (int start, int end) = ChunkRange(k, chunks, length);
            RunChunk(a, b, carries.AsSpan(k * n, n), h, start, end, n, dense);
        });
    }

    private static void RunChunk<T>(T[] a, T[] b, ReadOnlySpan<T> carry, T[] h, int start, int end, int n, bool dense)
        where T : IFloatingPointIeee754<T>
    {
        int m = dense ? n * n : n;
        int steps = end - start;
        if (dense)
        {
            SolveDenseSequential<T>(a.AsSpan(start * m, steps * m), b.AsSpan(start * n, steps * n), carry, h.AsSpan(start * n, steps * n), n);
        }
        else
        {
            SolveDiagonalSequential<T>(a.AsSpan(start * m, steps * m), b.AsSpan(start * n, steps * n), carry, h.AsSpan(start * n, steps * n), n);
        }
    }

    internal static (int Start, int End) ChunkRange(int k, int chunks, int length)
    {
        long start = (long)length * k / chunks;
        long end = (long)length * (k + 1) / chunks;
        return ((int)start, (int)end);
    }

    private static int CheckShapes<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, ReadOnlySpan<T> h0, Span<T> h, int n, bool dense)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        if (b.Length % n != 0)
        {
            throw new ArgumentException($"b must hold L·n values with n = {n}; it holds {b.Length}.", nameof(b));
        }

        int length = b.Length / n;
        long m = dense ? (long)n * n : n;
        Require.Length(a, length * m, nameof(a), dense ? $"[{length}, {n}, {n}]" : $"[{length}, {n}]");
        Require.Length(h0, n, nameof(h0), $"[{n}]");
        Require.Length<T>(h, (long)length * n, nameof(h), $"[{length}, {n}]");
        return length;
    }
}
