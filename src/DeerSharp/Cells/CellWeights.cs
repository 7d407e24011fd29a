using System.Numerics.Tensors;

namespace DeerSharp.Cells;

/// <summary>
/// A cell's private snapshot of its layer's weights in the layouts its kernels want: W_hh row-major (for Jacobian
/// rows) and transposed (for <see cref="Kernels"/>), W_ih transposed, and the bias folded into the input projection.
/// Taken when the cell is built, so later changes to the <see cref="RecurrentWeights{T}"/> arrays do not reach a built
/// cell: build a new cell after changing weights.
/// </summary>
internal sealed class CellWeights<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly InputProjection<T> _input;

    public CellWeights(RecurrentWeights<T> w, int foldedGates)
    {
        int rows = w.Gates * w.HiddenSize;
        HiddenSize = w.HiddenSize;
        InputSize = w.InputSize;
        Rows = rows;
        HiddenRows = (T[])w.WeightHH.Clone();
        HiddenTransposed = Kernels.Transpose(w.WeightHH, rows, w.HiddenSize);
        HiddenDiagonals = new T[rows];
        for (int r = 0; r < rows; r++)
        {
            HiddenDiagonals[r] = HiddenRows[r * w.HiddenSize + r % w.HiddenSize];
        }

        _input = new InputProjection<T>(w.WeightIH, w.BiasIH, w.BiasHH, Rows, w.InputSize, foldedGates * w.HiddenSize);
    }

    public int HiddenSize { get; }

    /// <summary>W_hhᵀ packed for the fused float32 loop, built on its first use (Cpu/FusedLoop).</summary>
    internal PackedWeights? Fused;

    public int InputSize { get; }

    /// <summary>G·n.</summary>
    public int Rows { get; }

    /// <summary>W_hh, [G·n, n].</summary>
    public T[] HiddenRows { get; }

    /// <summary>W_ih, [G·n, d].</summary>
    public T[] InputRows => _input.InputRows;

    /// <summary>W_hhᵀ, [n, G·n].</summary>
    public T[] HiddenTransposed { get; }

    /// <summary>The diagonal of each gate's n×n block of W_hh, gate after gate, [G·n]: contiguous, for SIMD diagonal Jacobians.</summary>
    public T[] HiddenDiagonals { get; }

    /// <summary>W_ihᵀ, [d, G·n].</summary>
    public T[] InputTransposed => _input.InputTransposed;

    /// <summary>b_hh.</summary>
    public T[] HiddenBias => _input.HiddenBias;

    /// <summary>b_ih plus the parts of b_hh that PyTorch adds outside any gate product.</summary>
    public T[] ProjectionBias => _input.ProjectionBias;

    /// <summary>projections = x W_ihᵀ + bias for every step: one matrix product.</summary>
    public void Project(ReadOnlySpan<T> inputs, Span<T> projections, int count) => _input.Project(inputs, projections, count);

    /// <summary>hh = W_hh h for one state.</summary>
    public void Hidden(ReadOnlySpan<T> h, Span<T> hh) => Kernels.MatVec<T>(h, HiddenTransposed, hh[..Rows]);

    /// <summary>HH[count, G·n] = H[count, n] W_hhᵀ, where row i of H starts at i·<paramref name="stateStride"/>.</summary>
    public void Hidden(ReadOnlySpan<T> states, Span<T> hh, int count, int stateStride) =>
        Kernels.Gemm<T>(states, HiddenTransposed, hh, count, HiddenSize, Rows, stateStride);

    /// <summary>[weight_ih, weight_hh, bias_ih, bias_hh]: the flat parameter layout of the PyTorch cells.</summary>
    public int ParameterCount => Rows * (InputSize + HiddenSize + 2);

    /// <summary>Scratch for <see cref="Backward"/>: ∂L/∂h rows and gathered h rows.</summary>
    public int BackwardScratch(int count) => count * 2 * HiddenSize;

    /// <summary>
    /// The linear part of a backward step, shared by the PyTorch cells. Given the gradients of a block's pre-activations,
    /// δ_ih (what multiplies W_ih x and bias_ih) and δ_hh (what multiplies W_hh h and bias_hh), both [count, G·n] with row
    /// stride <paramref name="deltaStride"/> (0: G·n): adds δ_hh W_hh to the first n entries of each row of
    /// <paramref name="previous"/> (row stride <paramref name="stateStride"/>; skipped when it is empty), writes δ_ih W_ih
    /// to <paramref name="inputAdjoints"/>, and adds δ_ihᵀ X, δ_hhᵀ H and the bias sums to <paramref name="gradient"/>.
    /// </summary>
    public void Backward(ReadOnlySpan<T> dIh, ReadOnlySpan<T> dHh, ReadOnlySpan<T> inputs, ReadOnlySpan<T> states, int stateStride,
        Span<T> previous, Span<T> inputAdjoints, Span<T> gradient, Span<T> scratch, int count, int deltaStride = 0)
    {
        int n = HiddenSize, d = InputSize, rows = Rows, ds = deltaStride == 0 ? rows : deltaStride;
        Span<T> dh = scratch[..(count * n)], gathered = scratch.Slice(count * n, count * n);
        // H for δ_hhᵀ H: the states themselves when their rows are h alone, else their h parts gathered.
        ReadOnlySpan<T> hs = stateStride == n ? states[..(count * n)] : gathered;
        if (!previous.IsEmpty)
        {
            Kernels.Gemm<T>(dHh, HiddenRows, dh, count, rows, n, ds);
        }

        for (int i = 0; i < count; i++)
        {
            if (!previous.IsEmpty)
            {
                Span<T> row = previous.Slice(i * stateStride, n);
                TensorPrimitives.Add(row, dh.Slice(i * n, n), row);
            }

            if (stateStride != n)
            {
                states.Slice(i * stateStride, n).CopyTo(gathered.Slice(i * n, n));
            }
        }

        Kernels.Gemm<T>(dIh, InputRows, inputAdjoints, count, rows, d, ds);
        Span<T> gIh = gradient[..(rows * d)], gHh = gradient.Slice(rows * d, rows * n);
        Span<T> gBih = gradient.Slice(rows * (d + n), rows), gBhh = gradient.Slice(rows * (d + n + 1), rows);
        Kernels.GemmTransposedAccumulate<T>(dIh, ds, inputs, gIh, rows, count, d);
        Kernels.GemmTransposedAccumulate<T>(dHh, ds, hs, gHh, rows, count, n);
        Kernels.AddRows(dIh, ds, count, gBih);
        Kernels.AddRows(dHh, ds, count, gBhh);
    }
}

/// <summary>A cell's W_hhᵀ packed for the fused float32 loop at one lane count (Cpu/FusedLoop.Packed), from Values[Offset] (64-byte aligned).</summary>
internal sealed record PackedWeights(int Lanes, float[] Values, int Offset);
