using ILGPU;
using ILGPU.Runtime;

namespace DeerSharp.Gpu;

/// <summary>
/// The diagonal scan on one ILGPU accelerator: the three <see cref="DiagonalScanKernels"/> loaded once, then solved on
/// device buffers. Not thread safe: one per stream of work.
/// </summary>
internal sealed class DiagonalScan<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Accelerator _accelerator;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int> _reduce;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int> _carry;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int> _apply;

    public DiagonalScan(Accelerator accelerator)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        _accelerator = accelerator;
        _reduce = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int>(
            DiagonalScanKernels.Reduce<T>);
        _carry = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(
            DiagonalScanKernels.Carry<T>);
        _apply = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int>(
            DiagonalScanKernels.Apply<T>);
    }

    /// <summary>
    /// Chunks per sequence: enough threads (B·chunks·n) to fill the device, each chunk at least <paramref name="minimumChunk"/> steps.
    /// </summary>
    public static int Chunks(int batch, int length, int n, long threads, int minimumChunk = 32) =>
        (int)Math.Clamp(threads / Math.Max(1L, (long)batch * n), 1, Math.Max(1, length / Math.Max(1, minimumChunk)));

    /// <summary>
    /// Solves [<paramref name="batch"/>, <paramref name="length"/>, <paramref name="n"/>] recurrences on device memory:
    /// h may alias b. <paramref name="chunks"/> splits each sequence (1: the plain loop per channel).
    /// </summary>
    public void Solve(ArrayView<T> a, ArrayView<T> b, ArrayView<T> h0, ArrayView<T> h, int batch, int length, int n, int chunks)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunks, 1);
        long values = (long)batch * length * n;
        (int chunk, chunks) = ScanViews.Check(a, values, b, h, values, h0, (long)batch * n, length, chunks);
        long maps = (long)batch * chunks * n;
        if (maps > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(chunks), chunks, $"{batch}·{chunks}·{n} chunk maps exceed one launch's index range.");
        }

        using MemoryBuffer1D<T, Stride1D.Dense> p = _accelerator.Allocate1D<T>(maps), r = _accelerator.Allocate1D<T>(maps), carry = _accelerator.Allocate1D<T>(maps);
        _reduce((int)maps, a, b, p.View, r.View, length, n, chunk, chunks);
        _carry(batch * n, p.View, r.View, h0, carry.View, n, chunks);
        _apply((int)maps, a, b, carry.View, h, length, n, chunk, chunks);
        _accelerator.Synchronize();
    }

}
