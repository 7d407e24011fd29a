using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace DeerSharp.Cpu;

/// <summary>
/// The sequential loop for float32 GRU and LSTM cells with W_hh h and the gates fused in one pass per step: the
/// accumulators of every gate for a block of output lanes stay in registers over the whole reduction, the gates are
/// applied to them there, and only h' (and c') is stored. 512-bit vectors where the CPU runs them and n is a multiple
/// of 16, else 256-bit where n is a multiple of 8; other cells, widths and float64 use the generic loop.
/// </summary>
/// <remarks>
/// Every lane computes exactly what <see cref="GruCell{T}.Evaluate"/> and <see cref="LstmCell{T}.Evaluate"/> compute:
/// the product sums over the state in the same order, one FMA per term, and the gates use the same single-precision
/// exp (<see cref="SimdMath"/>). The states are therefore the generic loop's, bit for bit (KernelTests checks it).
/// </remarks>
internal static partial class FusedLoop
{
    /// <summary>Which width the loop would use for a state of n lanes: 512, 256, or 0 for none.</summary>
    public static int Width(int n) =>
        Simd512.IsAccelerated && n % Simd512.Count == 0 ? 512 : Simd256.IsAccelerated && n % Simd256.Count == 0 ? 256 : 0;

    /// <summary>
    /// Runs steps 0 .. count − 1 into <paramref name="states"/> from <paramref name="previous"/> when the cell has a fused
    /// loop at this width; returns false (and writes nothing) otherwise. <paramref name="finite"/> is true when every value
    /// the loop stored is finite; false means at least one may not be (<see cref="Check{TS, TV}"/>), and the caller scans.
    /// </summary>
    public static bool TryRun<TCell, T>(in TCell cell, ReadOnlySpan<T> previous, ReadOnlySpan<T> projections, Span<T> states, int count, out bool finite)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        finite = false;
        if (typeof(T) != typeof(float))
        {
            return false;
        }

        ReadOnlySpan<float> h0 = MemoryMarshal.Cast<T, float>(previous), p = MemoryMarshal.Cast<T, float>(projections);
        Span<float> h = MemoryMarshal.Cast<T, float>(states);
        if (typeof(TCell) == typeof(GruCell<float>))
        {
            CellWeights<float> w = Unsafe.As<TCell, GruCell<float>>(ref Unsafe.AsRef(in cell)).Packed;
            return Width(w.HiddenSize) switch
            {
                512 => Gru<Simd512, Vector512<float>>(w, h0, p, h, count, out finite),
                256 => Gru<Simd256, Vector256<float>>(w, h0, p, h, count, out finite),
                _ => false,
            };
        }

        if (typeof(TCell) == typeof(LstmCell<float>))
        {
            CellWeights<float> w = Unsafe.As<TCell, LstmCell<float>>(ref Unsafe.AsRef(in cell)).Packed;
            return Width(w.HiddenSize) switch
            {
                512 => Lstm<Simd512, Vector512<float>>(w, h0, p, h, count, out finite),
                256 => Lstm<Simd256, Vector256<float>>(w, h0, p, h, count, out finite),
                _ => false,
            };
        }

        return false;
    }

    /// <summary>
    /// W_hhᵀ [n, G·n] repacked for the loop at v lanes, so each pass streams one contiguous run of memory: the lanes in
    /// blocks of 2v (then one of v when n/v is odd); within a block, for each state index q, the G gates' vectors for the
    /// block's lanes, gate after gate. Built once per cell and width (the cell's weights are a snapshot), and cached there.
    /// </summary>
    internal static unsafe ref float Packed(CellWeights<float> w, int gates, int v)
    {
        PackedWeights? cached = Volatile.Read(ref w.Fused);
        if (cached is null || cached.Lanes != v)
        {
            int n = w.HiddenSize, rows = gates * n;
            float[] wt = w.HiddenTransposed;
            // Pinned and 64-byte aligned: a 512-bit load that straddles two cache lines costs two, which matters most when
            // W_hh streams from L2 every step (n = 128 measured 2.8 µs a step unaligned, 1.3-1.4 µs aligned).
            float[] storage = GC.AllocateArray<float>(wt.Length + 16, pinned: true);
            int offset;
            fixed (float* p = storage)
            {
                offset = (int)((64 - ((nint)p & 63)) & 63) / sizeof(float);
            }

            int o = offset;
            for (int k = 0; k < n;)
            {
                int block = k + 2 * v <= n ? 2 * v : v;
                for (int q = 0; q < n; q++)
                {
                    for (int g = 0; g < gates; g++)
                    {
                        Array.Copy(wt, q * rows + g * n + k, storage, o, block);
                        o += block;
                    }
                }

                k += block;
            }

            cached = new PackedWeights(v, storage, offset);
            Volatile.Write(ref w.Fused, cached);
        }

        return ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(cached.Values), cached.Offset);
    }

    /// <summary>
    /// GRU steps at one width (n a multiple of its lane count). Per step and block of two lane vectors: six accumulators
    /// (r, z and W_hn h for each) over the reduction, then r = σ(p_r + ·), z = σ(p_z + ·), n = tanh(p_n + r ⊙ (· + b_hn)),
    /// h' = n + z ⊙ (h − n). <paramref name="finite"/>: every h' stored was finite (<see cref="Check{TS, TV}"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static bool Gru<TS, TV>(CellWeights<float> w, ReadOnlySpan<float> h0, ReadOnlySpan<float> projections, Span<float> states, int count, out bool finite)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        int n = w.HiddenSize, v = TS.Count, rows = 3 * n;
        finite = false;
        if (n % v != 0 || h0.Length < n || projections.Length < (long)count * rows || states.Length < (long)count * n)
        {
            return false;
        }

        ref float wt = ref Packed(w, 3, v);
        ref float bhn = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(w.HiddenBias), 2 * n);
        ref float prev = ref MemoryMarshal.GetReference(h0);
        ref float cur = ref MemoryMarshal.GetReference(states);
        ref float pt = ref MemoryMarshal.GetReference(projections);
        int full = n / (2 * v);
        bool tail = n % (2 * v) != 0, zigzag = Zigzag(n, 3, v);
        TV check = default;
        for (int t = 0; t < count; t++)
        {
            bool reverse = zigzag && (t & 1) != 0;
            if (reverse && tail)
            {
                check = Check<TS, TV>(check, GruTail<TS, TV>(ref wt, ref pt, ref bhn, ref prev, ref cur, n, full * 2 * v));
            }

            for (int b = 0; b < full; b++)
            {
                check = Check<TS, TV>(check, GruBlock<TS, TV>(ref wt, ref pt, ref bhn, ref prev, ref cur, n, (reverse ? full - 1 - b : b) * 2 * v));
            }

            if (!reverse && tail)
            {
                check = Check<TS, TV>(check, GruTail<TS, TV>(ref wt, ref pt, ref bhn, ref prev, ref cur, n, full * 2 * v));
            }

            prev = ref cur;
            cur = ref Unsafe.Add(ref cur, n);
            pt = ref Unsafe.Add(ref pt, rows);
        }

        finite = Finite<TS, TV>(check);
        return true;
    }

    /// <summary>
    /// Whether the loop walks W_hh's blocks forward on even steps and backward on odd ones, so that the block read last in
    /// one step, still in L1, is the first read in the next. Taken where W_hh does not fit L1 and a block fits three
    /// quarters of it, at 512 bits. Measured on the 2-core VM (the kernel alone, T = 4,096, 21 interleaved rounds, five
    /// runs): GRU n = 80 and 96 and LSTM n = 64 took 0.82-0.95 of the forward walk's time. With bigger blocks the gain went
    /// both ways: GRU n = 128 (48 KB blocks) 0.94-0.97 in the VM's fast phases and 1.03-1.04 in its slow ones, when less
    /// of L1 seems to be left to this core. At 256 bits the step is bound by its FMAs, not L2 (GRU n = 128: 3.6 µs against
    /// 1.4 at 512 bits), and zigzagging measured 1.01-1.03 times slower at every n from 80 to 256.
    /// </summary>
    internal static bool Zigzag(int n, int gates, int v) =>
        v == 16 && (long)gates * n * n * sizeof(float) > L1Bytes && (long)gates * n * 2 * v * sizeof(float) <= 3 * L1Bytes / 4;

    /// <summary>The L1 data cache this is tuned for: 48 KB (AMD Zen 4 and 5, Intel since Ice Lake); with a smaller one, less is reused.</summary>
    private const int L1Bytes = 48 << 10;

    /// <summary>Lanes k to k + 2v of one GRU step: six accumulators over the reduction, then the gates; returns the sum of the h' stored.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV GruBlock<TS, TV>(ref float wt, ref float pt, ref float bhn, ref float prev, ref float cur, int n, int k)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        int v = TS.Count;
        TV r0 = default, r1 = default, z0 = default, z1 = default, n0 = default, n1 = default;
        ref float col = ref Unsafe.Add(ref wt, k * 3 * n);
        for (int q = 0; q < n; q++)
        {
            TV x = TS.Create(Unsafe.Add(ref prev, q));
            r0 = TS.Fma(x, TS.Load(ref col, 0), r0);
            r1 = TS.Fma(x, TS.Load(ref col, (nuint)v), r1);
            z0 = TS.Fma(x, TS.Load(ref col, (nuint)(2 * v)), z0);
            z1 = TS.Fma(x, TS.Load(ref col, (nuint)(3 * v)), z1);
            n0 = TS.Fma(x, TS.Load(ref col, (nuint)(4 * v)), n0);
            n1 = TS.Fma(x, TS.Load(ref col, (nuint)(5 * v)), n1);
            col = ref Unsafe.Add(ref col, 6 * v);
        }

        return TS.Add(GruLanes<TS, TV>(r0, z0, n0, ref pt, ref bhn, ref prev, ref cur, n, k), GruLanes<TS, TV>(r1, z1, n1, ref pt, ref bhn, ref prev, ref cur, n, k + v));
    }

    /// <summary>The last v lanes of one GRU step, when n/v is odd; returns the h' stored.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV GruTail<TS, TV>(ref float wt, ref float pt, ref float bhn, ref float prev, ref float cur, int n, int k)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        int v = TS.Count;
        TV r0 = default, z0 = default, n0 = default;
        ref float col = ref Unsafe.Add(ref wt, k * 3 * n);
        for (int q = 0; q < n; q++)
        {
            TV x = TS.Create(Unsafe.Add(ref prev, q));
            r0 = TS.Fma(x, TS.Load(ref col, 0), r0);
            z0 = TS.Fma(x, TS.Load(ref col, (nuint)v), z0);
            n0 = TS.Fma(x, TS.Load(ref col, (nuint)(2 * v)), n0);
            col = ref Unsafe.Add(ref col, 3 * v);
        }

        return GruLanes<TS, TV>(r0, z0, n0, ref pt, ref bhn, ref prev, ref cur, n, k);
    }

    /// <summary>The gates of v lanes from their sums; stores h' and returns it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV GruLanes<TS, TV>(TV hr, TV hz, TV hn, ref float p, ref float bhn, ref float prev, ref float next, int n, int k)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        TV r = SimdMath.Sigmoid<TS, TV>(TS.Add(TS.Load(ref p, (nuint)k), hr));
        TV z = SimdMath.Sigmoid<TS, TV>(TS.Add(TS.Load(ref p, (nuint)(n + k)), hz));
        TV a = TS.Add(hn, TS.Load(ref bhn, (nuint)k));
        TV g = SimdMath.Tanh<TS, TV>(TS.Fma(r, a, TS.Load(ref p, (nuint)(2 * n + k))));
        TV h = TS.Fma(z, TS.Subtract(TS.Load(ref prev, (nuint)k), g), g);
        TS.Store(h, ref next, (nuint)k);
        return h;
    }

    /// <summary>
    /// The loops' finiteness check, one FMA per stored vector off the step's dependency chain: check + x·0 stays ±0 while
    /// every x is finite and becomes NaN, for good, at the first NaN or ±∞ (∞·0 is NaN). The loops feed it sums of stored
    /// vectors, which can overflow to ∞ from finite values: that only makes <see cref="Finite{TS, TV}"/> false, and the caller
    /// then scans the states themselves, so the check can send a caller to scan needlessly but never pass a non-finite value.
    /// It replaced a scan of each chunk's states after the loop (about 1% of an n = 128 GRU run).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static TV Check<TS, TV>(TV check, TV stored)
        where TS : struct, ISimd<TV>
        where TV : struct => TS.Fma(stored, default, check);

    /// <summary>Whether a check built by <see cref="Check{TS, TV}"/> saw only finite values.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static bool Finite<TS, TV>(TV check)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        Span<float> lanes = stackalloc float[TS.Count];
        TS.Store(check, ref lanes[0], 0);
        foreach (float x in lanes)
        {
            if (!float.IsFinite(x))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// LSTM steps at one width, on the state [h; c]. Per step and block of two lane vectors: eight accumulators (i, f, g,
    /// o for each), then c' = f ⊙ c + i ⊙ g and h' = o ⊙ tanh(c'). <paramref name="finite"/>: every h' and c' stored was finite.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static bool Lstm<TS, TV>(CellWeights<float> w, ReadOnlySpan<float> h0, ReadOnlySpan<float> projections, Span<float> states, int count, out bool finite)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        int n = w.HiddenSize, v = TS.Count, rows = 4 * n, s = 2 * n;
        finite = false;
        if (n % v != 0 || h0.Length < s || projections.Length < (long)count * rows || states.Length < (long)count * s)
        {
            return false;
        }

        ref float wt = ref Packed(w, 4, v);
        ref float prev = ref MemoryMarshal.GetReference(h0);
        ref float cur = ref MemoryMarshal.GetReference(states);
        ref float pt = ref MemoryMarshal.GetReference(projections);
        int full = n / (2 * v);
        bool tail = n % (2 * v) != 0, zigzag = Zigzag(n, 4, v);
        TV check = default;
        for (int t = 0; t < count; t++)
        {
            bool reverse = zigzag && (t & 1) != 0;
            if (reverse && tail)
            {
                check = Check<TS, TV>(check, LstmTail<TS, TV>(ref wt, ref pt, ref prev, ref cur, n, full * 2 * v));
            }

            for (int b = 0; b < full; b++)
            {
                check = Check<TS, TV>(check, LstmBlock<TS, TV>(ref wt, ref pt, ref prev, ref cur, n, (reverse ? full - 1 - b : b) * 2 * v));
            }

            if (!reverse && tail)
            {
                check = Check<TS, TV>(check, LstmTail<TS, TV>(ref wt, ref pt, ref prev, ref cur, n, full * 2 * v));
            }

            prev = ref cur;
            cur = ref Unsafe.Add(ref cur, s);
            pt = ref Unsafe.Add(ref pt, rows);
        }

        finite = Finite<TS, TV>(check);
        return true;
    }

    /// <summary>Lanes k to k + 2v of one LSTM step: eight accumulators over the reduction, then the gates; returns the sum of the h' and c' stored.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV LstmBlock<TS, TV>(ref float wt, ref float pt, ref float prev, ref float cur, int n, int k)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        int v = TS.Count;
        TV i0 = default, i1 = default, f0 = default, f1 = default, g0 = default, g1 = default, o0 = default, o1 = default;
        ref float col = ref Unsafe.Add(ref wt, k * 4 * n);
        for (int q = 0; q < n; q++)
        {
            TV x = TS.Create(Unsafe.Add(ref prev, q));
            i0 = TS.Fma(x, TS.Load(ref col, 0), i0);
            i1 = TS.Fma(x, TS.Load(ref col, (nuint)v), i1);
            f0 = TS.Fma(x, TS.Load(ref col, (nuint)(2 * v)), f0);
            f1 = TS.Fma(x, TS.Load(ref col, (nuint)(3 * v)), f1);
            g0 = TS.Fma(x, TS.Load(ref col, (nuint)(4 * v)), g0);
            g1 = TS.Fma(x, TS.Load(ref col, (nuint)(5 * v)), g1);
            o0 = TS.Fma(x, TS.Load(ref col, (nuint)(6 * v)), o0);
            o1 = TS.Fma(x, TS.Load(ref col, (nuint)(7 * v)), o1);
            col = ref Unsafe.Add(ref col, 8 * v);
        }

        return TS.Add(LstmLanes<TS, TV>(i0, f0, g0, o0, ref pt, ref prev, ref cur, n, k), LstmLanes<TS, TV>(i1, f1, g1, o1, ref pt, ref prev, ref cur, n, k + v));
    }

    /// <summary>The last v lanes of one LSTM step, when n/v is odd; returns the sum of the h' and c' stored.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV LstmTail<TS, TV>(ref float wt, ref float pt, ref float prev, ref float cur, int n, int k)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        int v = TS.Count;
        TV i0 = default, f0 = default, g0 = default, o0 = default;
        ref float col = ref Unsafe.Add(ref wt, k * 4 * n);
        for (int q = 0; q < n; q++)
        {
            TV x = TS.Create(Unsafe.Add(ref prev, q));
            i0 = TS.Fma(x, TS.Load(ref col, 0), i0);
            f0 = TS.Fma(x, TS.Load(ref col, (nuint)v), f0);
            g0 = TS.Fma(x, TS.Load(ref col, (nuint)(2 * v)), g0);
            o0 = TS.Fma(x, TS.Load(ref col, (nuint)(3 * v)), o0);
            col = ref Unsafe.Add(ref col, 4 * v);
        }

        return LstmLanes<TS, TV>(i0, f0, g0, o0, ref pt, ref prev, ref cur, n, k);
    }

    /// <summary>The gates of v lanes from their sums; stores c' and h' and returns c' + h'.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV LstmLanes<TS, TV>(TV hi, TV hf, TV hg, TV ho, ref float p, ref float prev, ref float next, int n, int k)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        TV i = SimdMath.Sigmoid<TS, TV>(TS.Add(TS.Load(ref p, (nuint)k), hi));
        TV f = SimdMath.Sigmoid<TS, TV>(TS.Add(TS.Load(ref p, (nuint)(n + k)), hf));
        TV g = SimdMath.Tanh<TS, TV>(TS.Add(TS.Load(ref p, (nuint)(2 * n + k)), hg));
        TV o = SimdMath.Sigmoid<TS, TV>(TS.Add(TS.Load(ref p, (nuint)(3 * n + k)), ho));
        TV c = TS.Fma(f, TS.Load(ref prev, (nuint)(n + k)), TS.Multiply(i, g));
        TS.Store(c, ref next, (nuint)(n + k));
        TV h = TS.Multiply(o, SimdMath.Tanh<TS, TV>(c));
        TS.Store(h, ref next, (nuint)k);
        return TS.Add(c, h);
    }
}
