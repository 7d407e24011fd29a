using System.Runtime.CompilerServices;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;

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
public static partial class LinearRecurrence
{
    /// <summary>Sequential diagonal recurrence h_t = a_t ⊙ h_{t-1} + b_t.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void SolveDiagonalSequential<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, ReadOnlySpan<T> h0, Span<T> h, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int length = CheckShapes(a, b, h0, h, n, dense: false);
        RunDiagonal(a, b, h0, h, length, n);
    }

    /// <summary>The diagonal loop itself: SIMD across the state for n ≥ one vector, a register-carried scalar chain for n = 1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RunDiagonal<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, ReadOnlySpan<T> h0, Span<T> h, int length, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (length == 0)
        {
            return;
        }

        ref T ra = ref MemoryMarshal.GetReference(a);
        ref T rb = ref MemoryMarshal.GetReference(b);
        ref T rh = ref MemoryMarshal.GetReference(h);
        if (n == 1)
        {
            T x = h0[0];
            for (int t = 0; t < length; t++)
            {
                x = T.FusedMultiplyAdd(Unsafe.Add(ref ra, t), x, Unsafe.Add(ref rb, t));
                Unsafe.Add(ref rh, t) = x;
            }

            return;
        }

        int v = Vector<T>.Count;
        int vectorEnd = n - n % v;
        // Step 0 from h0, then each step from the one before it in h.
        for (int i = 0; i < n; i++)
        {
            Unsafe.Add(ref rh, i) = T.FusedMultiplyAdd(Unsafe.Add(ref ra, i), h0[i], Unsafe.Add(ref rb, i));
        }

        for (int t = 1; t < length; t++)
        {
            nuint row = (nuint)(t * n), previous = (nuint)((t - 1) * n);
            int i = 0;
            for (; i < vectorEnd; i += v)
            {
                Kernels.Fma(Vector.LoadUnsafe(ref ra, row + (nuint)i), Vector.LoadUnsafe(ref rh, previous + (nuint)i), Vector.LoadUnsafe(ref rb, row + (nuint)i))
                    .StoreUnsafe(ref rh, row + (nuint)i);
            }

            for (; i < n; i++)
            {
                Unsafe.Add(ref rh, (int)row + i) = T.FusedMultiplyAdd(Unsafe.Add(ref ra, (int)row + i), Unsafe.Add(ref rh, (int)previous + i), Unsafe.Add(ref rb, (int)row + i));
            }
        }
    }

    /// <summary>
    /// Folds steps into one affine map (pa, pb) ← (a_t ⊙ pa, a_t ⊙ pb + b_t), streaming a and b once in time order (the
    /// map itself stays in L1).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void FoldDiagonal<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> pa, Span<T> pb, int length, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ref T ra = ref MemoryMarshal.GetReference(a);
        ref T rb = ref MemoryMarshal.GetReference(b);
        ref T rpa = ref MemoryMarshal.GetReference(pa);
        ref T rpb = ref MemoryMarshal.GetReference(pb);
        if (n == 1)
        {
            // One channel: carry the map in registers, not through memory on every step.
            T ma = pa[0], mb = pb[0];
            for (int t = 0; t < length; t++)
            {
                T at = Unsafe.Add(ref ra, t);
                mb = T.FusedMultiplyAdd(at, mb, Unsafe.Add(ref rb, t));
                ma *= at;
            }

            pa[0] = ma;
            pb[0] = mb;
            return;
        }

        int v = Vector<T>.Count;
        int vectorEnd = n - n % v;
        for (int t = 0; t < length; t++)
        {
            nuint row = (nuint)(t * n);
            int i = 0;
            for (; i < vectorEnd; i += v)
            {
                Vector<T> at = Vector.LoadUnsafe(ref ra, row + (nuint)i);
                Kernels.Fma(at, Vector.LoadUnsafe(ref rpb, (nuint)i), Vector.LoadUnsafe(ref rb, row + (nuint)i)).StoreUnsafe(ref rpb, (nuint)i);
                (at * Vector.LoadUnsafe(ref rpa, (nuint)i)).StoreUnsafe(ref rpa, (nuint)i);
            }

            for (; i < n; i++)
            {
                T at = Unsafe.Add(ref ra, (int)row + i);
                Unsafe.Add(ref rpb, i) = T.FusedMultiplyAdd(at, Unsafe.Add(ref rpb, i), Unsafe.Add(ref rb, (int)row + i));
                Unsafe.Add(ref rpa, i) *= at;
            }
        }
    }

    /// <summary>Sequential dense recurrence h_t = A_t h_{t-1} + b_t.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void SolveDenseSequential<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, ReadOnlySpan<T> h0, Span<T> h, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
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
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        long m = dense ? (long)n * n : n;
        CheckArrays(a, b, h0, h, length, n, maxDegreeOfParallelism, m, dense ? $"[{length}, {n}, {n}]" : $"[{length}, {n}]");
        int chunks = ChooseChunks(length, n, dense, maxDegreeOfParallelism);
        if (chunks <= 1)
        {
            if (dense)
            {
                SolveDenseSequential<T>(a.AsSpan(0, (int)(length * m)), b.AsSpan(0, length * n), h0.AsSpan(0, n), h.AsSpan(0, length * n), n);
            }
            else
            {
                SolveDiagonalSequential<T>(a.AsSpan(0, (int)(length * m)), b.AsSpan(0, length * n), h0.AsSpan(0, n), h.AsSpan(0, length * n), n);
            }

            return;
        }

        SolveBlocked(a, b, h0, h, length, n, dense, chunks, maxDegreeOfParallelism, workspace);
    }

    /// <summary>
    /// The checks every single-sequence solve makes: arrays given, L ≥ 0, n ≥ 1, at least one core, and each array long
    /// enough for L steps (<paramref name="perStep"/> coefficients of A per step, shaped <paramref name="aShape"/>).
    /// </summary>
    private static void CheckArrays<T>(T[] a, T[] b, T[] h0, T[] h, int length, int n, int maxDegreeOfParallelism, long perStep, string aShape)
    {
        CheckArguments(a, b, h0, h, length, n, maxDegreeOfParallelism);
        RequireAtLeast(a, length * perStep, nameof(a), aShape);
        RequireAtLeast(b, (long)length * n, nameof(b), $"[{length}, {n}]");
        RequireAtLeast(h0, n, nameof(h0), $"[{n}]");
        RequireAtLeast(h, (long)length * n, nameof(h), $"[{length}, {n}]");
    }

    private static void CheckArguments<T>(T[] a, T[] b, T[] h0, T[] h, int length, int n, int maxDegreeOfParallelism)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(h0);
        ArgumentNullException.ThrowIfNull(h);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxDegreeOfParallelism, 1);
    }

    /// <summary>An array may be longer than the steps it is used for (a reused buffer), never shorter.</summary>
    private static void RequireAtLeast<T>(T[] values, long needed, string name, string shape)
    {
        if (values.Length < needed)
        {
            throw new ArgumentException($"{name} must hold at least {needed} values ({shape}); it holds {values.Length}.", name);
        }
    }

    /// <summary>
    /// Solves B independent recurrences laid out [B, L, n] (A: [B, L, n] diagonal or [B, L, n, n] dense; h0: [B, n]).
    /// Sequences run side by side on the cores when there are at least as many as cores; otherwise one after another,
    /// each with the strategy <see cref="ChooseChunks"/> picks.
    /// </summary>
    /// <param name="a">a_t or A_t for every sequence.</param>
    /// <param name="b">b_t for every sequence, [B, L, n].</param>
    /// <param name="h0">The initial states, [B, n].</param>
    /// <param name="h">Destination, [B, L, n]; may be the same array as <paramref name="b"/>.</param>
    /// <param name="batchSize">B.</param>
    /// <param name="length">L.</param>
    /// <param name="n">The state dimension.</param>
    /// <param name="dense">Whether A_t is dense.</param>
    /// <param name="maxDegreeOfParallelism">Cores to use.</param>
    public static void SolveBatch<T>(T[] a, T[] b, T[] h0, T[] h, int batchSize, int length, int n, bool dense, int maxDegreeOfParallelism)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batchSize);
        CheckArguments(a, b, h0, h, length, n, maxDegreeOfParallelism);
        long m = dense ? (long)n * n : n;
        if ((long)batchSize * length * m > Array.MaxLength)
        {
            throw new ArgumentException($"[{batchSize}, {length}] steps of {m} coefficients each exceed what one .NET array can hold ({Array.MaxLength}).", nameof(a));
        }

        Require.Length(a, (long)batchSize * length * m, nameof(a), dense ? $"[{batchSize}, {length}, {n}, {n}]" : $"[{batchSize}, {length}, {n}]");
        Require.Length(b, (long)batchSize * length * n, nameof(b), $"[{batchSize}, {length}, {n}]");
        Require.Length(h0, (long)batchSize * n, nameof(h0), $"[{batchSize}, {n}]");
        Require.Length(h, (long)batchSize * length * n, nameof(h), $"[{batchSize}, {length}, {n}]");
        int stepsA = (int)(length * m), stepsB = length * n;
        bool sideBySide = batchSize >= maxDegreeOfParallelism && maxDegreeOfParallelism > 1;
        bool blocked = !sideBySide && ChooseChunks(length, n, dense, maxDegreeOfParallelism) > 1;
        if (!blocked)
        {
            Parallel.For(0, batchSize, new ParallelOptions { MaxDegreeOfParallelism = sideBySide ? maxDegreeOfParallelism : 1 }, k =>
            {
                if (dense)
                {
                    SolveDenseSequential<T>(a.AsSpan(k * stepsA, stepsA), b.AsSpan(k * stepsB, stepsB), h0.AsSpan(k * n, n), h.AsSpan(k * stepsB, stepsB), n);
                }
                else
                {
                    SolveDiagonalSequential<T>(a.AsSpan(k * stepsA, stepsA), b.AsSpan(k * stepsB, stepsB), h0.AsSpan(k * n, n), h.AsSpan(k * stepsB, stepsB), n);
                }
            });
            return;
        }

        // The blocked scan works on whole arrays: stage each sequence in scratch arrays (4+ cores, fewer sequences than cores).
        var workspace = new ScanWorkspace<T>();
        T[] sa = new T[stepsA], sb = new T[stepsB], s0 = new T[n];
        for (int k = 0; k < batchSize; k++)
        {
            a.AsSpan(k * stepsA, stepsA).CopyTo(sa);
            b.AsSpan(k * stepsB, stepsB).CopyTo(sb);
            h0.AsSpan(k * n, n).CopyTo(s0);
            Solve(sa, sb, s0, sb, length, n, dense, maxDegreeOfParallelism, workspace);
            sb.AsSpan().CopyTo(h.AsSpan(k * stepsB, stepsB));
        }
    }

    /// <summary>
    /// The number of workers the blocked scan should use; 1 means the sequential loop. The blocked scan does about twice
    /// the work of the loop (a fold and a re-run for all but the first chunk), so its best case on p cores is
    /// p²/(2p - 1) times faster: 1.33 on 2 cores, 2.3 on 4, 8.3 on 16. On 2 cores it measured slower than the loop both in
    /// cache and at T·n = 2^26, where the loop already streams at the copy's bandwidth (docs/benchmarks.md), so it is
    /// used from 4 cores on (an extrapolation from that bound, not a measurement).
    /// </summary>
    /// <param name="length">L, the number of steps.</param>
    /// <param name="n">The state dimension.</param>
    /// <param name="dense">Whether A_t is dense.</param>
    /// <param name="maxDegreeOfParallelism">The cores available.</param>
    public static int ChooseChunks(int length, int n, bool dense, int maxDegreeOfParallelism)
    {
        const int MinimumChunkSteps = 512;
        if (maxDegreeOfParallelism < 4 || length < 2 * MinimumChunkSteps)
        {
            return 1;
        }

        // Dense: the blocked scan costs ≈ L n³/p against L n² sequential; it needs n well below p to win.
        if (dense && n >= maxDegreeOfParallelism)
        {
            return 1;
        }

        return Math.Min(maxDegreeOfParallelism, length / MinimumChunkSteps);
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
