using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace DeerSharp;

/// <summary>
/// Dense products for the cells, SIMD across output columns with register blocking: <see cref="MatVec{T}"/> for the
/// sequential loop (one state at a time) and <see cref="Gemm{T}"/> for a block of time steps (the weights are loaded
/// once per four steps instead of once per step). Weights are stored transposed, [k, cols], so a column block of the
/// output is a contiguous load.
/// </summary>
internal static partial class Kernels
{
    /// <summary>y[cols] = Σ_p x[p]·B[p, :] for B row-major [x.Length, cols].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MatVec<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> b, Span<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int k = x.Length, cols = y.Length;
        int v = Vector<T>.Count;
        ref T rb = ref MemoryMarshal.GetReference(b);
        ref T ry = ref MemoryMarshal.GetReference(y);
        ref T rx = ref MemoryMarshal.GetReference(x);
        int c = 0;
        // Eight vectors of output columns per pass stay in registers across the whole reduction over p: eight independent
        // FMA chains cover the FMA latency (4 cycles, 2 per cycle), where four left half of the issue slots idle and the
        // sequential loop waits on this product every step.
        for (; c + 8 * v <= cols; c += 8 * v)
        {
            Vector<T> a0 = Vector<T>.Zero, a1 = Vector<T>.Zero, a2 = Vector<T>.Zero, a3 = Vector<T>.Zero;
            Vector<T> a4 = Vector<T>.Zero, a5 = Vector<T>.Zero, a6 = Vector<T>.Zero, a7 = Vector<T>.Zero;
            for (int p = 0; p < k; p++)
            {
                var xp = new Vector<T>(Unsafe.Add(ref rx, p));
                nuint o = (nuint)(p * cols + c);
                a0 = Fma(xp, Vector.LoadUnsafe(ref rb, o), a0);
                a1 = Fma(xp, Vector.LoadUnsafe(ref rb, o + (nuint)v), a1);
                a2 = Fma(xp, Vector.LoadUnsafe(ref rb, o + (nuint)(2 * v)), a2);
                a3 = Fma(xp, Vector.LoadUnsafe(ref rb, o + (nuint)(3 * v)), a3);
                a4 = Fma(xp, Vector.LoadUnsafe(ref rb, o + (nuint)(4 * v)), a4);
                a5 = Fma(xp, Vector.LoadUnsafe(ref rb, o + (nuint)(5 * v)), a5);
                a6 = Fma(xp, Vector.LoadUnsafe(ref rb, o + (nuint)(6 * v)), a6);
                a7 = Fma(xp, Vector.LoadUnsafe(ref rb, o + (nuint)(7 * v)), a7);
            }

            a0.StoreUnsafe(ref ry, (nuint)c);
            a1.StoreUnsafe(ref ry, (nuint)(c + v));
            a2.StoreUnsafe(ref ry, (nuint)(c + 2 * v));
            a3.StoreUnsafe(ref ry, (nuint)(c + 3 * v));
            a4.StoreUnsafe(ref ry, (nuint)(c + 4 * v));
            a5.StoreUnsafe(ref ry, (nuint)(c + 5 * v));
            a6.StoreUnsafe(ref ry, (nuint)(c + 6 * v));
            a7.StoreUnsafe(ref ry, (nuint)(c + 7 * v));
        }

        for (; c + 4 * v <= cols; c += 4 * v)
        {
            Vector<T> a0 = Vector<T>.Zero, a1 = Vector<T>.Zero, a2 = Vector<T>.Zero, a3 = Vector<T>.Zero;
            for (int p = 0; p < k; p++)
            {
                var xp = new Vector<T>(Unsafe.Add(ref rx, p));
                nuint o = (nuint)(p * cols + c);
                a0 = Fma(xp, Vector.LoadUnsafe(ref rb, o), a0);
                a1 = Fma(xp, Vector.LoadUnsafe(ref rb, o + (nuint)v), a1);
                a2 = Fma(xp, Vector.LoadUnsafe(ref rb, o + (nuint)(2 * v)), a2);
                a3 = Fma(xp, Vector.LoadUnsafe(ref rb, o + (nuint)(3 * v)), a3);
            }

            a0.StoreUnsafe(ref ry, (nuint)c);
            a1.StoreUnsafe(ref ry, (nuint)(c + v));
            a2.StoreUnsafe(ref ry, (nuint)(c + 2 * v));
            a3.StoreUnsafe(ref ry, (nuint)(c + 3 * v));
        }

        for (; c + v <= cols; c += v)
        {
            Vector<T> a0 = Vector<T>.Zero;
            for (int p = 0; p < k; p++)
            {
                a0 = Fma(new Vector<T>(Unsafe.Add(ref rx, p)), Vector.LoadUnsafe(ref rb, (nuint)(p * cols + c)), a0);
            }

            a0.StoreUnsafe(ref ry, (nuint)c);
        }

        for (; c < cols; c++)
        {
            T s = T.Zero;
            for (int p = 0; p < k; p++)
            {
                s = T.FusedMultiplyAdd(Unsafe.Add(ref rx, p), Unsafe.Add(ref rb, p * cols + c), s);
            }

            Unsafe.Add(ref ry, c) = s;
        }
    }

    /// <summary>
    /// C[m, cols] = A[m, k] · B[k, cols], all row-major; row i of A starts at i·<paramref name="lda"/> (default k). With a
    /// <paramref name="bias"/> [cols], each element's sum is computed first and bias[col] added to it as it is stored: the
    /// same value as adding the bias row to C afterwards, without a second pass over C.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Gemm<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> c, int m, int k, int cols, int lda = 0, bool accumulate = false,
        ReadOnlySpan<T> bias = default)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        lda = lda == 0 ? k : lda;
        bool biased = !bias.IsEmpty;
        if (biased && (accumulate || bias.Length < cols))
        {
            throw new ArgumentException($"Gemm: a bias of {bias.Length} values for {cols} columns{(accumulate ? " with accumulate" : "")}.", nameof(bias));
        }

        if (accumulate)
        {
            GemmAccumulate(a, b, c, m, k, cols, lda, 1);
            return;
        }

        if (m > 0 && ((long)(m - 1) * lda + k > a.Length) || (long)k * cols > b.Length || (long)m * cols > c.Length)
        {
            throw new ArgumentException($"Gemm: A[{m}, {k}], B[{k}, {cols}], C[{m}, {cols}] do not fit spans of {a.Length}, {b.Length}, {c.Length}.");
        }

        int v = Vector<T>.Count;
        ref T ra = ref MemoryMarshal.GetReference(a);
        ref T rb = ref MemoryMarshal.GetReference(b);
        ref T rc = ref MemoryMarshal.GetReference(c);
        ref T rbias = ref MemoryMarshal.GetReference(bias);
        bool wide = typeof(T) == typeof(float) && Simd512.IsAccelerated;
        int i = 0;
        for (; i + 4 <= m; i += 4)
        {
            ref T a0 = ref Unsafe.Add(ref ra, i * lda);
            ref T a1 = ref Unsafe.Add(ref a0, lda);
            ref T a2 = ref Unsafe.Add(ref a1, lda);
            ref T a3 = ref Unsafe.Add(ref a2, lda);
            // float32 on a CPU that runs AVX-512 at full width: the column blocks that fill two 512-bit vectors first, at
            // twice Vector<T>'s FMA rate; each element sums the same terms in the same order, so the result is the same.
            int col = wide ? Block4<Simd512, Vector512<float>>(ref Unsafe.As<T, float>(ref a0), lda, ref Unsafe.As<T, float>(ref rb),
                ref Unsafe.As<T, float>(ref Unsafe.Add(ref rc, i * cols)), k, cols, ref Unsafe.As<T, float>(ref rbias), biased) : 0;
            // 4 rows × 2 vectors: eight accumulators, each B load used four times.
            for (; col + 2 * v <= cols; col += 2 * v)
            {
                Vector<T> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
                for (int p = 0; p < k; p++)
                {
                    nuint o = (nuint)(p * cols + col);
                    Vector<T> b0 = Vector.LoadUnsafe(ref rb, o), b1 = Vector.LoadUnsafe(ref rb, o + (nuint)v);
                    var x0 = new Vector<T>(Unsafe.Add(ref a0, p));
                    var x1 = new Vector<T>(Unsafe.Add(ref a1, p));
                    var x2 = new Vector<T>(Unsafe.Add(ref a2, p));
                    var x3 = new Vector<T>(Unsafe.Add(ref a3, p));
                    c00 = Fma(x0, b0, c00);
                    c01 = Fma(x0, b1, c01);
                    c10 = Fma(x1, b0, c10);
                    c11 = Fma(x1, b1, c11);
                    c20 = Fma(x2, b0, c20);
                    c21 = Fma(x2, b1, c21);
                    c30 = Fma(x3, b0, c30);
                    c31 = Fma(x3, b1, c31);
                }

                if (biased)
                {
                    Vector<T> bias0 = Vector.LoadUnsafe(ref rbias, (nuint)col), bias1 = Vector.LoadUnsafe(ref rbias, (nuint)(col + v));
                    (c00, c10, c20, c30) = (c00 + bias0, c10 + bias0, c20 + bias0, c30 + bias0);
                    (c01, c11, c21, c31) = (c01 + bias1, c11 + bias1, c21 + bias1, c31 + bias1);
                }

                nuint r0 = (nuint)(i * cols + col);
                c00.StoreUnsafe(ref rc, r0);
                c01.StoreUnsafe(ref rc, r0 + (nuint)v);
                c10.StoreUnsafe(ref rc, r0 + (nuint)cols);
                c11.StoreUnsafe(ref rc, r0 + (nuint)(cols + v));
                c20.StoreUnsafe(ref rc, r0 + (nuint)(2 * cols));
                c21.StoreUnsafe(ref rc, r0 + (nuint)(2 * cols + v));
                c30.StoreUnsafe(ref rc, r0 + (nuint)(3 * cols));
                c31.StoreUnsafe(ref rc, r0 + (nuint)(3 * cols + v));
            }

            for (; col < cols; col++)
            {
                T s0 = T.Zero, s1 = T.Zero, s2 = T.Zero, s3 = T.Zero;
                for (int p = 0; p < k; p++)
                {
                    T bp = Unsafe.Add(ref rb, p * cols + col);
                    s0 = T.FusedMultiplyAdd(Unsafe.Add(ref a0, p), bp, s0);
                    s1 = T.FusedMultiplyAdd(Unsafe.Add(ref a1, p), bp, s1);
                    s2 = T.FusedMultiplyAdd(Unsafe.Add(ref a2, p), bp, s2);
                    s3 = T.FusedMultiplyAdd(Unsafe.Add(ref a3, p), bp, s3);
                }

                if (biased)
                {
                    T bc = Unsafe.Add(ref rbias, col);
                    (s0, s1, s2, s3) = (s0 + bc, s1 + bc, s2 + bc, s3 + bc);
                }

                Unsafe.Add(ref rc, i * cols + col) = s0;
                Unsafe.Add(ref rc, (i + 1) * cols + col) = s1;
                Unsafe.Add(ref rc, (i + 2) * cols + col) = s2;
                Unsafe.Add(ref rc, (i + 3) * cols + col) = s3;
            }
        }

        for (; i < m; i++)
        {
            Span<T> row = c.Slice(i * cols, cols);
            MatVec(a.Slice(i * lda, k), b[..(k * cols)], row);
            if (biased)
            {
                TensorPrimitives.Add(row, bias[..cols], row);
            }
        }
    }

    /// <summary>
    /// Rows i .. i + 3 of C (at <paramref name="c"/>, row stride cols) over the column blocks of 4·TS.Count (sixteen
    /// accumulators), then of 2·TS.Count (eight), each B load used four times, the sum over p in order. Returns the first
    /// column it did not do.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int Block4<TS, TV>(ref float a0, int lda, ref float b, ref float c, int k, int cols, ref float bias, bool biased)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        int v = TS.Count, col = 0;
        ref float a1 = ref Unsafe.Add(ref a0, lda);
        ref float a2 = ref Unsafe.Add(ref a1, lda);
        ref float a3 = ref Unsafe.Add(ref a2, lda);
        // Four vectors of columns first: sixteen accumulators, twice the chains the FMA latency needs (4 cycles, 2 a
        // cycle), where eight left the FMA units waiting; each B load feeds four FMAs and each broadcast four.
        for (; col + 4 * v <= cols; col += 4 * v)
        {
            TV c00 = default, c01 = default, c02 = default, c03 = default, c10 = default, c11 = default, c12 = default, c13 = default;
            TV c20 = default, c21 = default, c22 = default, c23 = default, c30 = default, c31 = default, c32 = default, c33 = default;
            for (int p = 0; p < k; p++)
            {
                nuint o = (nuint)(p * cols + col);
                TV b0 = TS.Load(ref b, o), b1 = TS.Load(ref b, o + (nuint)v), b2 = TS.Load(ref b, o + (nuint)(2 * v)), b3 = TS.Load(ref b, o + (nuint)(3 * v));
                TV x = TS.Create(Unsafe.Add(ref a0, p));
                c00 = TS.Fma(x, b0, c00);
                c01 = TS.Fma(x, b1, c01);
                c02 = TS.Fma(x, b2, c02);
                c03 = TS.Fma(x, b3, c03);
                x = TS.Create(Unsafe.Add(ref a1, p));
                c10 = TS.Fma(x, b0, c10);
                c11 = TS.Fma(x, b1, c11);
                c12 = TS.Fma(x, b2, c12);
                c13 = TS.Fma(x, b3, c13);
                x = TS.Create(Unsafe.Add(ref a2, p));
                c20 = TS.Fma(x, b0, c20);
                c21 = TS.Fma(x, b1, c21);
                c22 = TS.Fma(x, b2, c22);
                c23 = TS.Fma(x, b3, c23);
                x = TS.Create(Unsafe.Add(ref a3, p));
                c30 = TS.Fma(x, b0, c30);
                c31 = TS.Fma(x, b1, c31);
                c32 = TS.Fma(x, b2, c32);
                c33 = TS.Fma(x, b3, c33);
            }

            if (biased)
            {
                TV bias0 = TS.Load(ref bias, (nuint)col), bias1 = TS.Load(ref bias, (nuint)(col + v));
                TV bias2 = TS.Load(ref bias, (nuint)(col + 2 * v)), bias3 = TS.Load(ref bias, (nuint)(col + 3 * v));
                (c00, c01, c02, c03) = (TS.Add(c00, bias0), TS.Add(c01, bias1), TS.Add(c02, bias2), TS.Add(c03, bias3));
                (c10, c11, c12, c13) = (TS.Add(c10, bias0), TS.Add(c11, bias1), TS.Add(c12, bias2), TS.Add(c13, bias3));
                (c20, c21, c22, c23) = (TS.Add(c20, bias0), TS.Add(c21, bias1), TS.Add(c22, bias2), TS.Add(c23, bias3));
                (c30, c31, c32, c33) = (TS.Add(c30, bias0), TS.Add(c31, bias1), TS.Add(c32, bias2), TS.Add(c33, bias3));
            }

            Store4(c00, c01, c02, c03, ref c, col, v);
            Store4(c10, c11, c12, c13, ref c, cols + col, v);
            Store4(c20, c21, c22, c23, ref c, 2 * cols + col, v);
            Store4(c30, c31, c32, c33, ref c, 3 * cols + col, v);
        }

        for (; col + 2 * v <= cols; col += 2 * v)
        {
            TV c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
            for (int p = 0; p < k; p++)
            {
                nuint o = (nuint)(p * cols + col);
                TV b0 = TS.Load(ref b, o), b1 = TS.Load(ref b, o + (nuint)v);
                TV x0 = TS.Create(Unsafe.Add(ref a0, p)), x1 = TS.Create(Unsafe.Add(ref a1, p));
                TV x2 = TS.Create(Unsafe.Add(ref a2, p)), x3 = TS.Create(Unsafe.Add(ref a3, p));
                c00 = TS.Fma(x0, b0, c00);
                c01 = TS.Fma(x0, b1, c01);
                c10 = TS.Fma(x1, b0, c10);
                c11 = TS.Fma(x1, b1, c11);
                c20 = TS.Fma(x2, b0, c20);
                c21 = TS.Fma(x2, b1, c21);
                c30 = TS.Fma(x3, b0, c30);
                c31 = TS.Fma(x3, b1, c31);
            }

            if (biased)
            {
                TV bias0 = TS.Load(ref bias, (nuint)col), bias1 = TS.Load(ref bias, (nuint)(col + v));
                (c00, c10, c20, c30) = (TS.Add(c00, bias0), TS.Add(c10, bias0), TS.Add(c20, bias0), TS.Add(c30, bias0));
                (c01, c11, c21, c31) = (TS.Add(c01, bias1), TS.Add(c11, bias1), TS.Add(c21, bias1), TS.Add(c31, bias1));
            }

            TS.Store(c00, ref c, (nuint)col);
            TS.Store(c01, ref c, (nuint)(col + v));
            TS.Store(c10, ref c, (nuint)(cols + col));
            TS.Store(c11, ref c, (nuint)(cols + col + v));
            TS.Store(c20, ref c, (nuint)(2 * cols + col));
            TS.Store(c21, ref c, (nuint)(2 * cols + col + v));
            TS.Store(c30, ref c, (nuint)(3 * cols + col));
            TS.Store(c31, ref c, (nuint)(3 * cols + col + v));
        }

        return col;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Store4(TV r0, TV r1, TV r2, TV r3, ref float c, int at, int v)
        {
            TS.Store(r0, ref c, (nuint)at);
            TS.Store(r1, ref c, (nuint)(at + v));
            TS.Store(r2, ref c, (nuint)(at + 2 * v));
            TS.Store(r3, ref c, (nuint)(at + 3 * v));
        }
    }

    /// <summary>a·b + c per lane, fused; the type test folds away when the JIT specialises T.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<T> Fma<T>(Vector<T> a, Vector<T> b, Vector<T> c)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float))
        {
            return Vector.FusedMultiplyAdd(a.As<T, float>(), b.As<T, float>(), c.As<T, float>()).As<float, T>();
        }

        if (typeof(T) == typeof(double))
        {
            return Vector.FusedMultiplyAdd(a.As<T, double>(), b.As<T, double>(), c.As<T, double>()).As<double, T>();
        }

        return a * b + c;
    }

    /// <summary>Returns B transposed: row-major [rows, cols] in, [cols, rows] out.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static T[] Transpose<T>(T[] b, int rows, int cols)
    {
        var t = new T[b.Length];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < cols; c++)
            {
                t[c * rows + r] = b[r * cols + c];
            }
        }

        return t;
    }
}
