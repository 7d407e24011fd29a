using DeerSharp.Engines;
using ILGPU;
using ILGPU.Runtime;

namespace DeerSharp.Gpu;

internal sealed partial class DeviceSolver<T>
{
    /// <summary>
    /// The fixed-point residual of an iterate, reduced on the device per sequence by <see cref="NewtonKernels"/>
    /// (ResidualSingle or ResidualDouble): two numbers per sequence come back, max |h − f| / (atol + rtol |f|) and max |h − f|.
    /// Shared by the device's Newton, damped, loop and scan paths.
    /// </summary>
    private sealed class Residuals : IDisposable
    {
        private readonly Accelerator _accelerator;
        private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<uint>, float, float, int>? _single;
        private readonly Action<Index1D, ArrayView<double>, ArrayView<double>, ArrayView<ulong>, double, double, int>? _double;
        private MemoryBuffer1D<ulong, Stride1D.Dense> _stats;

        public Residuals(Accelerator accelerator)
        {
            ArgumentNullException.ThrowIfNull(accelerator);
            _accelerator = accelerator;
            if (typeof(T) == typeof(float))
            {
                _single = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<uint>, float, float, int>(NewtonKernels.ResidualSingle);
            }
            else if (typeof(T) == typeof(double))
            {
                _double = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<double>, ArrayView<double>, ArrayView<ulong>, double, double, int>(NewtonKernels.ResidualDouble);
            }
            else
            {
                throw new NotSupportedException($"The ILGPU kernels run in float or double; {typeof(T).Name} is not supported.");
            }

            _stats = accelerator.Allocate1D<ulong>(2);
        }

        /// <summary>
        /// Each sequence's residual over the first <paramref name="sequences"/>·<paramref name="perSequence"/> values, into
        /// <paramref name="residuals"/>: within tolerance when the ratio is at most 1, finite when max |h − f| is.
        /// </summary>
        public void Measure(ArrayView<T> current, ArrayView<T> f, double atol, double rtol, int sequences, int perSequence, Span<IterateResidual> residuals)
        {
            if (_stats.Length < 2L * sequences)
            {
                _stats.Dispose();
                _stats = _accelerator.Allocate1D<ulong>(2L * sequences);
            }

            _stats.MemSetToZero();
            int count = sequences * perSequence;
            if (_single is not null)
            {
                ArrayView<uint> bits = _stats.View.AsContiguous().Cast<uint>();
                _single(count, current.Cast<float>(), f.Cast<float>(), bits, (float)atol, (float)rtol, perSequence);
                var host = new uint[2 * sequences];
                bits.SubView(0, host.Length).CopyToCPU(host);
                for (int q = 0; q < sequences; q++)
                {
                    residuals[q] = Residual(BitConverter.UInt32BitsToSingle(host[2 * q]), BitConverter.UInt32BitsToSingle(host[(2 * q) + 1]));
                }

                return;
            }

            _double!(count, current.Cast<double>(), f.Cast<double>(), _stats.View, atol, rtol, perSequence);
            var values = new ulong[2 * sequences];
            _stats.View.SubView(0, values.Length).CopyToCPU(values);
            for (int q = 0; q < sequences; q++)
            {
                residuals[q] = Residual(BitConverter.UInt64BitsToDouble(values[2 * q]), BitConverter.UInt64BitsToDouble(values[(2 * q) + 1]));
            }
        }

        /// <summary>Within on a ratio of at most 1; finite when the largest |h − f| is (the ratio can be ∞ for a finite residual where atol = 0 and f = 0).</summary>
        private static IterateResidual Residual(double ratio, double max) => new(max, ratio <= 1, double.IsFinite(max));

        public void Dispose() => _stats.Dispose();
    }
}
