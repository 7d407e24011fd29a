using System.Numerics;
using DeerSharp.Cells;
using ILGPU;
using ILGPU.Runtime;

namespace DeerSharp.Gpu;

/// <summary>
/// Quasi-DEER for a GRU entirely on one ILGPU accelerator: the input projection once, then per iteration the shift to
/// h_{t−1}, the recurrent product, the fused evaluation (f, the exact Jacobian diagonal, the Newton term), the residual
/// reduced on the device (two numbers come back), and the diagonal scan. It stops only on the residual of the iterate it
/// returns. A prototype of the ILGPU backend's Newton loop (issue #13), not yet behind <see cref="SolveOptions.Device"/>.
/// </summary>
internal sealed class GruQuasiNewton<T> : IDisposable
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Accelerator _accelerator;
    private readonly DiagonalScan<T> _scan;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int> _project;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int> _shift;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int> _product;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int> _evaluate;
    private readonly DeviceResidual<T> _residual;

    /// <summary>The outcome: states [B, L, n], the updates applied, the residual of the returned states and its ratio to the tolerance.</summary>
    public readonly record struct Outcome(T[] States, int Iterations, SolveStatus Status, double MaxResidual, double Ratio);

    public GruQuasiNewton(Accelerator accelerator)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        if (typeof(T) != typeof(float) && typeof(T) != typeof(double))
        {
            throw new NotSupportedException($"The ILGPU kernels run in float or double; {typeof(T).Name} is not supported.");
        }

        _accelerator = accelerator;
        _scan = new DiagonalScan<T>(accelerator);
        _project = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(NewtonKernels.InputProjection<T>);
        _shift = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(NewtonKernels.Shift<T>);
        _product = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int>(GruKernels.RecurrentProduct<T>);
        _evaluate = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int>(
            GruKernels.EvaluateDiagonal<T>);
        _residual = new DeviceResidual<T>(accelerator);
    }

    public Outcome Solve(RecurrentWeights<T> weights, T[] inputs, int batch, int length, T[]? initialState, double atol, double rtol, int maxIterations)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(inputs);
        if (weights.Gates != 3)
        {
            throw new ArgumentException($"weights must be a GRU's (3 gates); they have {weights.Gates}.", nameof(weights));
        }

        int n = weights.HiddenSize, d = weights.InputSize, gates = 3 * n;
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(maxIterations);
        long rows = (long)batch * length;
        Require.Length(inputs, rows * d, nameof(inputs), $"[{batch}, {length}, {d}]");
        if (initialState is not null)
        {
            Require.Length(initialState, (long)batch * n, nameof(initialState), $"[{batch}, {n}]");
        }

        if (rows * gates > int.MaxValue)
        {
            throw new ArgumentException($"{rows} rows × {gates} gates exceed one launch's index range; solve fewer or shorter sequences at a time.", nameof(inputs));
        }

        T[] bih = weights.BiasIH ?? new T[gates], bhh = weights.BiasHH ?? new T[gates];
        using MemoryBuffer1D<T, Stride1D.Dense> wih = _accelerator.Allocate1D(weights.WeightIH), whh = _accelerator.Allocate1D(weights.WeightHH),
            dbih = _accelerator.Allocate1D(bih), dbhh = _accelerator.Allocate1D(bhh), x = _accelerator.Allocate1D(inputs),
            h0 = _accelerator.Allocate1D(initialState ?? new T[batch * n]), xp = _accelerator.Allocate1D<T>(rows * gates),
            hh = _accelerator.Allocate1D<T>(rows * gates), current = _accelerator.Allocate1D<T>(rows * n), previous = _accelerator.Allocate1D<T>(rows * n),
            f = _accelerator.Allocate1D<T>(rows * n), diagonal = _accelerator.Allocate1D<T>(rows * n), term = _accelerator.Allocate1D<T>(rows * n);
        _project((int)(rows * gates), wih.View, dbih.View, x.View, xp.View, d, gates);
        current.MemSetToZero();
        int chunks = DiagonalScan<T>.Chunks(batch, length, n, threads: 1 << 16);
        for (int iteration = 0; ; iteration++)
        {
            _shift((int)(rows * n), current.View, h0.View, previous.View, length, n);
            _product((int)(rows * gates), whh.View, previous.View, hh.View, n);
            _evaluate((int)(rows * n), xp.View, hh.View, dbhh.View, whh.View, previous.View, f.View, diagonal.View, term.View, n);
            (double ratio, double residual) = _residual.Measure(current.View, f.View, atol, rtol, (int)(rows * n));
            SolveStatus? status = ratio <= 1 ? SolveStatus.Converged
                : !double.IsFinite(ratio) ? SolveStatus.Diverged
                : iteration >= maxIterations ? SolveStatus.MaxIterationsReached
                : null;
            if (status is { } done)
            {
                return new Outcome(current.GetAsArray1D(), iteration, done, residual, ratio);
            }

            _scan.Solve(diagonal.View, term.View, h0.View, current.View, batch, length, n, chunks);
        }
    }

    public void Dispose() => _residual.Dispose();
}
