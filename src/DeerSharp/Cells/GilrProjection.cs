using System.Numerics.Tensors;

namespace DeerSharp.Cells;

/// <summary>
/// GILR's input-only part, shared by <see cref="GilrCell{T}"/> and the surrogate of <see cref="GilrLstmCell{T}"/>:
/// [g; i] = [σ(U x + b_g); tanh(V x + b_i)] for a block of steps (one GEMM), and its backward pass.
/// </summary>
internal sealed class GilrProjection<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T[] _rows;         // [U; V], [2n, d]
    private readonly T[] _transposed;   // [Uᵀ | Vᵀ], [d, 2n]
    private readonly T[] _bias;         // [b_g; b_i]

    public GilrProjection(GilrWeights<T> w)
    {
        HiddenSize = w.HiddenSize;
        InputSize = w.InputSize;
        _rows = [.. w.GateWeight, .. w.ImpulseWeight];
        _transposed = Kernels.Transpose(_rows, 2 * HiddenSize, InputSize);
        _bias = [.. w.GateBias, .. w.ImpulseBias];
    }

    public int HiddenSize { get; }

    public int InputSize { get; }

    public int BackwardScratch(int count) => 2 * count * HiddenSize;

    /// <summary>Writes [g; i] of each step into row t of <paramref name="projections"/> (row stride <paramref name="stride"/>, at <paramref name="offset"/>).</summary>
    public void Project(ReadOnlySpan<T> inputs, Span<T> projections, int count, int stride, int offset)
    {
        int n = HiddenSize, w = 2 * n;
        T[]? staged = stride == w && offset == 0 ? null : new T[count * w];
        Span<T> pre = staged ?? projections[..(count * w)];
        Kernels.Gemm<T>(inputs, _transposed, pre, count, InputSize, w);
        for (int t = 0; t < count; t++)
        {
            Span<T> row = pre.Slice(t * w, w);
            TensorPrimitives.Add(row, _bias, row);
            TensorPrimitives.Sigmoid(row[..n], row[..n]);
            TensorPrimitives.Tanh(row[n..], row[n..]);
            if (staged is not null)
            {
                row.CopyTo(projections.Slice(t * stride + offset, w));
            }
        }
    }

    /// <summary>
    /// From the pre-activation gradients da = [∂(U x + b_g); ∂(V x + b_i)], [count, 2n]: ∂x (written, or added when
    /// <paramref name="accumulateInputs"/>), and the gradient of [U, b_g, V, b_i] added at the start of <paramref name="gradient"/>.
    /// </summary>
    public void Backward(ReadOnlySpan<T> da, ReadOnlySpan<T> inputs, Span<T> inputAdjoints, Span<T> gradient, Span<T> scratch, int count, bool accumulateInputs)
    {
        int n = HiddenSize, d = InputSize, nd = n * d;
        Kernels.Gemm<T>(da, _rows, inputAdjoints, count, 2 * n, d, accumulate: accumulateInputs);
        Span<T> transposed = scratch[..(2 * n * count)];
        for (int k = 0; k < count; k++)
        {
            for (int j = 0; j < 2 * n; j++)
            {
                transposed[j * count + k] = da[k * 2 * n + j];
            }
        }

        Kernels.Gemm<T>(transposed[..(n * count)], inputs, gradient[..nd], n, count, d, accumulate: true);
        Kernels.Gemm<T>(transposed[(n * count)..], inputs, gradient.Slice(nd + n, nd), n, count, d, accumulate: true);
        for (int k = 0; k < count; k++)
        {
            TensorPrimitives.Add(gradient.Slice(nd, n), da.Slice(k * 2 * n, n), gradient.Slice(nd, n));
            TensorPrimitives.Add(gradient.Slice(2 * nd + n, n), da.Slice(k * 2 * n + n, n), gradient.Slice(2 * nd + n, n));
        }
    }
}
