using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

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

    /// <summary>[Uᵀ | Vᵀ], [d, 2n]: GILR-LSTM stacks it beside W_ihᵀ for one product.</summary>
    internal T[] Transposed => _transposed;

    /// <summary>[b_g; b_i].</summary>
    internal T[] Bias => _bias;

    /// <summary>
    /// Writes [g; i] of each step into row t of <paramref name="projections"/> (row stride <paramref name="stride"/>, at
    /// <paramref name="offset"/>): one matrix product with the bias, then <see cref="Activate"/>. Rows of exactly 2n are
    /// written in place; others are staged in a pooled buffer.
    /// </summary>
    public void Project(ReadOnlySpan<T> inputs, Span<T> projections, int count, int stride, int offset)
    {
        int n = HiddenSize, w = 2 * n;
        if (stride == w && offset == 0)
        {
            Kernels.Gemm<T>(inputs, _transposed, projections[..(count * w)], count, InputSize, w, bias: _bias);
            Activate(projections, count, w, 0);
            return;
        }

        T[] staged = ArrayPool<T>.Shared.Rent(count * w);
        try
        {
            Kernels.Gemm<T>(inputs, _transposed, staged.AsSpan(0, count * w), count, InputSize, w, bias: _bias);
            Activate(staged, count, w, 0);
            for (int t = 0; t < count; t++)
            {
                staged.AsSpan(t * w, w).CopyTo(projections.Slice((t * stride) + offset, w));
            }
        }
        finally
        {
            ArrayPool<T>.Shared.Return(staged);
        }
    }

    /// <summary>
    /// g = σ(·) on the n values at <paramref name="offset"/> of each of <paramref name="count"/> rows (stride
    /// <paramref name="stride"/>) and i = tanh(·) on the n after them, in place, a vector at a time.
    /// </summary>
    public void Activate(Span<T> rows, int count, int stride, int offset)
    {
        int n = HiddenSize, v = Vector<T>.Count;
        if (count == 0)
        {
            return;
        }

        ref T r0 = ref MemoryMarshal.GetReference(rows[..(((count - 1) * stride) + offset + (2 * n))]);
        for (int t = 0; t < count; t++)
        {
            ref T g = ref Unsafe.Add(ref r0, (t * stride) + offset);
            ref T i = ref Unsafe.Add(ref g, n);
            int j = 0;
            for (; j + v <= n; j += v)
            {
                Activations.Sigmoid(Vector.LoadUnsafe(ref g, (nuint)j)).StoreUnsafe(ref g, (nuint)j);
                Activations.Tanh(Vector.LoadUnsafe(ref i, (nuint)j)).StoreUnsafe(ref i, (nuint)j);
            }

            for (; j < n; j++)
            {
                Unsafe.Add(ref g, j) = Activations.Sigmoid(Unsafe.Add(ref g, j));
                Unsafe.Add(ref i, j) = Activations.Tanh(Unsafe.Add(ref i, j));
            }
        }
    }

    /// <summary>
    /// From the pre-activation gradients da = [∂(U x + b_g); ∂(V x + b_i)], [count, 2n]: ∂x (written, or added when
    /// <paramref name="accumulateInputs"/>), and the gradient of [U, b_g, V, b_i] added at the start of <paramref name="gradient"/>.
    /// </summary>
    public void Backward(ReadOnlySpan<T> da, ReadOnlySpan<T> inputs, Span<T> inputAdjoints, Span<T> gradient, int count, bool accumulateInputs)
    {
        int n = HiddenSize, d = InputSize, nd = n * d, w = 2 * n;
        Kernels.Gemm<T>(da, _rows, inputAdjoints, count, w, d, accumulate: accumulateInputs);
        // δᵀ X for U and for V, reading the rows of da in place (no transposed copy), and the bias sums.
        Kernels.GemmTransposedAccumulate<T>(da, w, inputs, gradient[..nd], n, count, d);
        Kernels.GemmTransposedAccumulate<T>(da[n..], w, inputs, gradient.Slice(nd + n, nd), n, count, d);
        Kernels.AddRows(da, w, count, gradient.Slice(nd, n));
        Kernels.AddRows(da[n..], w, count, gradient.Slice((2 * nd) + n, n));
    }
}
