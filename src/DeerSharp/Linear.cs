using System.Numerics.Tensors;

namespace DeerSharp;

/// <summary>The small dense kernels the cells and scans share; SIMD through <see cref="TensorPrimitives"/>.</summary>
internal static class Linear
{
    public static T Dot<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> y)
        where T : IFloatingPointIeee754<T> => TensorPrimitives.Dot(x, y);

    /// <summary>y = A x for row-major A of shape [rows, x.Length].</summary>
    public static void MatVec<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> x, Span<T> y)
        where T : IFloatingPointIeee754<T>
    {
        int cols = x.Length;
        for (int r = 0; r < y.Length; r++)
        {
            y[r] = TensorPrimitives.Dot(a.Slice(r * cols, cols), x);
        }
    }

    /// <summary>C = A B for square row-major n×n matrices; C must not alias A or B.</summary>
    public static void MatMul<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> c, int n)
        where T : IFloatingPointIeee754<T>
    {
        c[..(n * n)].Clear();
        for (int i = 0; i < n; i++)
        {
            Span<T> row = c.Slice(i * n, n);
            for (int k = 0; k < n; k++)
            {
                // row_i(C) += A[i,k] · row_k(B): unit-stride inner loop.
                TensorPrimitives.MultiplyAdd(b.Slice(k * n, n), a[i * n + k], row, row);
            }
        }
    }
}
