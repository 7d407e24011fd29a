using System.Numerics.Tensors;

namespace DeerSharp.Cells;

/// <summary>
/// The part of a PyTorch-style cell that reads x alone, snapshotted: W_ih (row-major, and transposed for the GEMM), b_hh,
/// and the projection bias (b_ih plus the first <c>foldedRows</c> entries of b_hh, which PyTorch adds outside any gate
/// product). Shared by the dense cells' <see cref="CellWeights{T}"/> and the structured cells' <see cref="BlockCellWeights{T}"/>.
/// </summary>
internal sealed class InputProjection<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    public InputProjection(T[] weightIH, T[] biasIH, T[] biasHH, int rows, int inputSize, int foldedRows)
    {
        Rows = rows;
        InputSize = inputSize;
        InputRows = (T[])weightIH.Clone();
        InputTransposed = Kernels.Transpose(weightIH, rows, inputSize);
        HiddenBias = (T[])biasHH.Clone();
        ProjectionBias = (T[])biasIH.Clone();
        TensorPrimitives.Add(ProjectionBias.AsSpan(0, foldedRows), biasHH.AsSpan(0, foldedRows), ProjectionBias.AsSpan(0, foldedRows));
    }

    /// <summary>G·n.</summary>
    public int Rows { get; }

    public int InputSize { get; }

    /// <summary>W_ih, [G·n, d].</summary>
    public T[] InputRows { get; }

    /// <summary>W_ihᵀ, [d, G·n].</summary>
    public T[] InputTransposed { get; }

    /// <summary>b_hh.</summary>
    public T[] HiddenBias { get; }

    /// <summary>b_ih plus the parts of b_hh that PyTorch adds outside any gate product.</summary>
    public T[] ProjectionBias { get; }

    /// <summary>projections = x W_ihᵀ + bias for every step: one matrix product.</summary>
    public void Project(ReadOnlySpan<T> inputs, Span<T> projections, int count)
    {
        Kernels.Gemm<T>(inputs, InputTransposed, projections, count, InputSize, Rows, bias: ProjectionBias);
    }
}
