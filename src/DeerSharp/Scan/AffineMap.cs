using System.Numerics.Tensors;

namespace DeerSharp.Scan;

/// <summary>
/// The scan operator of a linear recurrence: one step h ↦ A h + b is an affine map (A, b), and
/// "first (A₁, b₁), then (A₂, b₂)" composes to (A₂A₁, A₂b₁ + b₂) (reference §2).
/// </summary>
/// <remarks>
/// Laws, checked by the tests: composition is associative, Compose(Compose(x, y), z) = Compose(x, Compose(y, z)),
/// and (I, 0) is a two-sided identity, Compose(Identity, x) = Compose(x, Identity) = x. It is not commutative.
/// Diagonal maps store A as its diagonal a (n values); dense maps store A row-major (n×n values).
/// </remarks>
public static class AffineMap
{
    /// <summary>Writes the diagonal identity (a = 1, b = 0).</summary>
    public static void DiagonalIdentity<T>(Span<T> a, Span<T> b)
        where T : IFloatingPointIeee754<T>
    {
        a.Fill(T.One);
        b.Clear();
    }

    /// <summary>Writes the dense identity (A = I, b = 0) of size n.</summary>
    public static void DenseIdentity<T>(Span<T> a, Span<T> b, int n)
        where T : IFloatingPointIeee754<T>
    {
        a[..(n * n)].Clear();
        for (int i = 0; i < n; i++)
        {
            a[i * n + i] = T.One;
        }

        b[..n].Clear();
    }

    /// <summary>(a, b) = first then second = (a₂ ⊙ a₁, a₂ ⊙ b₁ + b₂). The outputs may alias <paramref name="a1"/>/<paramref name="b1"/>.</summary>
    public static void ComposeDiagonal<T>(ReadOnlySpan<T> a1, ReadOnlySpan<T> b1, ReadOnlySpan<T> a2, ReadOnlySpan<T> b2, Span<T> a, Span<T> b)
        where T : IFloatingPointIeee754<T>
    {
        TensorPrimitives.MultiplyAdd(b1, a2, b2, b);
        TensorPrimitives.Multiply(a1, a2, a);
    }

    /// <summary>
    /// (A, b) = first then second = (A₂A₁, A₂b₁ + b₂) for n×n maps. <paramref name="scratch"/> holds n² + n values;
    /// the outputs may alias either input.
    /// </summary>
    public static void ComposeDense<T>(ReadOnlySpan<T> a1, ReadOnlySpan<T> b1, ReadOnlySpan<T> a2, ReadOnlySpan<T> b2, Span<T> a, Span<T> b, int n, Span<T> scratch)
        where T : IFloatingPointIeee754<T>
    {
        Span<T> product = scratch[..(n * n)];
        Span<T> offset = scratch.Slice(n * n, n);
        Linear.MatMul(a2, a1, product, n);
        Linear.MatVec(a2[..(n * n)], b1[..n], offset);
        TensorPrimitives.Add(offset, b2[..n], b);
        product.CopyTo(a);
    }
}
