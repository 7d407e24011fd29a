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
                TV g = SimdMath.Sigmoid<TS, TV>(TS.Add(TS.Load(ref rp, at), bg));
                TV i = SimdMath.Tanh<TS, TV>(TS.Add(TS.Load(ref rp, at + (nuint)np), bi));
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
                TV i = SimdMath.Sigmoid<TS, TV>(TS.Add(TS.Add(TS.Load(ref ra, at), TS.Load(ref rp, pt)), bI));
                TV f = SimdMath.Sigmoid<TS, TV>(TS.Add(TS.Add(TS.Load(ref ra, at + (nuint)np), TS.Load(ref rp, pt + (nuint)np)), bF));
                TV z = SimdMath.Tanh<TS, TV>(TS.Add(TS.Add(TS.Load(ref ra, at + (nuint)(2 * np)), TS.Load(ref rp, pt + (nuint)(2 * np))), bZ));
                TV o = SimdMath.Sigmoid<TS, TV>(TS.Add(TS.Add(TS.Load(ref ra, at + (nuint)(3 * np)), TS.Load(ref rp, pt + (nuint)(3 * np))), bO));
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
        Kernels.Gemm<float>(delta, w.Hidden, b.E, count, p4, np, lda: p6);

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
        AddTransposedProduct<TS, TV>(b.Hs, np, delta, p6, b.GradHiddenT, np, p4, count);
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
            AddTransposedProduct<TS, TV>(below, np, b.P, p6, b.GradInputT, np, p6, count);
            Kernels.Gemm<float>(b.P.AsSpan(0, count * p6), w.Input, belowAdjoint, count, p6, np);
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
    /// C[m, cols] += Σ_t A[t, m] B[t, :] for m &lt; <paramref name="rows"/>: A's rows at stride <paramref name="lda"/>,
    /// B's at <paramref name="ldb"/>. Four rows of C by two vectors at a time; rows a multiple of 4, cols of 2 vectors.
    /// </summary>
    internal static void AddTransposedProduct<TS, TV>(ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> bMatrix, int ldb, Span<float> c,
        int rows, int cols, int count)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        int v = TS.Count;
        if (rows % 4 != 0 || cols % (2 * v) != 0 || c.Length < rows * cols || (count > 0 && (a.Length < (count - 1) * lda + rows
            || bMatrix.Length < (count - 1) * ldb + cols)))
        {
            throw new ArgumentException($"AddTransposedProduct: C[{rows}, {cols}] over {count} rows does not fit its spans.");
        }

        ref float ra = ref MemoryMarshal.GetReference(a);
        ref float rb = ref MemoryMarshal.GetReference(bMatrix);
        ref float rc = ref MemoryMarshal.GetReference(c);
        for (int m = 0; m < rows; m += 4)
        {
            for (int col = 0; col < cols; col += 2 * v)
            {
                nuint o = (nuint)(m * cols + col);
                TV c00 = TS.Load(ref rc, o), c01 = TS.Load(ref rc, o + (nuint)v);
                TV c10 = TS.Load(ref rc, o + (nuint)cols), c11 = TS.Load(ref rc, o + (nuint)(cols + v));
                TV c20 = TS.Load(ref rc, o + (nuint)(2 * cols)), c21 = TS.Load(ref rc, o + (nuint)(2 * cols + v));
                TV c30 = TS.Load(ref rc, o + (nuint)(3 * cols)), c31 = TS.Load(ref rc, o + (nuint)(3 * cols + v));
                for (int t = 0; t < count; t++)
                {
                    nuint bt = (nuint)(t * ldb + col);
                    TV b0 = TS.Load(ref rb, bt), b1 = TS.Load(ref rb, bt + (nuint)v);
                    ref float at = ref Unsafe.Add(ref ra, t * lda + m);
                    TV x0 = TS.Create(at), x1 = TS.Create(Unsafe.Add(ref at, 1));
                    TV x2 = TS.Create(Unsafe.Add(ref at, 2)), x3 = TS.Create(Unsafe.Add(ref at, 3));
                    c00 = TS.Fma(x0, b0, c00);
                    c01 = TS.Fma(x0, b1, c01);
                    c10 = TS.Fma(x1, b0, c10);
                    c11 = TS.Fma(x1, b1, c11);
                    c20 = TS.Fma(x2, b0, c20);
                    c21 = TS.Fma(x2, b1, c21);
                    c30 = TS.Fma(x3, b0, c30);
                    c31 = TS.Fma(x3, b1, c31);
                }

                TS.Store(c00, ref rc, o);
                TS.Store(c01, ref rc, o + (nuint)v);
                TS.Store(c10, ref rc, o + (nuint)cols);
                TS.Store(c11, ref rc, o + (nuint)(cols + v));
                TS.Store(c20, ref rc, o + (nuint)(2 * cols));
                TS.Store(c21, ref rc, o + (nuint)(2 * cols + v));
                TS.Store(c30, ref rc, o + (nuint)(3 * cols));
                TS.Store(c31, ref rc, o + (nuint)(3 * cols + v));
            }
        }
    }
}
