using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DeerSharp.Training;

/// <summary>One layer's working rows for a chunk of L steps, and its gradient accumulators (one set per worker).</summary>
internal sealed class GilrLstmBuffers
{
    public GilrLstmBuffers(GilrLstmPacked w, int steps)
    {
        int np = w.Np;
        P = new float[steps * 6 * np];
        Hs = new float[(steps + 1) * np];
        A = new float[steps * 4 * np];
        C = new float[(steps + 1) * np];
        H = new float[steps * np];
        DH = new float[steps * np];
        E = new float[steps * np];
        DHs = new float[np];
        DC = new float[np];
        GradInputT = new float[w.InputT.Length];
        GradHiddenT = new float[w.HiddenT.Length];
        GradBias = new float[w.Bias.Length];
    }

    /// <summary>[L, 6np]: forward, the projections (then g and i over the first 2np); backward, ∂ of the pre-activations.</summary>
    public float[] P { get; }

    /// <summary>[L + 1, np]: h~, row 0 the state before the chunk.</summary>
    public float[] Hs { get; }

    /// <summary>[L, 4np]: the gates i, f, z, o.</summary>
    public float[] A { get; }

    /// <summary>[L + 1, np]: c, row 0 the state before the chunk.</summary>
    public float[] C { get; }

    /// <summary>[L, np]: h, the layer's output.</summary>
    public float[] H { get; }

    /// <summary>[L, np]: ∂loss/∂h.</summary>
    public float[] DH { get; }

    /// <summary>[L, np]: W_hhᵀ δ per step.</summary>
    public float[] E { get; }

    /// <summary>∂loss/∂h~ and ∂loss/∂c of the step before the chunk being walked back.</summary>
    public float[] DHs { get; }

    /// <summary>See <see cref="DHs"/>.</summary>
    public float[] DC { get; }

    public float[] GradInputT { get; }

    public float[] GradHiddenT { get; }

    public float[] GradBias { get; }

    public void ClearGradients()
    {
        Array.Clear(GradInputT);
        Array.Clear(GradHiddenT);
        Array.Clear(GradBias);
    }
}

/// <summary>
/// A GILR-LSTM layer over a chunk of steps, forward and backward, float32, SIMD across units. Each product over the
/// chunk is a GEMM (its weights stay in L1); each recurrence is one pass of elementwise vector work with its carry in
/// a register. Written once for every <see cref="ISimd{TV}"/> width.
/// </summary>
internal static class GilrLstmChunk
{
    /// <summary>
    /// From h~ and c in row 0 of <see cref="GilrLstmBuffers.Hs"/> and <see cref="GilrLstmBuffers.C"/>: the chunk's
    /// g, i (in P), h~, gates, c and h. The input is <paramref name="symbols"/>/<paramref name="values"/> for a one-hot
    /// layer, else <paramref name="below"/> [L, np].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Forward<TS, TV>(GilrLstmPacked w, GilrLstmBuffers b, ReadOnlySpan<int> symbols, ReadOnlySpan<float> values,
        ReadOnlySpan<float> below, int count)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        int np = w.Np, p6 = 6 * np, p4 = 4 * np, lanes = TS.Count;
        ref float rp = ref MemoryMarshal.GetArrayDataReference(b.P);
        ref float rb = ref MemoryMarshal.GetArrayDataReference(w.Bias);
        if (w.OneHot)
        {
            ref float rw = ref MemoryMarshal.GetArrayDataReference(w.InputT);
            for (int t = 0; t < count; t++)
            {
                TV x = TS.Create(values[t]);
                nuint row = (nuint)(symbols[t] * p6), at = (nuint)(t * p6);
                for (int v = 0; v < p6; v += lanes)
                {
                    TS.Store(TS.Multiply(x, TS.Load(ref rw, row + (nuint)v)), ref rp, at + (nuint)v);
                }
            }
        }
        else
        {
            Kernels.Gemm<float>(below[..(count * np)], w.InputT, b.P, count, np, p6);
        }

        // The surrogate: g = σ(·), i = tanh(·) kept in P; h~ = g h~ + (1 − g) i = i + g (h~ − i).
        ref float rs = ref MemoryMarshal.GetArrayDataReference(b.Hs);
        for (int v = 0; v < np; v += lanes)
        {
            TV bg = TS.Load(ref rb, (nuint)v), bi = TS.Load(ref rb, (nuint)(np + v));
            TV hs = TS.Load(ref rs, (nuint)v);
            for (int t = 0; t < count; t++)
            {
                nuint at = (nuint)(t * p6 + v);
                TV g = SimdMath.FastSigmoid<TS, TV>(TS.Add(TS.Load(ref rp, at), bg));
                TV i = SimdMath.FastTanh<TS, TV>(TS.Add(TS.Load(ref rp, at + (nuint)np), bi));
                TS.Store(g, ref rp, at);
                TS.Store(i, ref rp, at + (nuint)np);
                hs = TS.Fma(g, TS.Subtract(hs, i), i);
                TS.Store(hs, ref rs, (nuint)((t + 1) * np + v));
            }
        }

        // The gates read h~_{t-1}: rows 0 .. L-1 of Hs.
        Kernels.Gemm<float>(b.Hs.AsSpan(0, count * np), w.HiddenT, b.A, count, np, p4);
        ref float ra = ref MemoryMarshal.GetArrayDataReference(b.A);
        ref float rc = ref MemoryMarshal.GetArrayDataReference(b.C);
        ref float rh = ref MemoryMarshal.GetArrayDataReference(b.H);
        for (int v = 0; v < np; v += lanes)
        {
            TV bI = TS.Load(ref rb, (nuint)(2 * np + v)), bF = TS.Load(ref rb, (nuint)(3 * np + v));
            TV bZ = TS.Load(ref rb, (nuint)(4 * np + v)), bO = TS.Load(ref rb, (nuint)(5 * np + v));
            TV c = TS.Load(ref rc, (nuint)v);
            for (int t = 0; t < count; t++)
            {
                nuint at = (nuint)(t * p4 + v), pt = (nuint)(t * p6 + 2 * np + v);
                TV i = SimdMath.FastSigmoid<TS, TV>(TS.Add(TS.Add(TS.Load(ref ra, at), TS.Load(ref rp, pt)), bI));
                TV f = SimdMath.FastSigmoid<TS, TV>(TS.Add(TS.Add(TS.Load(ref ra, at + (nuint)np), TS.Load(ref rp, pt + (nuint)np)), bF));
                TV z = SimdMath.FastTanh<TS, TV>(TS.Add(TS.Add(TS.Load(ref ra, at + (nuint)(2 * np)), TS.Load(ref rp, pt + (nuint)(2 * np))), bZ));
                TV o = SimdMath.FastSigmoid<TS, TV>(TS.Add(TS.Add(TS.Load(ref ra, at + (nuint)(3 * np)), TS.Load(ref rp, pt + (nuint)(3 * np))), bO));
                TS.Store(i, ref ra, at);
                TS.Store(f, ref ra, at + (nuint)np);
                TS.Store(z, ref ra, at + (nuint)(2 * np));
                TS.Store(o, ref ra, at + (nuint)(3 * np));
                c = TS.Fma(f, c, TS.Multiply(i, z));
                TS.Store(c, ref rc, (nuint)((t + 1) * np + v));
                TS.Store(TS.Multiply(o, c), ref rh, (nuint)(t * np + v));
            }
        }
    }

    /// <summary>
    /// Walks the chunk back from ∂h (<see cref="GilrLstmBuffers.DH"/>) and the carries ∂h~, ∂c of its last step:
    /// leaves the carries of the step before it, adds the weights' gradients, and writes ∂x into
    /// <paramref name="belowAdjoint"/> [L, np] for a dense layer. Forward must have run on this chunk.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Backward<TS, TV>(GilrLstmPacked w, GilrLstmBuffers b, ReadOnlySpan<int> symbols, ReadOnlySpan<float> values,
        ReadOnlySpan<float> below, Span<float> belowAdjoint, int count)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        int np = w.Np, p6 = 6 * np, p4 = 4 * np, lanes = TS.Count;
        ref float rp = ref MemoryMarshal.GetArrayDataReference(b.P);
        ref float ra = ref MemoryMarshal.GetArrayDataReference(b.A);
        ref float rc = ref MemoryMarshal.GetArrayDataReference(b.C);
        ref float rd = ref MemoryMarshal.GetArrayDataReference(b.DH);
        TV one = TS.Create(1f);

        // The c chain: ∂c = ∂c⁺ + ∂h o; the gates' δ go into P's last 4np.
        for (int v = 0; v < np; v += lanes)
        {
            TV dcCarry = TS.Load(ref MemoryMarshal.GetArrayDataReference(b.DC), (nuint)v);
            for (int t = count - 1; t >= 0; t--)
            {
                nuint at = (nuint)(t * p4 + v), pt = (nuint)(t * p6 + 2 * np + v);
                TV i = TS.Load(ref ra, at), f = TS.Load(ref ra, at + (nuint)np);
                TV z = TS.Load(ref ra, at + (nuint)(2 * np)), o = TS.Load(ref ra, at + (nuint)(3 * np));
                TV c = TS.Load(ref rc, (nuint)((t + 1) * np + v)), cp = TS.Load(ref rc, (nuint)(t * np + v));
                TV dh = TS.Load(ref rd, (nuint)(t * np + v));
                TV dc = TS.Fma(dh, o, dcCarry);
                TS.Store(TS.Multiply(TS.Multiply(dc, z), TS.Multiply(i, TS.Subtract(one, i))), ref rp, pt);
                TS.Store(TS.Multiply(TS.Multiply(dc, cp), TS.Multiply(f, TS.Subtract(one, f))), ref rp, pt + (nuint)np);
                TS.Store(TS.Multiply(TS.Multiply(dc, i), TS.Subtract(one, TS.Multiply(z, z))), ref rp, pt + (nuint)(2 * np));
                TS.Store(TS.Multiply(TS.Multiply(dh, c), TS.Multiply(o, TS.Subtract(one, o))), ref rp, pt + (nuint)(3 * np));
                dcCarry = TS.Multiply(dc, f);
            }

            TS.Store(dcCarry, ref MemoryMarshal.GetArrayDataReference(b.DC), (nuint)v);
        }

        ReadOnlySpan<float> delta = b.P.AsSpan(2 * np);
        Product<TS, TV>(delta, p6, 1, w.Hidden, np, b.E, count, np, p4, accumulate: false);

        // The h~ chain: ∂h~_{t-1} = g ∂h~_t + W_hhᵀ δ_t; ∂ of g's and i's pre-activations into P's first 2np.
        ref float rs = ref MemoryMarshal.GetArrayDataReference(b.Hs);
        ref float re = ref MemoryMarshal.GetArrayDataReference(b.E);
        for (int v = 0; v < np; v += lanes)
        {
            TV carry = TS.Load(ref MemoryMarshal.GetArrayDataReference(b.DHs), (nuint)v);
            for (int t = count - 1; t >= 0; t--)
            {
                nuint at = (nuint)(t * p6 + v);
                TV g = TS.Load(ref rp, at), i = TS.Load(ref rp, at + (nuint)np), previous = TS.Load(ref rs, (nuint)(t * np + v));
                TS.Store(TS.Multiply(TS.Multiply(carry, TS.Subtract(previous, i)), TS.Multiply(g, TS.Subtract(one, g))), ref rp, at);
                TS.Store(TS.Multiply(TS.Multiply(carry, TS.Subtract(one, g)), TS.Subtract(one, TS.Multiply(i, i))), ref rp, at + (nuint)np);
                carry = TS.Fma(g, carry, TS.Load(ref re, (nuint)(t * np + v)));
            }

            TS.Store(carry, ref MemoryMarshal.GetArrayDataReference(b.DHs), (nuint)v);
        }

        // Weights: ∂W_hhᵀ += h~_{t-1}ᵀ δ, ∂[U; V; W_ih]ᵀ += xᵀ ∂P, ∂bias += Σ ∂P; and ∂x = ∂P [U; V; W_ih].
        Product<TS, TV>(b.Hs, 1, np, delta, p6, b.GradHiddenT, np, p4, count, accumulate: true);
        if (w.OneHot)
        {
            ref float rg = ref MemoryMarshal.GetArrayDataReference(b.GradInputT);
            for (int t = 0; t < count; t++)
            {
                TV x = TS.Create(values[t]);
                nuint row = (nuint)(symbols[t] * p6), at = (nuint)(t * p6);
                for (int v = 0; v < p6; v += lanes)
                {
                    TS.Store(TS.Fma(x, TS.Load(ref rp, at + (nuint)v), TS.Load(ref rg, row + (nuint)v)), ref rg, row + (nuint)v);
                }
            }
        }
        else
        {
            Product<TS, TV>(below, 1, np, b.P, p6, b.GradInputT, np, p6, count, accumulate: true);
            Product<TS, TV>(b.P, p6, 1, w.Input, np, belowAdjoint, count, np, p6, accumulate: false);
        }

        ref float rbias = ref MemoryMarshal.GetArrayDataReference(b.GradBias);
        for (int v = 0; v < p6; v += lanes)
        {
            TV sum = TS.Load(ref rbias, (nuint)v);
            for (int t = 0; t < count; t++)
            {
                sum = TS.Add(sum, TS.Load(ref rp, (nuint)(t * p6 + v)));
            }

            TS.Store(sum, ref rbias, (nuint)v);
        }
    }

    /// <summary>
    /// C[i, :] = (or +=, when <paramref name="accumulate"/>) Σ_p A(i, p) B[p, :] for i &lt; <paramref name="rows"/>, where
    /// A(i, p) = a[i·<paramref name="rowStride"/> + p·<paramref name="termStride"/>] (so A or Aᵀ of a row-major array),
    /// B's rows at stride <paramref name="ldb"/>, C row-major [rows, cols], cols a whole number of vectors. Eight rows by
    /// one vector at a time: eight accumulators, each B load used eight times, the sum over p in order.
    /// </summary>
    internal static void Product<TS, TV>(ReadOnlySpan<float> a, int rowStride, int termStride, ReadOnlySpan<float> bMatrix, int ldb, Span<float> c,
        int rows, int cols, int terms, bool accumulate)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        int v = TS.Count;
        if (cols % v != 0 || c.Length < rows * cols || (rows > 0 && terms > 0 && (a.Length <= (rows - 1) * rowStride + (terms - 1) * termStride
            || bMatrix.Length < (terms - 1) * ldb + cols)))
        {
            throw new ArgumentException($"Product: C[{rows}, {cols}] over {terms} terms does not fit its spans.");
        }

        ref float ra = ref MemoryMarshal.GetReference(a);
        ref float rb = ref MemoryMarshal.GetReference(bMatrix);
        ref float rc = ref MemoryMarshal.GetReference(c);
        int i = 0;
        for (; i + 8 <= rows; i += 8)
        {
            for (int col = 0; col < cols; col += v)
            {
                nuint o = (nuint)(i * cols + col);
                TV c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
                if (accumulate)
                {
                    c0 = TS.Load(ref rc, o);
                    c1 = TS.Load(ref rc, o + (nuint)cols);
                    c2 = TS.Load(ref rc, o + (nuint)(2 * cols));
                    c3 = TS.Load(ref rc, o + (nuint)(3 * cols));
                    c4 = TS.Load(ref rc, o + (nuint)(4 * cols));
                    c5 = TS.Load(ref rc, o + (nuint)(5 * cols));
                    c6 = TS.Load(ref rc, o + (nuint)(6 * cols));
                    c7 = TS.Load(ref rc, o + (nuint)(7 * cols));
                }

                ref float a0 = ref Unsafe.Add(ref ra, i * rowStride);
                for (int p = 0; p < terms; p++)
                {
                    TV bp = TS.Load(ref rb, (nuint)(p * ldb + col));
                    ref float ap = ref Unsafe.Add(ref a0, p * termStride);
                    c0 = TS.Fma(TS.Create(ap), bp, c0);
                    c1 = TS.Fma(TS.Create(Unsafe.Add(ref ap, rowStride)), bp, c1);
                    c2 = TS.Fma(TS.Create(Unsafe.Add(ref ap, 2 * rowStride)), bp, c2);
                    c3 = TS.Fma(TS.Create(Unsafe.Add(ref ap, 3 * rowStride)), bp, c3);
                    c4 = TS.Fma(TS.Create(Unsafe.Add(ref ap, 4 * rowStride)), bp, c4);
                    c5 = TS.Fma(TS.Create(Unsafe.Add(ref ap, 5 * rowStride)), bp, c5);
                    c6 = TS.Fma(TS.Create(Unsafe.Add(ref ap, 6 * rowStride)), bp, c6);
                    c7 = TS.Fma(TS.Create(Unsafe.Add(ref ap, 7 * rowStride)), bp, c7);
                }

                TS.Store(c0, ref rc, o);
                TS.Store(c1, ref rc, o + (nuint)cols);
                TS.Store(c2, ref rc, o + (nuint)(2 * cols));
                TS.Store(c3, ref rc, o + (nuint)(3 * cols));
                TS.Store(c4, ref rc, o + (nuint)(4 * cols));
                TS.Store(c5, ref rc, o + (nuint)(5 * cols));
                TS.Store(c6, ref rc, o + (nuint)(6 * cols));
                TS.Store(c7, ref rc, o + (nuint)(7 * cols));
            }
        }

        for (; i < rows; i++)
        {
            for (int col = 0; col < cols; col += v)
            {
                nuint o = (nuint)(i * cols + col);
                TV sum = accumulate ? TS.Load(ref rc, o) : default;
                for (int p = 0; p < terms; p++)
                {
                    sum = TS.Fma(TS.Create(Unsafe.Add(ref ra, i * rowStride + p * termStride)), TS.Load(ref rb, (nuint)(p * ldb + col)), sum);
                }

                TS.Store(sum, ref rc, o);
            }
        }
    }
}
