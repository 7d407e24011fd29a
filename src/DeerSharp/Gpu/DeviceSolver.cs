using System.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace DeerSharp.Gpu;

/// <summary>
/// The ILGPU backend's solver for one accelerator and element type: the kernels loaded once, then every method of a
/// <see cref="DeviceCell{T}"/> run whole on the device. Per iteration: the shift to h_{t−1}, the recurrent product (dense
/// cells), one fused evaluation launch (f, the Jacobian or its diagonal or blocks, the Newton term), the residual reduced
/// on the device (two numbers come back), and the update (a copy, the diagonal scan, or the block scan). It stops only on
/// the residual of the iterate it returns. Not thread safe: <see cref="IlgpuBackend"/> serialises the calls.
/// </summary>
internal sealed class DeviceSolver<T> : IDisposable
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Accelerator _accelerator;
    private readonly DiagonalScan<T> _diagonal;
    private readonly BlockScan<T> _blocks;
    private readonly DeviceResidual<T> _residual;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int> _project;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int> _shift;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int> _product;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>[] _dense;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int> _gilr;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int> _sru;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int> _gilrLstm;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>[] _structured;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int> _loop;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, T, int, int> _thomas;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, T, int, int> _cyclicSetup;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int> _cyclicStep;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>> _cyclicSolve;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>> _add;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<double>>? _meritSingle;
    private readonly Action<Index1D, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>>? _meritDouble;
    private readonly MemoryBuffer1D<double, Stride1D.Dense> _merit;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<Type, object> _custom = new();
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, int, int, int> _reverseTranspose;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int> _blockProduct;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int, int, int> _accumulateBlocks;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int> _productBlocks;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int> _surrogateCoefficients;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int> _surrogateDelta;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int> _gilrLstmCoefficients;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int> _gilrLstmDelta;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int> _gilrLstmSurrogateDelta;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, int, int, int> _reverseCotangent;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, int, int> _unreverse;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int> _initialState;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int> _delta;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int, int> _accumulate;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, int, int> _sumChunks;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int> _productT;

    /// <summary>States [B, L, S], the updates applied, the status, the residual of the returned states, its ratio to the tolerance, and the residual per iteration.</summary>
    public readonly record struct Outcome(T[] States, int Iterations, SolveStatus Status, double MaxResidual, double Ratio, IReadOnlyList<double> History);

    public DeviceSolver(Accelerator accelerator)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        if (typeof(T) != typeof(float) && typeof(T) != typeof(double))
        {
            throw new NotSupportedException($"The ILGPU kernels run in float or double; {typeof(T).Name} is not supported.");
        }

        _accelerator = accelerator;
        _diagonal = new DiagonalScan<T>(accelerator);
        _blocks = new BlockScan<T>(accelerator);
        _residual = new DeviceResidual<T>(accelerator);
        _project = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(NewtonKernels.InputProjection<T>);
        _shift = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(NewtonKernels.Shift<T>);
        _product = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int>(DenseKernels.RecurrentProduct<T>);
        _dense =
        [
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(DenseKernels.EvaluateRnn<T>),
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(DenseKernels.EvaluateGru<T>),
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(DenseKernels.EvaluateLstm<T>),
        ];
        _gilr = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(DenseKernels.EvaluateGilr<T>);
        _gilrLstm = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(DenseKernels.EvaluateGilrLstm<T>);
        _sru = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(DenseKernels.EvaluateSru<T>);
        _structured =
        [
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(StructuredKernels.EvaluateIndRnn<T>),
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(StructuredKernels.EvaluateDiagonalGru<T>),
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(StructuredKernels.EvaluateDiagonalLstm<T>),
        ];
        _loop = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int>(DenseKernels.Loop<T>);
        _thomas = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, T, int, int>(DampedKernels.Thomas<T>);
        _cyclicSetup = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, T, int, int>(DampedKernels.CyclicSetup<T>);
        _cyclicStep = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int>(DampedKernels.CyclicStep<T>);
        _cyclicSolve = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>>(DampedKernels.CyclicSolve<T>);
        _add = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>>(DampedKernels.Add<T>);
        if (typeof(T) == typeof(float))
        {
            _meritSingle = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<double>>(DampedKernels.MeritSingle);
        }
        else
        {
            _meritDouble = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>>(DampedKernels.MeritDouble);
        }

        _merit = accelerator.Allocate1D<double>(1);
        _reverseTranspose = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, int, int, int>(AdjointKernels.ReverseTranspose<T>);
        _blockProduct = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int>(AdjointKernels.BlockProduct<T>);
        _accumulateBlocks = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int, int, int>(AdjointKernels.AccumulateBlocks<T>);
        _productBlocks = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int>(AdjointKernels.ProductBlocks<T>);
        _surrogateCoefficients = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int>(AdjointKernels.SurrogateCoefficients<T>);
        _surrogateDelta = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(AdjointKernels.SurrogateDelta<T>);
        _gilrLstmCoefficients = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int>(AdjointKernels.GilrLstmCoefficients<T>);
        _gilrLstmDelta = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int>(AdjointKernels.GilrLstmDelta<T>);
        _gilrLstmSurrogateDelta = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int>(AdjointKernels.GilrLstmSurrogateDelta<T>);
        _reverseCotangent = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, int, int, int>(AdjointKernels.ReverseCotangent<T>);
        _unreverse = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, int, int>(AdjointKernels.Unreverse<T>);
        _initialState = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(AdjointKernels.InitialStateAdjoint<T>);
        _delta = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(AdjointKernels.Delta<T>);
        _accumulate = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int, int>(AdjointKernels.Accumulate<T>);
        _sumChunks = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, int, int>(AdjointKernels.SumChunks<T>);
        _productT = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int>(AdjointKernels.Product<T>);
    }

    /// <summary>The methods the device runs for <paramref name="cell"/>; null names what it does not, with the reason.</summary>
    public static string? Unsupported(DeviceCell<T> cell, SolveMethod method) => (cell.Structured, method) switch
    {
        _ when cell.Linear => method is SolveMethod.Scan or SolveMethod.Sequential ? null
            : $"{cell.Kind} is a linear surrogate: the device runs its one exact scan (Scan) or its loop (Sequential), not {method}",
        (_, SolveMethod.Scan) => "Scan is for the linear-surrogate cells (GILR, SRU)",
        (_, SolveMethod.Sequential) when cell.Structured => "the device loop exists for the dense cells only (tanh RNN, GRU, LSTM)",
        (true, SolveMethod.QuasiDeer or SolveMethod.Picard) => "on the device a structured cell runs exact DEER (its Jacobian blocks are cheap), not quasi-DEER or Picard",
        (false, SolveMethod.Deer) when cell.StateSize > DeviceCell<T>.MaxDenseState =>
            $"dense DEER on the device takes states up to {DeviceCell<T>.MaxDenseState} (this one is {cell.StateSize}); use QuasiDeer",
        (true, SolveMethod.QuasiElk) => "on the device a structured cell runs exact DEER, not damped quasi-DEER",
        (_, SolveMethod.Sequential or SolveMethod.Deer or SolveMethod.QuasiDeer or SolveMethod.Picard or SolveMethod.QuasiElk) => null,
        _ => $"the device runs Sequential, Deer, QuasiDeer, QuasiElk and Picard, not {method}",
    };

    public Outcome Solve(DeviceCell<T> cell, ReadOnlySpan<T> inputs, int batch, int length, ReadOnlySpan<T> initialState, ReadOnlySpan<T> warmStart,
        SolveMethod method, double atol, double rtol, int maxIterations, double initialDamping = 1e-2)
    {
        ArgumentNullException.ThrowIfNull(cell);
        if (Unsupported(cell, method) is { } why)
        {
            throw new NotSupportedException($"{cell.Kind} {method}: {why}.");
        }

        int n = cell.HiddenSize, d = cell.InputSize, s = cell.StateSize, projection = cell.ProjectionSize;
        bool custom = cell.Kind == DeviceCellKind.Custom;
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(maxIterations);
        long rows = (long)batch * length;
        int jacobianPerStep = JacobianPerStep(cell, method);
        if (rows > MaxRows(cell, method))
        {
            throw new ArgumentException($"{rows} rows of {s} states ({jacobianPerStep} Jacobian values per step) exceed one launch's index range; solve fewer or shorter sequences at a time.", nameof(inputs));
        }

        using MemoryBuffer1D<T, Stride1D.Dense> wih = _accelerator.Allocate1D(cell.WeightIH), whh = _accelerator.Allocate1D(cell.WeightHH),
            bih = _accelerator.Allocate1D(cell.BiasIH), bhh = _accelerator.Allocate1D(cell.BiasHH), x = _accelerator.Allocate1D<T>(custom ? 1 : rows * d),
            h0 = _accelerator.Allocate1D<T>((long)batch * s), xp = _accelerator.Allocate1D<T>(Math.Max(1, rows * projection)),
            current = _accelerator.Allocate1D<T>(rows * s), previous = _accelerator.Allocate1D<T>(rows * s), f = _accelerator.Allocate1D<T>(rows * s),
            hh = _accelerator.Allocate1D<T>(cell.Structured || cell.Linear || custom ? 1 : rows * projection), jac = _accelerator.Allocate1D<T>(rows * jacobianPerStep),
            term = _accelerator.Allocate1D<T>(rows * s);
        CopyOrZero(h0, initialState, batch * s);

        if (custom)
        {
            // A custom cell reads x_t itself: the inputs are its xp (and its parameters sit in W_hh's buffer).
            if (d > 0)
            {
                xp.View.SubView(0, rows * d).AsContiguous().CopyFromCPU(inputs[..(int)(rows * d)]);
            }
        }
        else
        {
            x.View.AsContiguous().CopyFromCPU(inputs[..(int)(rows * d)]);
            _project((int)(rows * projection), wih.View, bih.View, x.View, xp.View, d, projection);
        }

        var history = new List<double>();
        if (method == SolveMethod.Sequential)
        {
            if (custom)
            {
                cell.Function!.Loop(Kernels(cell.Function), batch, xp.View, h0.View, whh.View, current.View, length, s, d);
            }
            else
            {
                _loop(batch, xp.View, whh.View, bhh.View, h0.View, current.View, length, n, (int)cell.Kind);
            }

            (double ratio, double residual) = Evaluate(cell, xp, whh, bhh, h0, current, previous, hh, f, jac, term, batch, length, mode: 0, atol, rtol);
            history.Add(residual);
            return new Outcome(current.GetAsArray1D(), 0, Status(ratio, 0, 0) ?? SolveStatus.MaxIterationsReached, residual, ratio, history);
        }

        if (method == SolveMethod.Scan)
        {
            // GILR: the coefficients depend on x alone, so one diagonal scan from any iterate is the exact trajectory,
            // whose residual is then checked like any method's.
            // Each level's scan is exact once the level it reads is: GILR-LSTM's h~ first, then its c. The outputs that
            // depend on the scanned parts alone (SRU's and GILR-LSTM's h) then come from one evaluation.
            current.MemSetToZero();
            int chunkCount = DiagonalScan<T>.Chunks(batch, length, s, threads: 1 << 16);
            for (int level = 0; level < cell.Levels; level++)
            {
                Evaluate(cell, xp, whh, bhh, h0, current, previous, hh, f, jac, term, batch, length, mode: 1, atol, rtol);
                _diagonal.Solve(jac.View, term.View, h0.View, current.View, batch, length, s, chunkCount);
            }

            Evaluate(cell, xp, whh, bhh, h0, current, previous, hh, f, jac, term, batch, length, mode: 0, atol, rtol);
            current.View.CopyFrom(f.View);
            (double scanRatio, double scanResidual) = Evaluate(cell, xp, whh, bhh, h0, current, previous, hh, f, jac, term, batch, length, mode: 0, atol, rtol);
            history.Add(scanResidual);
            return new Outcome(current.GetAsArray1D(), 1, Status(scanRatio, 1, 1) ?? SolveStatus.MaxIterationsReached, scanResidual, scanRatio, history);
        }

        if (warmStart.IsEmpty)
        {
            current.MemSetToZero();
        }
        else
        {
            current.View.AsContiguous().CopyFromCPU(warmStart[..(int)(rows * s)]);
        }

        if (method == SolveMethod.QuasiElk)
        {
            return SolveDamped(cell, xp, whh, bhh, h0, current, previous, hh, f, jac, term, batch, length, atol, rtol, maxIterations, initialDamping, history);
        }

        int mode = method switch { SolveMethod.Deer => 2, SolveMethod.QuasiDeer => 1, _ => 0 };
        JacobianStructureScan scan = method == SolveMethod.Deer && cell.Structure.Side > 1 ? JacobianStructureScan.Blocks
            : mode == 0 ? JacobianStructureScan.None : JacobianStructureScan.Diagonal;
        int chunks = DiagonalScan<T>.Chunks(batch, length, s, threads: 1 << 16);
        for (int iteration = 0; ; iteration++)
        {
            (double ratio, double residual) = Evaluate(cell, xp, whh, bhh, h0, current, previous, hh, f, jac, term, batch, length, mode, atol, rtol);
            history.Add(residual);
            if (Status(ratio, iteration, maxIterations) is { } done)
            {
                return new Outcome(current.GetAsArray1D(), iteration, done, residual, ratio, history);
            }

            switch (scan)
            {
                case JacobianStructureScan.Blocks:
                    _blocks.Solve(jac.View, term.View, h0.View, current.View, batch, length, s, cell.Structure, chunks);
                    break;
                case JacobianStructureScan.Diagonal:
                    _diagonal.Solve(jac.View, term.View, h0.View, current.View, batch, length, s, chunks);
                    break;
                default:
                    current.View.CopyFrom(f.View);
                    _accelerator.Synchronize();
                    break;
            }
        }
    }

    /// <summary>Jacobian values per row the method keeps on the device.</summary>
    private static int JacobianPerStep(DeviceCell<T> cell, SolveMethod method) => method switch
    {
        SolveMethod.Deer => cell.StateSize * cell.Structure.Side,
        SolveMethod.QuasiDeer or SolveMethod.Scan or SolveMethod.QuasiElk => cell.StateSize,
        _ => 1,
    };

    /// <summary>The most rows (sequence, step) one solve may hold: every buffer's index must fit one launch's int range.</summary>
    public static long MaxRows(DeviceCell<T> cell, SolveMethod method) =>
        int.MaxValue / Math.Max(Math.Max(JacobianPerStep(cell, method), cell.ProjectionSize), cell.StateSize);

    /// <summary>Device bytes per row: inputs, projection, recurrent product, four state buffers and the Jacobian, plus a margin for the scan's chunk maps.</summary>
    public static long BytesPerRow(DeviceCell<T> cell, SolveMethod method)
    {
        long values = cell.InputSize + (2L * cell.ProjectionSize) + (4L * cell.StateSize) + JacobianPerStep(cell, method)
            + (method == SolveMethod.QuasiElk ? 14L * cell.StateSize : 0);
        return (values + (values / 4) + 1) * System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
    }

    /// <summary>
    /// Whether <see cref="Gradient"/> runs the adjoint of <paramref name="cell"/> on the device: the dense and custom cells
    /// whose full Jacobian the block scan takes (S ≤ 32), the structured cells (their blocks, any n), and the linear
    /// surrogates (reversed diagonal scans, any n).
    /// </summary>
    public static bool HasAdjoint(DeviceCell<T> cell) =>
        cell.Linear
        || (cell.Structured ? cell.Structure.Side <= DeviceCell<T>.MaxDenseState
            : cell.Kind is DeviceCellKind.TanhRnn or DeviceCellKind.Gru or DeviceCellKind.Lstm or DeviceCellKind.Custom && cell.StateSize <= DeviceCell<T>.MaxDenseState);

    /// <summary>
    /// The scan adjoint on the device at a solved trajectory <paramref name="states"/> [B, L, S]: the Jacobians there, the
    /// reversed transposed recurrence by the block scan, δ per step, and the sums. Returns ∂L/∂θ in PyTorch's flat layout
    /// [W_ih, W_hh, b_ih, b_hh] (summed over the batch), ∂L/∂x [B, L, d] and ∂L/∂h0 [B, S].
    /// </summary>
    public (T[] Parameters, T[] Inputs, T[] InitialStates) Gradient(DeviceCell<T> cell, ReadOnlySpan<T> inputs, ReadOnlySpan<T> states,
        ReadOnlySpan<T> initialState, ReadOnlySpan<T> cotangent, int batch, int length, int outputSize)
    {
        if (!HasAdjoint(cell))
        {
            throw new NotSupportedException($"{cell.Kind}: the device adjoint takes the dense and custom cells with states up to {DeviceCell<T>.MaxDenseState}, the structured cells and the linear surrogates.");
        }

        int n = cell.HiddenSize, d = cell.InputSize, s = cell.StateSize, gates = cell.Gates * n, side = cell.Linear ? 1 : cell.Structure.Side, k = cell.BlockSize;
        long rows = (long)batch * length;
        if (rows > MaxRows(cell, SolveMethod.Deer))
        {
            throw new ArgumentException($"{rows} rows exceed one launch's index range for the device adjoint.", nameof(inputs));
        }

        if (cell.Function is { } custom)
        {
            return CustomGradient(cell, custom, inputs, states, initialState, cotangent, batch, length, outputSize);
        }

        using MemoryBuffer1D<T, Stride1D.Dense> wih = _accelerator.Allocate1D(cell.WeightIH), whh = _accelerator.Allocate1D(cell.WeightHH),
            bih = _accelerator.Allocate1D(cell.BiasIH), bhh = _accelerator.Allocate1D(cell.BiasHH), x = _accelerator.Allocate1D<T>(rows * d),
            h0 = _accelerator.Allocate1D<T>((long)batch * s), zero = _accelerator.Allocate1D<T>((long)batch * s), xp = _accelerator.Allocate1D<T>(rows * gates),
            current = _accelerator.Allocate1D<T>(rows * s), previous = _accelerator.Allocate1D<T>(rows * s), hh = _accelerator.Allocate1D<T>(rows * gates),
            f = _accelerator.Allocate1D<T>(rows * s), jac = _accelerator.Allocate1D<T>(rows * s * side), term = _accelerator.Allocate1D<T>(rows * s),
            cot = _accelerator.Allocate1D<T>(rows * outputSize), a = _accelerator.Allocate1D<T>(rows * s * side), b = _accelerator.Allocate1D<T>(rows * s),
            v = _accelerator.Allocate1D<T>(rows * s), dih = _accelerator.Allocate1D<T>(rows * gates), dhh = _accelerator.Allocate1D<T>(rows * gates),
            direct = _accelerator.Allocate1D<T>(rows * s), dx = _accelerator.Allocate1D<T>(rows * d), gWih = _accelerator.Allocate1D<T>((long)gates * d),
            gWhh = _accelerator.Allocate1D<T>((long)gates * (cell.Structured ? k : n)), gBih = _accelerator.Allocate1D<T>(gates), gBhh = _accelerator.Allocate1D<T>(gates);
        x.View.AsContiguous().CopyFromCPU(inputs[..(int)(rows * d)]);
        current.View.AsContiguous().CopyFromCPU(states[..(int)(rows * s)]);
        cot.View.AsContiguous().CopyFromCPU(cotangent[..(int)(rows * outputSize)]);
        zero.MemSetToZero();
        CopyOrZero(h0, initialState, batch * s);

        _project((int)(rows * gates), wih.View, bih.View, x.View, xp.View, d, gates);

        int chunkCount = DiagonalScan<T>.Chunks(batch, length, n, threads: 1 << 16);
        if (cell.Kind == DeviceCellKind.GilrLstm)
        {
            // 1-3. GILR-LSTM: the gates at the solution (hh = W_hh h~_{t−1}), the reversed scan for c, the gates' δ, q = W_hhᵀ δ,
            // the reversed scan for h~, then the surrogate's δ.
            long m = rows * n;
            _shift((int)(rows * s), current.View, h0.View, previous.View, length, s);
            _product((int)(rows * 4 * n), whh.View, previous.View.SubView(n, (rows * s) - n), hh.View, n, s, 4 * n);
            ArrayView<T> dc = v.View.SubView(0, m), vs = v.View.SubView(m, m), q = f.View.SubView(0, m);
            _gilrLstmCoefficients((int)m, xp.View, hh.View, cot.View, q, a.View, b.View, length, n, 0);
            _diagonal.Solve(a.View, b.View, zero.View, term.View, batch, length, n, chunkCount);
            _unreverse((int)m, term.View, dc, length, n);
            _gilrLstmDelta((int)m, xp.View, hh.View, current.View, previous.View, dc, cot.View, dih.View, dhh.View, direct.View, n);
            _productT((int)m, dhh.View, whh.View, q, 4 * n, n, n, 0);
            _gilrLstmCoefficients((int)m, xp.View, hh.View, cot.View, q, a.View, b.View, length, n, 1);
            _diagonal.Solve(a.View, b.View, zero.View, term.View, batch, length, n, chunkCount);
            _unreverse((int)m, term.View, vs, length, n);
            _gilrLstmSurrogateDelta((int)m, xp.View, previous.View, vs, q, dih.View, direct.View, n);
        }
        else if (cell.Linear)
        {
            // 1-3. A linear surrogate: one reversed diagonal scan over its n linear channels gives their adjoint, then δ
            // over its projection rows (it has no W_hh).
            int surrogate = cell.Kind == DeviceCellKind.Gilr ? 0 : 1;
            _shift((int)(rows * s), current.View, h0.View, previous.View, length, s);
            _surrogateCoefficients((int)(rows * n), xp.View, current.View, cot.View, a.View, b.View, length, n, surrogate);
            _diagonal.Solve(a.View, b.View, zero.View, term.View, batch, length, n, chunkCount);
            _unreverse((int)(rows * n), term.View, v.View, length, n);
            _surrogateDelta((int)(rows * n), xp.View, current.View, previous.View, v.View, cot.View, dih.View, direct.View, n, surrogate);
        }
        else
        {
            // 1. The Jacobians (the full S×S, or a structured cell's blocks) at the solution, and hh = W_hh h_{t−1}, which δ needs.
            Evaluate(cell, xp, whh, bhh, h0, current, previous, hh, f, jac, term, batch, length, mode: 2, 1, 1);
            if (cell.Structured)
            {
                _blockProduct((int)(rows * gates), whh.View, previous.View, hh.View, gates, n, k, s);
            }

            // 2. The adjoint v by the reversed, transposed block scan.
            ReversedAdjoint(jac, cot, a, b, zero, v, batch, length, s, cell.Structure, outputSize);

            // 3. δ per step (the structured cells' gates are the dense ones' with hh from the blocks).
            int kind = cell.Kind switch
            {
                DeviceCellKind.TanhRnn or DeviceCellKind.IndRnn => 0,
                DeviceCellKind.Gru or DeviceCellKind.DiagonalGru => 1,
                _ => 2,
            };
            _delta((int)(rows * n), xp.View, hh.View, bhh.View, previous.View, v.View, dih.View, dhh.View, direct.View, n, kind);
        }

        // 4. The parameter sums, ∂L/∂x, and ∂L/∂h_{t−1} = direct + W_hhᵀ δ_hh (kept at t = 0 for ∂L/∂h0).
        // The parameter sums in two stages: chunks of rows in parallel, then the chunks in order.
        int chunkRows = (int)Math.Max(64, rows / 1024), chunks = (int)((rows + chunkRows - 1) / chunkRows);
        using MemoryBuffer1D<T, Stride1D.Dense> partial = _accelerator.Allocate1D<T>((long)chunks * gates * Math.Max(d, n));
        void Sum(ArrayView<T> delta, ArrayView<T> m, ArrayView<T> output, int columns, int stride)
        {
            int outputs = columns == 0 ? gates : gates * columns;
            _accumulate(chunks * outputs, delta, m, partial.View, gates, columns, stride, (int)rows, chunkRows);
            _sumChunks(outputs, partial.View, output, outputs, chunks);
        }

        Sum(dih.View, x.View, gWih.View, d, d);
        Sum(dih.View, dih.View, gBih.View, 0, 0);
        _productT((int)(rows * d), dih.View, wih.View, dx.View, gates, d, d, 0);
        if (cell.Structured)
        {
            _accumulateBlocks(chunks * gates * k, dhh.View, previous.View, partial.View, gates, n, k, s, (int)rows, chunkRows);
            _sumChunks(gates * k, partial.View, gWhh.View, gates * k, chunks);
            Sum(dhh.View, dhh.View, gBhh.View, 0, 0);
            _productBlocks((int)(rows * n), dhh.View, whh.View, direct.View, gates, n, k, s);
        }
        else if (cell.Kind == DeviceCellKind.GilrLstm)
        {
            // W_hh [4n, n] reads h~ (offset n of each state); δ_gates is dhh [rows, 4n].
            _accumulate(chunks * 4 * n * n, dhh.View, previous.View.SubView(n, (rows * s) - n), partial.View, 4 * n, n, s, (int)rows, chunkRows);
            _sumChunks(4 * n * n, partial.View, gWhh.View, 4 * n * n, chunks);
        }
        else if (!cell.Linear)
        {
            Sum(dhh.View, previous.View, gWhh.View, n, s);
            Sum(dhh.View, dhh.View, gBhh.View, 0, 0);
            _productT((int)(rows * n), dhh.View, whh.View, direct.View, gates, n, s, 1);
        }
        _accelerator.Synchronize();

        T[] gw = gWih.GetAsArray1D(), gb = gBih.GetAsArray1D();
        T[] parameters = cell.Kind switch
        {
            // GILR's layout: [W_gate, b_gate, W_impulse, b_impulse]; the device's rows are [gate; impulse].
            DeviceCellKind.Gilr => [.. gw.AsSpan(0, n * d), .. gb.AsSpan(0, n), .. gw.AsSpan(n * d, n * d), .. gb.AsSpan(n, n)],
            // SRU's: [W (3n × n, rows x̃, f, r), b_f, b_r]; the device's fourth block of rows is the highway's identity.
            DeviceCellKind.Sru => [.. gw.AsSpan(0, 3 * n * n), .. gb.AsSpan(n, 2 * n)],
            // GILR-LSTM's: [its GILR's, W_ih (4n × d), W_hh (4n × n), b (4n)]; the device's rows are [gate; impulse; W_ih].
            DeviceCellKind.GilrLstm => [.. gw.AsSpan(0, n * d), .. gb.AsSpan(0, n), .. gw.AsSpan(n * d, n * d), .. gb.AsSpan(n, n),
                .. gw.AsSpan(2 * n * d, 4 * n * d), .. gWhh.GetAsArray1D().AsSpan(0, 4 * n * n), .. gb.AsSpan(2 * n, 4 * n)],
            _ => [.. gw, .. gWhh.GetAsArray1D(), .. gb, .. gBhh.GetAsArray1D()],
        };
        T[] all = direct.GetAsArray1D();
        var initial = new T[batch * s];
        for (int q = 0; q < batch; q++)
        {
            all.AsSpan(q * length * s, s).CopyTo(initial.AsSpan(q * s, s));
        }

        return (parameters, dx.GetAsArray1D(), initial);
    }

    /// <summary>
    /// The scan adjoint of a user's device recurrence: v from the full Jacobians at the solution by the reversed block scan
    /// (as for the dense cells), then ∂L/∂x, ∂L/∂θ (chunks of rows, then the chunks in order) and ∂L/∂h0 = J_0ᵀ v_0, the
    /// products with ∂f/∂x and ∂f/∂θ from the user's Apply on dual numbers seeded along each input and parameter.
    /// </summary>
    private (T[] Parameters, T[] Inputs, T[] InitialStates) CustomGradient(DeviceCell<T> cell, ICustomFunction<T> custom, ReadOnlySpan<T> inputs,
        ReadOnlySpan<T> states, ReadOnlySpan<T> initialState, ReadOnlySpan<T> cotangent, int batch, int length, int outputSize)
    {
        int d = cell.InputSize, s = cell.StateSize, parameters = cell.ParameterCount;
        long rows = (long)batch * length;
        object kernels = Kernels(custom);
        using MemoryBuffer1D<T, Stride1D.Dense> theta = _accelerator.Allocate1D(cell.WeightHH), unused = _accelerator.Allocate1D<T>(1),
            x = _accelerator.Allocate1D<T>(Math.Max(1, rows * d)), h0 = _accelerator.Allocate1D<T>((long)batch * s), zero = _accelerator.Allocate1D<T>((long)batch * s),
            current = _accelerator.Allocate1D<T>(rows * s), previous = _accelerator.Allocate1D<T>(rows * s), f = _accelerator.Allocate1D<T>(rows * s),
            jac = _accelerator.Allocate1D<T>(rows * s * s), term = _accelerator.Allocate1D<T>(rows * s), cot = _accelerator.Allocate1D<T>(rows * outputSize),
            a = _accelerator.Allocate1D<T>(rows * s * s), b = _accelerator.Allocate1D<T>(rows * s), v = _accelerator.Allocate1D<T>(rows * s),
            dx = _accelerator.Allocate1D<T>(Math.Max(1, rows * d)), dh0 = _accelerator.Allocate1D<T>((long)batch * s), gTheta = _accelerator.Allocate1D<T>(Math.Max(1, parameters));
        if (d > 0)
        {
            x.View.SubView(0, rows * d).AsContiguous().CopyFromCPU(inputs[..(int)(rows * d)]);
        }

        current.View.AsContiguous().CopyFromCPU(states[..(int)(rows * s)]);
        cot.View.AsContiguous().CopyFromCPU(cotangent[..(int)(rows * outputSize)]);
        zero.MemSetToZero();
        CopyOrZero(h0, initialState, batch * s);

        Evaluate(cell, x, theta, unused, h0, current, previous, unused, f, jac, term, batch, length, mode: 2, 1, 1);
        ReversedAdjoint(jac, cot, a, b, zero, v, batch, length, s, new Cells.JacobianStructure(s), outputSize);

        if (d > 0)
        {
            custom.InputAdjoint(kernels, (int)(rows * d), x.View, previous.View, theta.View, v.View, dx.View, s, d);
        }

        _initialState(batch * s, jac.View, v.View, dh0.View, length, s);
        T[] gradient = [];
        if (parameters > 0)
        {
            int chunkRows = (int)Math.Max(64, rows / 256), chunks = (int)((rows + chunkRows - 1) / chunkRows);
            using MemoryBuffer1D<T, Stride1D.Dense> partial = _accelerator.Allocate1D<T>((long)chunks * parameters);
            custom.ParameterAdjoint(kernels, chunks * parameters, x.View, previous.View, theta.View, v.View, partial.View, s, d, parameters, (int)rows, chunkRows);
            _sumChunks(parameters, partial.View, gTheta.View, parameters, chunks);
            _accelerator.Synchronize();
            gradient = gTheta.GetAsArray1D();
        }

        _accelerator.Synchronize();
        return (gradient, d > 0 ? dx.View.SubView(0, rows * d).GetAsArray1D() : [], dh0.GetAsArray1D());
    }

    /// <summary>Copies the initial states to the device, or zeros them when none are given.</summary>
    private static void CopyOrZero(MemoryBuffer1D<T, Stride1D.Dense> h0, ReadOnlySpan<T> initialState, int count)
    {
        if (initialState.IsEmpty)
        {
            h0.MemSetToZero();
        }
        else
        {
            h0.View.AsContiguous().CopyFromCPU(initialState[..count]);
        }
    }

    /// <summary>
    /// The adjoint v [B, L, S] from the Jacobians at the solution (full, or <paramref name="structure"/>'s blocks) and the
    /// output cotangent: reverse time and transpose, then the block scan from zero, w_u = J_{L−u}ᵀ w_{u−1} + g_{L−1−u},
    /// and v_t = w_{L−1−t}. <paramref name="a"/> and <paramref name="b"/> are scratch of the Jacobians' and the states' size.
    /// </summary>
    private void ReversedAdjoint(MemoryBuffer1D<T, Stride1D.Dense> jac, MemoryBuffer1D<T, Stride1D.Dense> cot, MemoryBuffer1D<T, Stride1D.Dense> a,
        MemoryBuffer1D<T, Stride1D.Dense> b, MemoryBuffer1D<T, Stride1D.Dense> zero, MemoryBuffer1D<T, Stride1D.Dense> v, int batch, int length, int s,
        Cells.JacobianStructure structure, int outputSize)
    {
        long rows = (long)batch * length;
        _reverseTranspose((int)(rows * s * structure.Side), jac.View, a.View, length, s, structure.Side);
        _reverseCotangent((int)(rows * s), cot.View, b.View, length, s, outputSize);
        _blocks.Solve(a.View, b.View, zero.View, b.View, batch, length, s, structure, DiagonalScan<T>.Chunks(batch, length, s, threads: 1 << 16));
        _unreverse((int)(rows * s), b.View, v.View, length, s);
    }

    /// <summary>
    /// quasi-ELK as the CPU runs it (Solver.SolveDamped): Levenberg-Marquardt on r = h − f with the Jacobian's diagonal,
    /// the tridiagonal step per channel on the device (cyclic reduction or Thomas, <see cref="CyclicBelow"/>), λ × 0.3 after a step that lowers Σ|r|² or max|r|, × 10 and retry
    /// after one that does not, stalled past λ = 10^16. The residual of the returned iterate is the accepted one's.
    /// </summary>
    private Outcome SolveDamped(DeviceCell<T> cell, MemoryBuffer1D<T, Stride1D.Dense> xp, MemoryBuffer1D<T, Stride1D.Dense> whh,
        MemoryBuffer1D<T, Stride1D.Dense> bhh, MemoryBuffer1D<T, Stride1D.Dense> h0, MemoryBuffer1D<T, Stride1D.Dense> current,
        MemoryBuffer1D<T, Stride1D.Dense> previous, MemoryBuffer1D<T, Stride1D.Dense> hh, MemoryBuffer1D<T, Stride1D.Dense> f,
        MemoryBuffer1D<T, Stride1D.Dense> jac, MemoryBuffer1D<T, Stride1D.Dense> term, int batch, int length, double atol, double rtol,
        int maxIterations, double initialDamping, List<double> history)
    {
        int s = cell.StateSize;
        long count = (long)batch * length * s;
        using MemoryBuffer1D<T, Stride1D.Dense> residual = _accelerator.Allocate1D<T>(count), candidate = _accelerator.Allocate1D<T>(count),
            diagonal = _accelerator.Allocate1D<T>(count), sweep = _accelerator.Allocate1D<T>(count), step = _accelerator.Allocate1D<T>(count),
            backup = _accelerator.Allocate1D<T>(count);
        using CyclicBuffers? cyclic = (long)batch * s < CyclicBelow ? new CyclicBuffers(_accelerator, count) : null;
        (double ratio, double max) = Evaluate(cell, xp, whh, bhh, h0, current, previous, hh, f, jac, term, batch, length, mode: 1, atol, rtol);
        history.Add(max);
        if (Status(ratio, 0, int.MaxValue) is { } first)
        {
            return new Outcome(current.GetAsArray1D(), 0, first, max, ratio, history);
        }

        double merit = Merit(current, f, residual, count);
        diagonal.View.CopyFrom(jac.View);
        double lambda = initialDamping, acceptedRatio = ratio;
        int accepted = 0;
        MemoryBuffer1D<T, Stride1D.Dense> r = residual, next = candidate;
        while (true)
        {
            if (accepted >= maxIterations)
            {
                return new Outcome(current.GetAsArray1D(), accepted, SolveStatus.MaxIterationsReached, max, acceptedRatio, history);
            }

            DampedStep(r.View, diagonal.View, sweep.View, step.View, cyclic, T.CreateTruncating(lambda), batch, length, s);
            backup.View.CopyFrom(current.View);
            _add((int)count, current.View, step.View);
            (double candidateRatio, double candidateMax) = Evaluate(cell, xp, whh, bhh, h0, current, previous, hh, f, jac, term, batch, length, mode: 1, atol, rtol);
            bool finite = double.IsFinite(candidateRatio);
            double candidateMerit = finite ? Merit(current, f, next, count) : double.PositiveInfinity;
            if (finite && (candidateMerit < merit || candidateMax < max))
            {
                accepted++;
                (r, next) = (next, r);
                diagonal.View.CopyFrom(jac.View);
                (merit, max, acceptedRatio) = (candidateMerit, candidateMax, candidateRatio);
                history.Add(max);
                if (candidateRatio <= 1)
                {
                    return new Outcome(current.GetAsArray1D(), accepted, SolveStatus.Converged, max, candidateRatio, history);
                }

                lambda = Math.Max(lambda * 0.3, 1e-12);
            }
            else
            {
                current.View.CopyFrom(backup.View);
                lambda *= 10;
                if (lambda > 1e16)
                {
                    return new Outcome(current.GetAsArray1D(), accepted, SolveStatus.MaxIterationsReached, max, acceptedRatio, history);
                }
            }
        }
    }

    /// <summary>
    /// Below this many channels (B·S) the damped step runs parallel cyclic reduction, parallel over t as well; at or above
    /// it, the Thomas algorithm, whose B·S threads are then enough to fill a GPU and whose O(L) work is log2 L times less.
    /// A choice by counting threads, not yet by a GPU measurement.
    /// </summary>
    internal const long CyclicBelow = 1 << 16;

    /// <summary>Two sets of (lower, main, upper, rhs) for cyclic reduction's steps, read from one and written to the other.</summary>
    private sealed class CyclicBuffers(Accelerator accelerator, long count) : IDisposable
    {
        private readonly MemoryBuffer1D<T, Stride1D.Dense>[] _buffers = [.. Enumerable.Range(0, 8).Select(_ => accelerator.Allocate1D<T>(count))];

        public ArrayView<T> this[int set, int part] => _buffers[(4 * set) + part].View;

        public void Dispose()
        {
            foreach (MemoryBuffer1D<T, Stride1D.Dense> buffer in _buffers)
            {
                buffer.Dispose();
            }
        }
    }

    /// <summary>The damped step per channel into <paramref name="step"/>, by cyclic reduction when <paramref name="parallel"/>, else by Thomas: for tests.</summary>
    internal void DampedStep(ArrayView<T> r, ArrayView<T> d, ArrayView<T> sweep, ArrayView<T> step, bool parallel, T lambda, int batch, int length, int s)
    {
        using CyclicBuffers? cyclic = parallel ? new CyclicBuffers(_accelerator, (long)batch * length * s) : null;
        DampedStep(r, d, sweep, step, cyclic, lambda, batch, length, s);
        _accelerator.Synchronize();
    }

    /// <summary>The damped step per channel into <paramref name="step"/>: cyclic reduction when <paramref name="cyclic"/> is given, else Thomas.</summary>
    private void DampedStep(ArrayView<T> r, ArrayView<T> d, ArrayView<T> sweep, ArrayView<T> step, CyclicBuffers? cyclic, T lambda, int batch, int length, int s)
    {
        if (cyclic is null)
        {
            _thomas(batch * s, r, d, sweep, step, lambda, length, s);
            return;
        }

        int count = batch * length * s, from = 0;
        _cyclicSetup(count, r, d, cyclic[0, 0], cyclic[0, 1], cyclic[0, 2], cyclic[0, 3], lambda, length, s);
        for (int delta = 1; delta < length; delta *= 2)
        {
            int to = 1 - from;
            _cyclicStep(count, cyclic[from, 0], cyclic[from, 1], cyclic[from, 2], cyclic[from, 3], cyclic[to, 0], cyclic[to, 1], cyclic[to, 2], cyclic[to, 3],
                delta, length, s);
            from = to;
        }

        _cyclicSolve(count, cyclic[from, 1], cyclic[from, 3], step);
    }

    /// <summary>r = h − f into <paramref name="residual"/>; Σ r², summed on the device in double.</summary>
    private double Merit(MemoryBuffer1D<T, Stride1D.Dense> current, MemoryBuffer1D<T, Stride1D.Dense> f, MemoryBuffer1D<T, Stride1D.Dense> residual, long count)
    {
        _merit.MemSetToZero();
        if (_meritSingle is not null)
        {
            _meritSingle((int)count, current.View.AsContiguous().Cast<float>(), f.View.AsContiguous().Cast<float>(), residual.View.AsContiguous().Cast<float>(), _merit.View);
        }
        else
        {
            _meritDouble!((int)count, current.View.AsContiguous().Cast<double>(), f.View.AsContiguous().Cast<double>(), residual.View.AsContiguous().Cast<double>(), _merit.View);
        }

        return _merit.GetAsArray1D()[0];
    }

    private enum JacobianStructureScan
    {
        None,
        Diagonal,
        Blocks,
    }

    /// <summary>Converged on a residual within tolerance, Diverged on a non-finite one, MaxIterationsReached at the limit; null to go on.</summary>
    private static SolveStatus? Status(double ratio, int iteration, int maxIterations) =>
        ratio <= 1 ? SolveStatus.Converged
        : !double.IsFinite(ratio) ? SolveStatus.Diverged
        : iteration >= maxIterations ? SolveStatus.MaxIterationsReached
        : null;

    /// <summary>f (and the Jacobian per <paramref name="mode"/>, and the Newton term) at the iterate, and its residual.</summary>
    private (double Ratio, double Residual) Evaluate(DeviceCell<T> cell, MemoryBuffer1D<T, Stride1D.Dense> xp, MemoryBuffer1D<T, Stride1D.Dense> whh,
        MemoryBuffer1D<T, Stride1D.Dense> bhh, MemoryBuffer1D<T, Stride1D.Dense> h0, MemoryBuffer1D<T, Stride1D.Dense> current,
        MemoryBuffer1D<T, Stride1D.Dense> previous, MemoryBuffer1D<T, Stride1D.Dense> hh, MemoryBuffer1D<T, Stride1D.Dense> f,
        MemoryBuffer1D<T, Stride1D.Dense> jac, MemoryBuffer1D<T, Stride1D.Dense> term, int batch, int length, int mode, double atol, double rtol)
    {
        int n = cell.HiddenSize, s = cell.StateSize;
        long rows = (long)batch * length;
        _shift((int)(rows * s), current.View, h0.View, previous.View, length, s);
        if (cell.Function is { } custom)
        {
            custom.Evaluate(Kernels(custom), (int)(rows * s), xp.View, previous.View, whh.View, f.View, jac.View, term.View, s, cell.InputSize, mode);
        }
        else if (cell.Kind == DeviceCellKind.GilrLstm)
        {
            _gilrLstm((int)(rows * n), xp.View, hh.View, bhh.View, whh.View, previous.View, f.View, jac.View, term.View, n, mode);
        }
        else if (cell.Kind == DeviceCellKind.Sru)
        {
            _sru((int)(rows * n), xp.View, hh.View, bhh.View, whh.View, previous.View, f.View, jac.View, term.View, n, mode);
        }
        else if (cell.Kind == DeviceCellKind.Gilr)
        {
            _gilr((int)(rows * n), xp.View, hh.View, bhh.View, whh.View, previous.View, f.View, jac.View, term.View, n, mode);
        }
        else if (cell.Structured)
        {
            // The structured kernels always give the blocks (the diagonal itself for 1×1 blocks).
            _structured[(int)cell.Kind - (int)DeviceCellKind.IndRnn]((int)(rows * n), xp.View, whh.View, bhh.View, previous.View, f.View, jac.View, term.View, n, cell.BlockSize);
        }
        else
        {
            _product((int)(rows * cell.Gates * n), whh.View, previous.View, hh.View, n, s, cell.Gates * n);
            _dense[(int)cell.Kind]((int)(rows * n), xp.View, hh.View, bhh.View, whh.View, previous.View, f.View, jac.View, term.View, n, mode);
        }

        return _residual.Measure(current.View, f.View, atol, rtol, (int)(rows * s));
    }

    /// <summary>The kernels of a custom cell's struct type on this accelerator, compiled on first use.</summary>
    private object Kernels(ICustomFunction<T> function) => _custom.GetOrAdd(function.Key, _ => function.Load(_accelerator));

    public void Dispose()
    {
        _residual.Dispose();
        _merit.Dispose();
    }
}
