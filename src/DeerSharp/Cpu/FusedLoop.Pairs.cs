using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace DeerSharp.Cpu;

/// <summary>
/// Two GRU or LSTM sequences stepped together by the fused loop (a batch's sequences on one core): each weight load feeds
/// both sequences' accumulators, and the two dependency chains of a step (the reduction, then the gates) overlap, where one
/// sequence alone leaves the core waiting on its latency. GRU: 70-75 against 90-96 ns a sequence-step at n = 32 (a
/// scratch program, 40 rounds, medians), its accumulators kept in registers through the gates. An LSTM's sixteen
/// accumulators leave too few registers for its five activations (kept live through them, the pair measured 165 ns
/// against 100 alone), so its pair stores each step's sums to a small buffer and applies the gates from there. LSTM,
/// the kernels alone against two single loops (a scratch program, 31 interleaved rounds, medians, ns a sequence-step):
/// n = 16 48-51 against 75-78; n = 32 101-107 against 107-111 (the five activations bind it); n = 64 341-369 against
/// 579-606 and n = 128 1,139-1,299 against 1,907-1,938 (W_hh, 64 KB and more, streams from L2 every step; a pair reads
/// it once for both). Each sequence's states are the single loop's, bit for bit.
/// </summary>
internal static partial class FusedLoop
{
    /// <summary>Whether <see cref="TryRunPair"/> would run for this cell type and state size.</summary>
    public static bool HasPair<TCell, T>(in TCell cell)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T> =>
        typeof(T) == typeof(float) && (typeof(TCell) == typeof(GruCell<float>) || typeof(TCell) == typeof(LstmCell<float>)) && Width(cell.OutputSize) != 0;

    /// <summary>
    /// Steps 0 .. count − 1 of two sequences (A and B) together; false (nothing written) where it does not apply.
    /// <paramref name="finiteA"/> and <paramref name="finiteB"/>: every value stored for that sequence was finite (false:
    /// at least one may not be, and the caller scans).
    /// </summary>
    public static bool TryRunPair<TCell, T>(in TCell cell, ReadOnlySpan<T> previousA, ReadOnlySpan<T> previousB, ReadOnlySpan<T> projectionsA,
        ReadOnlySpan<T> projectionsB, Span<T> statesA, Span<T> statesB, int count, out bool finiteA, out bool finiteB)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        (finiteA, finiteB) = (false, false);
        if (!HasPair<TCell, T>(cell))
        {
            return false;
        }

        var a = new Lanes(MemoryMarshal.Cast<T, float>(previousA), MemoryMarshal.Cast<T, float>(projectionsA), MemoryMarshal.Cast<T, float>(statesA));
        var b = new Lanes(MemoryMarshal.Cast<T, float>(previousB), MemoryMarshal.Cast<T, float>(projectionsB), MemoryMarshal.Cast<T, float>(statesB));
        if (typeof(TCell) == typeof(LstmCell<float>))
        {
            CellWeights<float> l = Unsafe.As<TCell, LstmCell<float>>(ref Unsafe.AsRef(in cell)).Packed;
            return Width(l.HiddenSize) == 512
                ? LstmPair<Simd512, Vector512<float>>(l, a, b, count, out finiteA, out finiteB)
                : LstmPair<Simd256, Vector256<float>>(l, a, b, count, out finiteA, out finiteB);
        }

        CellWeights<float> w = Unsafe.As<TCell, GruCell<float>>(ref Unsafe.AsRef(in cell)).Packed;
        return Width(w.HiddenSize) == 512
            ? GruPair<Simd512, Vector512<float>>(w, a, b, count, out finiteA, out finiteB)
            : GruPair<Simd256, Vector256<float>>(w, a, b, count, out finiteA, out finiteB);
    }

    /// <summary>One sequence's h0, projections and output.</summary>
    internal readonly ref struct Lanes(ReadOnlySpan<float> h0, ReadOnlySpan<float> projections, Span<float> states)
    {
        public readonly ReadOnlySpan<float> H0 = h0, Projections = projections;
        public readonly Span<float> States = states;

        public bool Fits(int s, int rows, int count) => H0.Length >= s && Projections.Length >= (long)count * rows && States.Length >= (long)count * s;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static bool GruPair<TS, TV>(CellWeights<float> w, Lanes a, Lanes b, int count, out bool finiteA, out bool finiteB)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        int n = w.HiddenSize, v = TS.Count, rows = 3 * n;
        (finiteA, finiteB) = (false, false);
        if (n % v != 0 || !a.Fits(n, rows, count) || !b.Fits(n, rows, count))
        {
            return false;
        }

        ref float wt = ref Packed(w, 3, v);
        ref float bhn = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(w.HiddenBias), 2 * n);
        ref float prevA = ref MemoryMarshal.GetReference(a.H0), prevB = ref MemoryMarshal.GetReference(b.H0);
        ref float curA = ref MemoryMarshal.GetReference(a.States), curB = ref MemoryMarshal.GetReference(b.States);
        ref float pA = ref MemoryMarshal.GetReference(a.Projections), pB = ref MemoryMarshal.GetReference(b.Projections);
        TV checkA = default, checkB = default;
        for (int t = 0; t < count; t++)
        {
            for (int k = 0; k < n;)
            {
                int block = k + 2 * v <= n ? 2 : 1;
                TV ra0 = default, ra1 = default, za0 = default, za1 = default, na0 = default, na1 = default;
                TV rb0 = default, rb1 = default, zb0 = default, zb1 = default, nb0 = default, nb1 = default;
                ref float col = ref Unsafe.Add(ref wt, k * rows);
                if (block == 2)
                {
                    for (int q = 0; q < n; q++)
                    {
                        TV xa = TS.Create(Unsafe.Add(ref prevA, q)), xb = TS.Create(Unsafe.Add(ref prevB, q));
                        TV w0 = TS.Load(ref col, 0), w1 = TS.Load(ref col, (nuint)v), w2 = TS.Load(ref col, (nuint)(2 * v));
                        TV w3 = TS.Load(ref col, (nuint)(3 * v)), w4 = TS.Load(ref col, (nuint)(4 * v)), w5 = TS.Load(ref col, (nuint)(5 * v));
                        (ra0, ra1, za0, za1, na0, na1) = (TS.Fma(xa, w0, ra0), TS.Fma(xa, w1, ra1), TS.Fma(xa, w2, za0), TS.Fma(xa, w3, za1), TS.Fma(xa, w4, na0), TS.Fma(xa, w5, na1));
                        (rb0, rb1, zb0, zb1, nb0, nb1) = (TS.Fma(xb, w0, rb0), TS.Fma(xb, w1, rb1), TS.Fma(xb, w2, zb0), TS.Fma(xb, w3, zb1), TS.Fma(xb, w4, nb0), TS.Fma(xb, w5, nb1));
                        col = ref Unsafe.Add(ref col, 6 * v);
                    }

                    // Lanes k first: the next step's product reads h in index order, so it can start on them while the
                    // gates of lanes k + v finish.
                    checkA = Check<TS, TV>(checkA, GruLanes<TS, TV>(ra0, za0, na0, ref pA, ref bhn, ref prevA, ref curA, n, k));
                    checkB = Check<TS, TV>(checkB, GruLanes<TS, TV>(rb0, zb0, nb0, ref pB, ref bhn, ref prevB, ref curB, n, k));
                    checkA = Check<TS, TV>(checkA, GruLanes<TS, TV>(ra1, za1, na1, ref pA, ref bhn, ref prevA, ref curA, n, k + v));
                    checkB = Check<TS, TV>(checkB, GruLanes<TS, TV>(rb1, zb1, nb1, ref pB, ref bhn, ref prevB, ref curB, n, k + v));
                    k += 2 * v;
                    continue;
                }
                else
                {
                    for (int q = 0; q < n; q++)
                    {
                        TV xa = TS.Create(Unsafe.Add(ref prevA, q)), xb = TS.Create(Unsafe.Add(ref prevB, q));
                        TV w0 = TS.Load(ref col, 0), w2 = TS.Load(ref col, (nuint)v), w4 = TS.Load(ref col, (nuint)(2 * v));
                        (ra0, za0, na0) = (TS.Fma(xa, w0, ra0), TS.Fma(xa, w2, za0), TS.Fma(xa, w4, na0));
                        (rb0, zb0, nb0) = (TS.Fma(xb, w0, rb0), TS.Fma(xb, w2, zb0), TS.Fma(xb, w4, nb0));
                        col = ref Unsafe.Add(ref col, 3 * v);
                    }
                }

                checkA = Check<TS, TV>(checkA, GruLanes<TS, TV>(ra0, za0, na0, ref pA, ref bhn, ref prevA, ref curA, n, k));
                checkB = Check<TS, TV>(checkB, GruLanes<TS, TV>(rb0, zb0, nb0, ref pB, ref bhn, ref prevB, ref curB, n, k));
                k += v;
            }

            prevA = ref curA;
            prevB = ref curB;
            curA = ref Unsafe.Add(ref curA, n);
            curB = ref Unsafe.Add(ref curB, n);
            pA = ref Unsafe.Add(ref pA, rows);
            pB = ref Unsafe.Add(ref pB, rows);
        }

        (finiteA, finiteB) = (Finite<TS, TV>(checkA), Finite<TS, TV>(checkB));
        return true;
    }

    /// <summary>
    /// Two LSTM sequences: per step, the products W_hh h of both (sixteen accumulators per block of two lane vectors, each
    /// weight load feeding both) into <c>sums</c> [A's 4n, B's 4n], then the gates of A and of B from there (independent, so
    /// the core overlaps them), in the single loop's operations and order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static bool LstmPair<TS, TV>(CellWeights<float> w, Lanes a, Lanes b, int count, out bool finiteA, out bool finiteB)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        int n = w.HiddenSize, v = TS.Count, rows = 4 * n, s = 2 * n;
        (finiteA, finiteB) = (false, false);
        if (n % v != 0 || !a.Fits(s, rows, count) || !b.Fits(s, rows, count))
        {
            return false;
        }

        ref float wt = ref Packed(w, 4, v);
        Span<float> buffer = rows <= 2048 ? stackalloc float[2 * rows] : new float[2 * rows];
        ref float sumA = ref MemoryMarshal.GetReference(buffer);
        ref float sumB = ref Unsafe.Add(ref sumA, rows);
        ref float prevA = ref MemoryMarshal.GetReference(a.H0), prevB = ref MemoryMarshal.GetReference(b.H0);
        ref float curA = ref MemoryMarshal.GetReference(a.States), curB = ref MemoryMarshal.GetReference(b.States);
        ref float pA = ref MemoryMarshal.GetReference(a.Projections), pB = ref MemoryMarshal.GetReference(b.Projections);
        TV checkA = default, checkB = default;
        for (int t = 0; t < count; t++)
        {
            for (int k = 0; k < n;)
            {
                ref float col = ref Unsafe.Add(ref wt, k * rows);
                if (k + 2 * v <= n)
                {
                    LstmPairBlock<TS, TV>(ref col, ref prevA, ref prevB, ref sumA, ref sumB, n, k);
                    k += 2 * v;
                }
                else
                {
                    TV ia = default, fa = default, ga = default, oa = default, ib = default, fb = default, gb = default, ob = default;
                    for (int q = 0; q < n; q++)
                    {
                        TV xa = TS.Create(Unsafe.Add(ref prevA, q)), xb = TS.Create(Unsafe.Add(ref prevB, q));
                        TV w0 = TS.Load(ref col, 0), w1 = TS.Load(ref col, (nuint)v), w2 = TS.Load(ref col, (nuint)(2 * v)), w3 = TS.Load(ref col, (nuint)(3 * v));
                        (ia, fa, ga, oa) = (TS.Fma(xa, w0, ia), TS.Fma(xa, w1, fa), TS.Fma(xa, w2, ga), TS.Fma(xa, w3, oa));
                        (ib, fb, gb, ob) = (TS.Fma(xb, w0, ib), TS.Fma(xb, w1, fb), TS.Fma(xb, w2, gb), TS.Fma(xb, w3, ob));
                        col = ref Unsafe.Add(ref col, 4 * v);
                    }

                    StoreGates<TS, TV>(ia, fa, ga, oa, ref sumA, n, k);
                    StoreGates<TS, TV>(ib, fb, gb, ob, ref sumB, n, k);
                    k += v;
                }
            }

            for (int k = 0; k < n; k += v)
            {
                checkA = Check<TS, TV>(checkA, LstmLanes<TS, TV>(TS.Load(ref sumA, (nuint)k), TS.Load(ref sumA, (nuint)(n + k)), TS.Load(ref sumA, (nuint)(2 * n + k)),
                    TS.Load(ref sumA, (nuint)(3 * n + k)), ref pA, ref prevA, ref curA, n, k));
                checkB = Check<TS, TV>(checkB, LstmLanes<TS, TV>(TS.Load(ref sumB, (nuint)k), TS.Load(ref sumB, (nuint)(n + k)), TS.Load(ref sumB, (nuint)(2 * n + k)),
                    TS.Load(ref sumB, (nuint)(3 * n + k)), ref pB, ref prevB, ref curB, n, k));
            }

            prevA = ref curA;
            prevB = ref curB;
            curA = ref Unsafe.Add(ref curA, s);
            curB = ref Unsafe.Add(ref curB, s);
            pA = ref Unsafe.Add(ref pA, rows);
            pB = ref Unsafe.Add(ref pB, rows);
        }

        (finiteA, finiteB) = (Finite<TS, TV>(checkA), Finite<TS, TV>(checkB));
        return true;
    }

    /// <summary>One block of two lane vectors (k, k + v) of both sequences' products over the whole reduction, stored to their sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void LstmPairBlock<TS, TV>(ref float col, ref float prevA, ref float prevB, ref float sumA, ref float sumB, int n, int k)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        int v = TS.Count;
        TV ia0 = default, ia1 = default, fa0 = default, fa1 = default, ga0 = default, ga1 = default, oa0 = default, oa1 = default;
        TV ib0 = default, ib1 = default, fb0 = default, fb1 = default, gb0 = default, gb1 = default, ob0 = default, ob1 = default;
        for (int q = 0; q < n; q++)
        {
            TV xa = TS.Create(Unsafe.Add(ref prevA, q)), xb = TS.Create(Unsafe.Add(ref prevB, q));
            TV w0 = TS.Load(ref col, 0), w1 = TS.Load(ref col, (nuint)v), w2 = TS.Load(ref col, (nuint)(2 * v)), w3 = TS.Load(ref col, (nuint)(3 * v));
            (ia0, ia1, fa0, fa1) = (TS.Fma(xa, w0, ia0), TS.Fma(xa, w1, ia1), TS.Fma(xa, w2, fa0), TS.Fma(xa, w3, fa1));
            (ib0, ib1, fb0, fb1) = (TS.Fma(xb, w0, ib0), TS.Fma(xb, w1, ib1), TS.Fma(xb, w2, fb0), TS.Fma(xb, w3, fb1));
            TV w4 = TS.Load(ref col, (nuint)(4 * v)), w5 = TS.Load(ref col, (nuint)(5 * v)), w6 = TS.Load(ref col, (nuint)(6 * v)), w7 = TS.Load(ref col, (nuint)(7 * v));
            (ga0, ga1, oa0, oa1) = (TS.Fma(xa, w4, ga0), TS.Fma(xa, w5, ga1), TS.Fma(xa, w6, oa0), TS.Fma(xa, w7, oa1));
            (gb0, gb1, ob0, ob1) = (TS.Fma(xb, w4, gb0), TS.Fma(xb, w5, gb1), TS.Fma(xb, w6, ob0), TS.Fma(xb, w7, ob1));
            col = ref Unsafe.Add(ref col, 8 * v);
        }

        StoreGates<TS, TV>(ia0, fa0, ga0, oa0, ref sumA, n, k);
        StoreGates<TS, TV>(ia1, fa1, ga1, oa1, ref sumA, n, k + v);
        StoreGates<TS, TV>(ib0, fb0, gb0, ob0, ref sumB, n, k);
        StoreGates<TS, TV>(ib1, fb1, gb1, ob1, ref sumB, n, k + v);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreGates<TS, TV>(TV i, TV f, TV g, TV o, ref float sums, int n, int k)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        TS.Store(i, ref sums, (nuint)k);
        TS.Store(f, ref sums, (nuint)(n + k));
        TS.Store(g, ref sums, (nuint)(2 * n + k));
        TS.Store(o, ref sums, (nuint)(3 * n + k));
    }
}
