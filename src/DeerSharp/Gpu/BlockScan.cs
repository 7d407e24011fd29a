using ILGPU;
using ILGPU.Runtime;

namespace DeerSharp.Gpu;

/// <summary>The three <see cref="BlockScanKernels"/> loaded once on an accelerator, solving on device buffers.</summary>
internal sealed class BlockScan<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Accelerator _accelerator;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int, int, int> _reduce;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int> _carry;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int, int, int> _apply;

    public BlockScan(Accelerator accelerator)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        _accelerator = accelerator;
        _reduce = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int, int, int>(BlockScanKernels.Reduce<T>);
        _carry = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int>(BlockScanKernels.Carry<T>);
        _apply = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int, int, int>(BlockScanKernels.Apply<T>);
    }

    /// <summary>
    /// Solves [<paramref name="batch"/>, <paramref name="length"/>, S] block-diagonal recurrences with A in
    /// <see cref="JacobianMode.Block"/> layout; h may alias b. Every size is checked here: an out-of-range index inside a
    /// kernel would end the process on the CPU accelerator.
    /// </summary>
    public void Solve(ArrayView<T> a, ArrayView<T> b, ArrayView<T> h0, ArrayView<T> h, int batch, int length, int s, JacobianStructure structure, int chunks)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunks, 1);
        structure.Validate(s, nameof(structure));
        int side = structure.Side, blocks = s / side;
        if (side > BlockScanKernels.MaxSide)
        {
            throw new ArgumentException($"The GPU block scan takes blocks of side at most {BlockScanKernels.MaxSide}; this structure's side is {side}.", nameof(structure));
        }

        long values = (long)batch * length * s;
        (int chunk, chunks) = ScanViews.Check(a, values * side, b, h, values, h0, (long)batch * s, length, chunks);
        long columns = (long)batch * chunks * blocks * (side + 1);
        if (columns * side > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(chunks), chunks, $"{batch}·{chunks}·{blocks} chunk maps of side {side} exceed one launch's index range.");
        }

        using MemoryBuffer1D<T, Stride1D.Dense> maps = _accelerator.Allocate1D<T>(columns * side), carry = _accelerator.Allocate1D<T>((long)batch * chunks * s);
        _reduce((int)columns, a, b, maps.View, length, s, structure.BlockSize, structure.Parts, chunk, chunks);
        _carry(batch * blocks, maps.View, h0, carry.View, s, structure.BlockSize, structure.Parts, chunks);
        _apply(batch * chunks * blocks, a, b, carry.View, h, length, s, structure.BlockSize, structure.Parts, chunk, chunks);
        _accelerator.Synchronize();
    }

}
