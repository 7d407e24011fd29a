using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace DeerSharp.Cpu;

/// <summary>
/// Four GRU or LSTM sequences stepped together by the fused loop (a batch's sequences on one core): per step, the products
/// W_hh h of all four, one lane vector of the block at a time (twelve accumulators for a GRU, sixteen for an LSTM, each
/// weight load feeding four FMAs), stored to a small buffer, then the gates of each sequence from there. A quad reads
/// W_hh once for four sequences where two pairs read it twice. The kernels alone against two pairs on the same
/// projections (docs/benchmarks.md, "batches four at a time": scratch programs and `BatchKernelBenchmarks`, the 2-core
/// AVX-512 VM): GRU n = 64-256 0.52-0.89, LSTM n = 128-256 0.57-1.09 (most runs 0.57-0.96); where W_hh fits in L1 no
/// gain (<see cref="HasQuad"/>). Each sequence's states are the single loop's, bit for bit: every lane sums over the
/// state in the same order, one FMA per term, and the gates are <see cref="GruLanes{TS, TV}"/> and
/// <see cref="LstmLanes{TS, TV}"/>.
/// </summary>
/// <remarks>
/// Sixteen accumulators, four broadcasts and a weight need 21 vector registers: only CPUs with 32 (AVX-512, at either
/// width) take quads; with AVX2's 16 they would spill every iteration, and batches stay in pairs there.
/// </remarks>
internal static partial class FusedLoop
{
    /// <summary>
    /// Whether <see cref="TryRunQuad"/> would run for this cell type and state size: where W_hh does not fit in L1
    /// (GRU n ≥ 64, LSTM n ≥ 64), so that reading it once for four sequences pays. Where it fits, a pair's step is already
    /// bound by its FMAs or its activations, which a quad does not reduce: GRU n = 32 measured 0.91-1.21 times two pairs'
    /// time and LSTM n = 16-32 0.98-1.20 (GRU n = 16 gained, 0.78-0.82, and is left to pairs all the same: one rule).
    /// </summary>
    public static bool HasQuad<TCell, T>(in TCell cell)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T> =>
        Simd512.IsAccelerated && HasPair<TCell, T>(cell)
        && (typeof(TCell) == typeof(LstmCell<float>) ? 4L : 3L) * cell.OutputSize * cell.OutputSize * sizeof(float) >= L1Bytes;

    /// <summary>One sequence's h0, projections and output, as the float spans the kernels take (T is float where the loop runs).</summary>
    public static Lanes LanesOf<T>(ReadOnlySpan<T> h0, ReadOnlySpan<T> projections, Span<T> states)
        where T : unmanaged =>
        new(MemoryMarshal.Cast<T, float>(h0), MemoryMarshal.Cast<T, float>(projections), MemoryMarshal.Cast<T, float>(states));

    /// <summary>
    /// Steps 0 .. count − 1 of four sequences together; false (nothing written) where it does not apply. <paramref name="finite"/>
    /// (four values): every value stored for that sequence was finite (false: at least one may not be, and the caller scans).
    /// </summary>
    public static bool TryRunQuad<TCell, T>(in TCell cell, Lanes a, Lanes b, Lanes c, Lanes d, int count, Span<bool> finite)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        finite[..4].Clear();
        if (!HasQuad<TCell, T>(cell))
        {
            return false;
        }

        if (typeof(TCell) == typeof(LstmCell<float>))
        {
            CellWeights<float> l = Unsafe.As<TCell, LstmCell<float>>(ref Unsafe.AsRef(in cell)).Packed;
            return Width(l.HiddenSize) == 512
                ? LstmQuad<Simd512, Vector512<float>>(l, a, b, c, d, count, finite)
                : LstmQuad<Simd256, Vector256<float>>(l, a, b, c, d, count, finite);
        }

        CellWeights<float> w = Unsafe.As<TCell, GruCell<float>>(ref Unsafe.AsRef(in cell)).Packed;
        return Width(w.HiddenSize) == 512
            ? GruQuad<Simd512, Vector512<float>>(w, a, b, c, d, count, finite)
            : GruQuad<Simd256, Vector256<float>>(w, a, b, c, d, count, finite);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static bool GruQuad<TS, TV>(CellWeights<float> w, Lanes a, Lanes b, Lanes c, Lanes d, int count, Span<bool> finite)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        int n = w.HiddenSize, v = TS.Count, rows = 3 * n;
        if (n % v != 0 || !a.Fits(n, rows, count) || !b.Fits(n, rows, count) || !c.Fits(n, rows, count) || !d.Fits(n, rows, count))
        {
            return false;
        }

        ref float wt = ref Packed(w, 3, v);
        ref float bhn = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(w.HiddenBias), 2 * n);
        Span<float> buffer = rows <= 1024 ? stackalloc float[4 * rows] : new float[4 * rows];
        ref float sums = ref MemoryMarshal.GetReference(buffer);
        ref float prev0 = ref MemoryMarshal.GetReference(a.H0), prev1 = ref MemoryMarshal.GetReference(b.H0);
        ref float prev2 = ref MemoryMarshal.GetReference(c.H0), prev3 = ref MemoryMarshal.GetReference(d.H0);
        ref float cur0 = ref MemoryMarshal.GetReference(a.States), cur1 = ref MemoryMarshal.GetReference(b.States);
        ref float cur2 = ref MemoryMarshal.GetReference(c.States), cur3 = ref MemoryMarshal.GetReference(d.States);
        ref float p0 = ref MemoryMarshal.GetReference(a.Projections), p1 = ref MemoryMarshal.GetReference(b.Projections);
        ref float p2 = ref MemoryMarshal.GetReference(c.Projections), p3 = ref MemoryMarshal.GetReference(d.Projections);
        TV check0 = default, check1 = default, check2 = default, check3 = default;
        for (int t = 0; t < count; t++)
        {
            for (int k = 0; k < n;)
            {
                int block = k + 2 * v <= n ? 2 * v : v;
                ref float first = ref Unsafe.Add(ref wt, k * rows);
                for (int j = 0; j < block; j += v)
                {
                    TV r0 = default, z0 = default, h0 = default, r1 = default, z1 = default, h1 = default;
                    TV r2 = default, z2 = default, h2 = default, r3 = default, z3 = default, h3 = default;
                    ref float col = ref Unsafe.Add(ref first, j);
                    for (int q = 0; q < n; q++)
                    {
                        TV x0 = TS.Create(Unsafe.Add(ref prev0, q)), x1 = TS.Create(Unsafe.Add(ref prev1, q));
                        TV x2 = TS.Create(Unsafe.Add(ref prev2, q)), x3 = TS.Create(Unsafe.Add(ref prev3, q));
                        TV wr = TS.Load(ref col, 0);
                        (r0, r1, r2, r3) = (TS.Fma(x0, wr, r0), TS.Fma(x1, wr, r1), TS.Fma(x2, wr, r2), TS.Fma(x3, wr, r3));
                        TV wz = TS.Load(ref col, (nuint)block);
                        (z0, z1, z2, z3) = (TS.Fma(x0, wz, z0), TS.Fma(x1, wz, z1), TS.Fma(x2, wz, z2), TS.Fma(x3, wz, z3));
                        TV wn = TS.Load(ref col, (nuint)(2 * block));
                        (h0, h1, h2, h3) = (TS.Fma(x0, wn, h0), TS.Fma(x1, wn, h1), TS.Fma(x2, wn, h2), TS.Fma(x3, wn, h3));
                        col = ref Unsafe.Add(ref col, 3 * block);
                    }

                    int lane = k + j;
                    StoreSums<TS, TV>(r0, z0, h0, ref sums, n, lane);
                    StoreSums<TS, TV>(r1, z1, h1, ref Unsafe.Add(ref sums, rows), n, lane);
                    StoreSums<TS, TV>(r2, z2, h2, ref Unsafe.Add(ref sums, 2 * rows), n, lane);
                    StoreSums<TS, TV>(r3, z3, h3, ref Unsafe.Add(ref sums, 3 * rows), n, lane);
                }

                k += block;
            }

            for (int k = 0; k < n; k += v)
            {
                check0 = Check<TS, TV>(check0, GruFromSums<TS, TV>(ref sums, ref p0, ref bhn, ref prev0, ref cur0, n, k));
                check1 = Check<TS, TV>(check1, GruFromSums<TS, TV>(ref Unsafe.Add(ref sums, rows), ref p1, ref bhn, ref prev1, ref cur1, n, k));
                check2 = Check<TS, TV>(check2, GruFromSums<TS, TV>(ref Unsafe.Add(ref sums, 2 * rows), ref p2, ref bhn, ref prev2, ref cur2, n, k));
                check3 = Check<TS, TV>(check3, GruFromSums<TS, TV>(ref Unsafe.Add(ref sums, 3 * rows), ref p3, ref bhn, ref prev3, ref cur3, n, k));
            }

            prev0 = ref cur0;
            prev1 = ref cur1;
            prev2 = ref cur2;
            prev3 = ref cur3;
            cur0 = ref Unsafe.Add(ref cur0, n);
            cur1 = ref Unsafe.Add(ref cur1, n);
            cur2 = ref Unsafe.Add(ref cur2, n);
            cur3 = ref Unsafe.Add(ref cur3, n);
            p0 = ref Unsafe.Add(ref p0, rows);
            p1 = ref Unsafe.Add(ref p1, rows);
            p2 = ref Unsafe.Add(ref p2, rows);
            p3 = ref Unsafe.Add(ref p3, rows);
        }

        (finite[0], finite[1], finite[2], finite[3]) = (Finite<TS, TV>(check0), Finite<TS, TV>(check1), Finite<TS, TV>(check2), Finite<TS, TV>(check3));
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static bool LstmQuad<TS, TV>(CellWeights<float> w, Lanes a, Lanes b, Lanes c, Lanes d, int count, Span<bool> finite)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        int n = w.HiddenSize, v = TS.Count, rows = 4 * n, s = 2 * n;
        if (n % v != 0 || !a.Fits(s, rows, count) || !b.Fits(s, rows, count) || !c.Fits(s, rows, count) || !d.Fits(s, rows, count))
        {
            return false;
        }

        ref float wt = ref Packed(w, 4, v);
        Span<float> buffer = rows <= 1024 ? stackalloc float[4 * rows] : new float[4 * rows];
        ref float sums = ref MemoryMarshal.GetReference(buffer);
        ref float prev0 = ref MemoryMarshal.GetReference(a.H0), prev1 = ref MemoryMarshal.GetReference(b.H0);
        ref float prev2 = ref MemoryMarshal.GetReference(c.H0), prev3 = ref MemoryMarshal.GetReference(d.H0);
        ref float cur0 = ref MemoryMarshal.GetReference(a.States), cur1 = ref MemoryMarshal.GetReference(b.States);
        ref float cur2 = ref MemoryMarshal.GetReference(c.States), cur3 = ref MemoryMarshal.GetReference(d.States);
        ref float p0 = ref MemoryMarshal.GetReference(a.Projections), p1 = ref MemoryMarshal.GetReference(b.Projections);
        ref float p2 = ref MemoryMarshal.GetReference(c.Projections), p3 = ref MemoryMarshal.GetReference(d.Projections);
        TV check0 = default, check1 = default, check2 = default, check3 = default;
        for (int t = 0; t < count; t++)
        {
            for (int k = 0; k < n;)
            {
                int block = k + 2 * v <= n ? 2 * v : v;
                ref float first = ref Unsafe.Add(ref wt, k * rows);
                for (int j = 0; j < block; j += v)
                {
                    TV i0 = default, f0 = default, g0 = default, o0 = default, i1 = default, f1 = default, g1 = default, o1 = default;
                    TV i2 = default, f2 = default, g2 = default, o2 = default, i3 = default, f3 = default, g3 = default, o3 = default;
                    ref float col = ref Unsafe.Add(ref first, j);
                    for (int q = 0; q < n; q++)
                    {
                        TV x0 = TS.Create(Unsafe.Add(ref prev0, q)), x1 = TS.Create(Unsafe.Add(ref prev1, q));
                        TV x2 = TS.Create(Unsafe.Add(ref prev2, q)), x3 = TS.Create(Unsafe.Add(ref prev3, q));
                        TV wi = TS.Load(ref col, 0);
                        (i0, i1, i2, i3) = (TS.Fma(x0, wi, i0), TS.Fma(x1, wi, i1), TS.Fma(x2, wi, i2), TS.Fma(x3, wi, i3));
                        TV wf = TS.Load(ref col, (nuint)block);
                        (f0, f1, f2, f3) = (TS.Fma(x0, wf, f0), TS.Fma(x1, wf, f1), TS.Fma(x2, wf, f2), TS.Fma(x3, wf, f3));
                        TV wg = TS.Load(ref col, (nuint)(2 * block));
                        (g0, g1, g2, g3) = (TS.Fma(x0, wg, g0), TS.Fma(x1, wg, g1), TS.Fma(x2, wg, g2), TS.Fma(x3, wg, g3));
                        TV wo = TS.Load(ref col, (nuint)(3 * block));
                        (o0, o1, o2, o3) = (TS.Fma(x0, wo, o0), TS.Fma(x1, wo, o1), TS.Fma(x2, wo, o2), TS.Fma(x3, wo, o3));
                        col = ref Unsafe.Add(ref col, 4 * block);
                    }

                    int lane = k + j;
                    StoreGates<TS, TV>(i0, f0, g0, o0, ref sums, n, lane);
                    StoreGates<TS, TV>(i1, f1, g1, o1, ref Unsafe.Add(ref sums, rows), n, lane);
                    StoreGates<TS, TV>(i2, f2, g2, o2, ref Unsafe.Add(ref sums, 2 * rows), n, lane);
                    StoreGates<TS, TV>(i3, f3, g3, o3, ref Unsafe.Add(ref sums, 3 * rows), n, lane);
                }

                k += block;
            }

            check0 = LstmGates<TS, TV>(ref sums, ref p0, ref prev0, ref cur0, n, check0);
            check1 = LstmGates<TS, TV>(ref Unsafe.Add(ref sums, rows), ref p1, ref prev1, ref cur1, n, check1);
            check2 = LstmGates<TS, TV>(ref Unsafe.Add(ref sums, 2 * rows), ref p2, ref prev2, ref cur2, n, check2);
            check3 = LstmGates<TS, TV>(ref Unsafe.Add(ref sums, 3 * rows), ref p3, ref prev3, ref cur3, n, check3);

            prev0 = ref cur0;
            prev1 = ref cur1;
            prev2 = ref cur2;
            prev3 = ref cur3;
            cur0 = ref Unsafe.Add(ref cur0, s);
            cur1 = ref Unsafe.Add(ref cur1, s);
            cur2 = ref Unsafe.Add(ref cur2, s);
            cur3 = ref Unsafe.Add(ref cur3, s);
            p0 = ref Unsafe.Add(ref p0, rows);
            p1 = ref Unsafe.Add(ref p1, rows);
            p2 = ref Unsafe.Add(ref p2, rows);
            p3 = ref Unsafe.Add(ref p3, rows);
        }

        (finite[0], finite[1], finite[2], finite[3]) = (Finite<TS, TV>(check0), Finite<TS, TV>(check1), Finite<TS, TV>(check2), Finite<TS, TV>(check3));
        return true;
    }

    /// <summary>The r, z and W_hn h sums of v lanes, at their rows of one sequence's sums [r; z; n].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreSums<TS, TV>(TV r, TV z, TV h, ref float sums, int n, int k)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        TS.Store(r, ref sums, (nuint)k);
        TS.Store(z, ref sums, (nuint)(n + k));
        TS.Store(h, ref sums, (nuint)(2 * n + k));
    }

    /// <summary>The GRU gates of v lanes from one sequence's stored sums (<see cref="GruLanes{TS, TV}"/>); returns the h' stored.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV GruFromSums<TS, TV>(ref float sums, ref float p, ref float bhn, ref float prev, ref float next, int n, int k)
        where TS : struct, ISimd<TV>
        where TV : struct =>
        GruLanes<TS, TV>(TS.Load(ref sums, (nuint)k), TS.Load(ref sums, (nuint)(n + k)), TS.Load(ref sums, (nuint)(2 * n + k)), ref p, ref bhn, ref prev, ref next, n, k);

    /// <summary>
    /// One sequence's LSTM gates over all its lanes from its stored sums (<see cref="LstmLanes{TS, TV}"/>), added to its
    /// finiteness check. A method of its own: the four sequences' gates inlined into the quad (twenty activations a lane
    /// vector) ran past the JIT's inlining budget, so that the activations became calls and the quad took 1.3-1.8 times
    /// two pairs' time. The GRU quad's gates (twelve activations) are inlined, and were measured to be (the disassembly).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static TV LstmGates<TS, TV>(ref float sums, ref float p, ref float prev, ref float next, int n, TV check)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        for (int k = 0; k < n; k += TS.Count)
        {
            check = Check<TS, TV>(check, LstmLanes<TS, TV>(TS.Load(ref sums, (nuint)k), TS.Load(ref sums, (nuint)(n + k)), TS.Load(ref sums, (nuint)(2 * n + k)),
                TS.Load(ref sums, (nuint)(3 * n + k)), ref p, ref prev, ref next, n, k));
        }

        return check;
    }
}
