using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DeerSharp;

internal static partial class Kernels
{
    /// <summary>
    /// C[m, cols] += Aᵀ·B for A [k, m] with row stride <paramref name="lda"/> and B [k, cols]: the parameter gradient
    /// δᵀ X of a block of steps straight from the steps' δ rows, without transposing them first. The same order of terms as
    /// <see cref="Gemm{T}"/> with accumulate.
    /// </summary>
    public static void GemmTransposedAccumulate<T>(ReadOnlySpan<T> a, int lda, ReadOnlySpan<T> b, Span<T> c, int m, int k, int cols)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        GemmAccumulate(a, b, c, m, k, cols, 1, lda);

    /// <summary>
    /// C += A·B with A(i, p) at a[i·<paramref name="rowStep"/> + p·<paramref name="pStep"/>]: each element continues from
    /// C's value with one FMA per term, in order of p. Two rows by four vectors of columns per pass keep eight accumulators
    /// in registers, each B load used twice (one TensorPrimitives call per row and term cost a BPTT step's parameter
    /// gradient more than all its products: 192 calls of 32 lanes a step at n = 32).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GemmAccumulate<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> c, int m, int k, int cols, int rowStep, int pStep)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (m > 0 && k > 0 && ((long)(m - 1) * rowStep) + ((long)(k - 1) * pStep) >= a.Length || (long)k * cols > b.Length || (long)m * cols > c.Length)
        {
            throw new ArgumentException($"Gemm: A[{m}, {k}] (steps {rowStep}, {pStep}), B[{k}, {cols}], C[{m}, {cols}] do not fit spans of {a.Length}, {b.Length}, {c.Length}.");
        }

        int v = Vector<T>.Count;
        ref T ra = ref MemoryMarshal.GetReference(a);
        ref T rb = ref MemoryMarshal.GetReference(b);
        ref T rc = ref MemoryMarshal.GetReference(c);
        int i = 0;
        for (; i + 2 <= m; i += 2)
        {
            ref T a0 = ref Unsafe.Add(ref ra, i * rowStep);
            ref T a1 = ref Unsafe.Add(ref a0, rowStep);
            ref T c0 = ref Unsafe.Add(ref rc, i * cols);
            ref T c1 = ref Unsafe.Add(ref c0, cols);
            int col = 0;
            for (; col + 4 * v <= cols; col += 4 * v)
            {
                nuint o0 = (nuint)col, o1 = (nuint)(col + v), o2 = (nuint)(col + 2 * v), o3 = (nuint)(col + 3 * v);
                Vector<T> s00 = Vector.LoadUnsafe(ref c0, o0), s01 = Vector.LoadUnsafe(ref c0, o1), s02 = Vector.LoadUnsafe(ref c0, o2), s03 = Vector.LoadUnsafe(ref c0, o3);
                Vector<T> s10 = Vector.LoadUnsafe(ref c1, o0), s11 = Vector.LoadUnsafe(ref c1, o1), s12 = Vector.LoadUnsafe(ref c1, o2), s13 = Vector.LoadUnsafe(ref c1, o3);
                for (int p = 0; p < k; p++)
                {
                    ref T bp = ref Unsafe.Add(ref rb, p * cols);
                    Vector<T> b0 = Vector.LoadUnsafe(ref bp, o0), b1 = Vector.LoadUnsafe(ref bp, o1), b2 = Vector.LoadUnsafe(ref bp, o2), b3 = Vector.LoadUnsafe(ref bp, o3);
                    var x0 = new Vector<T>(Unsafe.Add(ref a0, p * pStep));
                    var x1 = new Vector<T>(Unsafe.Add(ref a1, p * pStep));
                    s00 = Fma(x0, b0, s00);
                    s01 = Fma(x0, b1, s01);
                    s02 = Fma(x0, b2, s02);
                    s03 = Fma(x0, b3, s03);
                    s10 = Fma(x1, b0, s10);
                    s11 = Fma(x1, b1, s11);
                    s12 = Fma(x1, b2, s12);
                    s13 = Fma(x1, b3, s13);
                }

                s00.StoreUnsafe(ref c0, o0);
                s01.StoreUnsafe(ref c0, o1);
                s02.StoreUnsafe(ref c0, o2);
                s03.StoreUnsafe(ref c0, o3);
                s10.StoreUnsafe(ref c1, o0);
                s11.StoreUnsafe(ref c1, o1);
                s12.StoreUnsafe(ref c1, o2);
                s13.StoreUnsafe(ref c1, o3);
            }

            AccumulateColumns(ref a0, pStep, ref rb, ref c0, k, cols, col);
            AccumulateColumns(ref a1, pStep, ref rb, ref c1, k, cols, col);
        }

        if (i < m)
        {
            AccumulateColumns(ref Unsafe.Add(ref ra, i * rowStep), pStep, ref rb, ref Unsafe.Add(ref rc, i * cols), k, cols, 0);
        }
    }

    /// <summary>One row of <see cref="GemmAccumulate{T}"/> from column <paramref name="col"/> on: a vector at a time, then lane by lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AccumulateColumns<T>(ref T a, int pStep, ref T b, ref T c, int k, int cols, int col)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int v = Vector<T>.Count;
        for (; col + v <= cols; col += v)
        {
            Vector<T> sum = Vector.LoadUnsafe(ref c, (nuint)col);
            for (int p = 0; p < k; p++)
            {
                sum = Fma(new Vector<T>(Unsafe.Add(ref a, p * pStep)), Vector.LoadUnsafe(ref b, (nuint)(p * cols + col)), sum);
            }

            sum.StoreUnsafe(ref c, (nuint)col);
        }

        for (; col < cols; col++)
        {
            T sum = Unsafe.Add(ref c, col);
            for (int p = 0; p < k; p++)
            {
                sum = T.FusedMultiplyAdd(Unsafe.Add(ref a, p * pStep), Unsafe.Add(ref b, p * cols + col), sum);
            }

            Unsafe.Add(ref c, col) = sum;
        }
    }

    /// <summary>
    /// destination[j] += Σ_r source[r·<paramref name="stride"/> + j] over <paramref name="rows"/> rows, added row after row
    /// (the bias gradient of a block of steps), a vector of columns at a time.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void AddRows<T>(ReadOnlySpan<T> source, int stride, int rows, Span<T> destination)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int cols = destination.Length, v = Vector<T>.Count;
        if (rows > 0 && ((long)(rows - 1) * stride) + cols > source.Length)
        {
            throw new ArgumentException($"AddRows: {rows} rows of {cols} at stride {stride} do not fit a span of {source.Length}.");
        }

        ref T rs = ref MemoryMarshal.GetReference(source);
        ref T rd = ref MemoryMarshal.GetReference(destination);
        int j = 0;
        for (; j + v <= cols; j += v)
        {
            Vector<T> sum = Vector.LoadUnsafe(ref rd, (nuint)j);
            for (int r = 0; r < rows; r++)
            {
                sum += Vector.LoadUnsafe(ref rs, (nuint)((r * stride) + j));
            }

            sum.StoreUnsafe(ref rd, (nuint)j);
        }

        for (; j < cols; j++)
        {
            T sum = Unsafe.Add(ref rd, j);
            for (int r = 0; r < rows; r++)
            {
                sum += Unsafe.Add(ref rs, (r * stride) + j);
            }

            Unsafe.Add(ref rd, j) = sum;
        }
    }
}
