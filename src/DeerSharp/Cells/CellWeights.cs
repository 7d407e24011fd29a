using System.Runtime.CompilerServices;
using System.Numerics;
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
    public CellWeights(RecurrentWeights<T> w, int foldedGates)
    {
        int rows = w.Gates * w.HiddenSize;
        HiddenSize = w.HiddenSize;
        InputSize = w.InputSize;
        Rows = rows;
        HiddenRows = (T[])w.WeightHH.Clone();
        HiddenTransposed = Kernels.Transpose(w.WeightHH, rows, w.HiddenSize);
        InputTransposed = Kernels.Transpose(w.WeightIH, rows, w.InputSize);
        HiddenBias = (T[])w.BiasHH.Clone();
        ProjectionBias = (T[])w.BiasIH.Clone();
        int folded = foldedGates * w.HiddenSize;
        TensorPrimitives.Add(ProjectionBias.AsSpan(0, folded), w.BiasHH.AsSpan(0, folded), ProjectionBias.AsSpan(0, folded));
    }

    public int HiddenSize { get; }

    public int InputSize { get; }

    /// <summary>G·n.</summary>
    public int Rows { get; }

    /// <summary>W_hh, [G·n, n].</summary>
    public T[] HiddenRows { get; }

    /// <summary>W_hhᵀ, [n, G·n].</summary>
    public T[] HiddenTransposed { get; }

    /// <summary>W_ihᵀ, [d, G·n].</summary>
    public T[] InputTransposed { get; }

    /// <summary>b_hh.</summary>
    public T[] HiddenBias { get; }

    /// <summary>b_ih plus the parts of b_hh that PyTorch adds outside any gate product.</summary>
    public T[] ProjectionBias { get; }

    /// <summary>projections = x W_ihᵀ + bias for every step: one matrix product.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Project(ReadOnlySpan<T> inputs, Span<T> projections, int count)
    {
        Kernels.Gemm<T>(inputs, InputTransposed, projections, count, InputSize, Rows);
        for (int t = 0; t < count; t++)
        {
            Span<T> row = projections.Slice(t * Rows, Rows);
            TensorPrimitives.Add(row, ProjectionBias, row);
        }
    }

    /// <summary>hh = W_hh h for one state.</summary>
    public void Hidden(ReadOnlySpan<T> h, Span<T> hh) => Kernels.MatVec<T>(h, HiddenTransposed, hh[..Rows]);

    /// <summary>HH[count, G·n] = H[count, n] W_hhᵀ, where row i of H starts at i·<paramref name="stateStride"/>.</summary>
    public void Hidden(ReadOnlySpan<T> states, Span<T> hh, int count, int stateStride) =>
        Kernels.Gemm<T>(states, HiddenTransposed, hh, count, HiddenSize, Rows, stateStride);
}
