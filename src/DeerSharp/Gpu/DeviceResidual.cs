using System.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace DeerSharp.Gpu;

/// <summary>
/// The fixed-point residual of an iterate, reduced on the device by <see cref="NewtonKernels"/> (ResidualSingle or
/// ResidualDouble): two numbers come back, max |h − f| / (atol + rtol |f|) and max |h − f|. Shared by the device Newton loops.
/// </summary>
internal sealed class DeviceResidual<T> : IDisposable
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<uint>, float, float>? _single;
    private readonly Action<Index1D, ArrayView<double>, ArrayView<double>, ArrayView<ulong>, double, double>? _double;
    private readonly MemoryBuffer1D<ulong, Stride1D.Dense> _stats;

    public DeviceResidual(Accelerator accelerator)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        if (typeof(T) == typeof(float))
        {
            _single = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<uint>, float, float>(NewtonKernels.ResidualSingle);
        }
        else if (typeof(T) == typeof(double))
        {
            _double = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<double>, ArrayView<double>, ArrayView<ulong>, double, double>(NewtonKernels.ResidualDouble);
        }
        else
        {
            throw new NotSupportedException($"The ILGPU kernels run in float or double; {typeof(T).Name} is not supported.");
        }

        _stats = accelerator.Allocate1D<ulong>(2);
    }

    /// <summary>(max ratio to the tolerance, max |h − f|) over the first <paramref name="count"/> values.</summary>
    public (double Ratio, double Residual) Measure(ArrayView<T> current, ArrayView<T> f, double atol, double rtol, int count)
    {
        _stats.MemSetToZero();
        if (_single is not null)
        {
            ArrayView<uint> bits = _stats.View.AsContiguous().Cast<uint>();
            _single(count, current.Cast<float>(), f.Cast<float>(), bits, (float)atol, (float)rtol);
            var host = new uint[2];
            bits.SubView(0, 2).CopyToCPU(host);
            return (BitConverter.UInt32BitsToSingle(host[0]), BitConverter.UInt32BitsToSingle(host[1]));
        }

        _double!(count, current.Cast<double>(), f.Cast<double>(), _stats.View, atol, rtol);
        ulong[] values = _stats.GetAsArray1D();
        return (BitConverter.UInt64BitsToDouble(values[0]), BitConverter.UInt64BitsToDouble(values[1]));
    }

    public void Dispose() => _stats.Dispose();
}
