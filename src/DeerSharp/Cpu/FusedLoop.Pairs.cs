using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace DeerSharp.Cpu;

/// <summary>
/// Two GRU sequences stepped together by the fused loop (a batch's sequences on one core): each weight load feeds both
/// sequences' accumulators, and the two dependency chains of a step (the reduction, then the gates) overlap, where one
/// sequence alone leaves the core waiting on its latency: 70-75 against 90-96 ns a sequence-step at n = 32 (a scratch
/// program, 40 rounds, medians). Each sequence's states are the single loop's, bit for bit. LSTM pairs are not done: with
/// sixteen accumulators they measured 165 ns against 100 alone (too few registers left), and one lane vector at a
/// time 111 against 107 (its five activations a lane, not the product, bound the step).
/// </summary>
internal static partial class FusedLoop
{
    /// <summary>Whether <see cref="TryRunPair"/> would run for this cell type and state size.</summary>
    public static bool HasPair<TCell, T>(in TCell cell)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T> =>
        typeof(T) == typeof(float) && typeof(TCell) == typeof(GruCell<float>) && Width(cell.OutputSize) != 0;

    /// <summary>Steps 0 .. count − 1 of two sequences (A and B) together; false (nothing written) where it does not apply.</summary>
    public static bool TryRunPair<TCell, T>(in TCell cell, ReadOnlySpan<T> previousA, ReadOnlySpan<T> previousB, ReadOnlySpan<T> projectionsA,
        ReadOnlySpan<T> projectionsB, Span<T> statesA, Span<T> statesB, int count)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!HasPair<TCell, T>(cell))
        {
            return false;
        }

        var a = new Lanes(MemoryMarshal.Cast<T, float>(previousA), MemoryMarshal.Cast<T, float>(projectionsA), MemoryMarshal.Cast<T, float>(statesA));
        var b = new Lanes(MemoryMarshal.Cast<T, float>(previousB), MemoryMarshal.Cast<T, float>(projectionsB), MemoryMarshal.Cast<T, float>(statesB));
        CellWeights<float> w = Unsafe.As<TCell, GruCell<float>>(ref Unsafe.AsRef(in cell)).Packed;
        return Width(w.HiddenSize) == 512 ? GruPair<Simd512, Vector512<float>>(w, a, b, count) : GruPair<Simd256, Vector256<float>>(w, a, b, count);
    }

    /// <summary>One sequence's h0, projections and output.</summary>
    internal readonly ref struct Lanes(ReadOnlySpan<float> h0, ReadOnlySpan<float> projections, Span<float> states)
    {
        public readonly ReadOnlySpan<float> H0 = h0, Projections = projections;
        public readonly Span<float> States = states;

        public bool Fits(int s, int rows, int count) => H0.Length >= s && Projections.Length >= (long)count * rows && States.Length >= (long)count * s;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static bool GruPair<TS, TV>(CellWeights<float> w, Lanes a, Lanes b, int count)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        int n = w.HiddenSize, v = TS.Count, rows = 3 * n;
        if (n % v != 0 || !a.Fits(n, rows, count) || !b.Fits(n, rows, count))
        {
            return false;
        }

        ref float wt = ref Packed(w, 3, v);
        ref float bhn = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(w.HiddenBias), 2 * n);
        ref float prevA = ref MemoryMarshal.GetReference(a.H0), prevB = ref MemoryMarshal.GetReference(b.H0);
        ref float curA = ref MemoryMarshal.GetReference(a.States), curB = ref MemoryMarshal.GetReference(b.States);
        ref float pA = ref MemoryMarshal.GetReference(a.Projections), pB = ref MemoryMarshal.GetReference(b.Projections);
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

                    GruLanes<TS, TV>(ra1, za1, na1, ref pA, ref bhn, ref prevA, ref curA, n, k + v);
                    GruLanes<TS, TV>(rb1, zb1, nb1, ref pB, ref bhn, ref prevB, ref curB, n, k + v);
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

                GruLanes<TS, TV>(ra0, za0, na0, ref pA, ref bhn, ref prevA, ref curA, n, k);
                GruLanes<TS, TV>(rb0, zb0, nb0, ref pB, ref bhn, ref prevB, ref curB, n, k);
                k += block * v;
            }

            prevA = ref curA;
            prevB = ref curB;
            curA = ref Unsafe.Add(ref curA, n);
            curB = ref Unsafe.Add(ref curB, n);
            pA = ref Unsafe.Add(ref pA, rows);
            pB = ref Unsafe.Add(ref pB, rows);
        }

        return true;
    }

}
