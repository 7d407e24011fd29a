using System.Collections.Concurrent;
using DeerSharp.Engines;
using ILGPU;
using ILGPU.Runtime;

namespace DeerSharp.Gpu;

/// <summary>
/// The ILGPU backend's solver for one accelerator and element type: the forward kernels loaded once, then every method
/// of a <see cref="DeviceCell{T}"/> run whole on the device. Per iteration: the shift to h_{t−1}, the recurrent product
/// (dense cells), one fused evaluation launch (f, the Jacobian or its diagonal or blocks, the Newton term), the residual
/// reduced on the device per sequence (two numbers each come back), and the update (a copy, the diagonal scan, or the
/// block scan). The damped step (<see cref="DeviceDamping{T}"/>) and the adjoint (<see cref="DeviceAdjoint{T}"/>) load
/// their kernels on first use. Not thread safe: <see cref="IlgpuBackend"/> serialises the calls.
/// </summary>
internal sealed partial class DeviceSolver<T> : IDisposable
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Accelerator _accelerator;
    private readonly DiagonalScan<T> _diagonal;
    private readonly BlockScan<T> _blocks;
    private readonly Residuals _residual;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int> _project;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int> _shift;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, int, int> _broadcast;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int> _product;
    private readonly Dictionary<DeviceCellKind, Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>> _evaluate = [];
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int> _loop;
    private readonly ConcurrentDictionary<Type, object> _custom = new();
    private DeviceDamping<T>? _damping;
    private DeviceAdjoint<T>? _adjoint;

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
        _residual = new Residuals(accelerator);
        _project = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(NewtonKernels.InputProjection<T>);
        _shift = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(NewtonKernels.Shift<T>);
        _broadcast = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, int, int>(NewtonKernels.Broadcast<T>);
        _product = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int>(DenseKernels.RecurrentProduct<T>);
        // The dense and surrogate cells' evaluations share one signature (xp, hh, b_hh, W_hh, h_{t−1} → f, J, b; n, mode).
        foreach ((DeviceCellKind kind, Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int> kernel) in
            new (DeviceCellKind, Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>)[]
        {
            (DeviceCellKind.TanhRnn, DenseKernels.EvaluateRnn<T>), (DeviceCellKind.Gru, DenseKernels.EvaluateGru<T>), (DeviceCellKind.Lstm, DenseKernels.EvaluateLstm<T>),
            (DeviceCellKind.Gilr, DenseKernels.EvaluateGilr<T>), (DeviceCellKind.Sru, DenseKernels.EvaluateSru<T>), (DeviceCellKind.GilrLstm, DenseKernels.EvaluateGilrLstm<T>),
        })
        {
            _evaluate[kind] = accelerator.LoadAutoGroupedStreamKernel(kernel);
        }

        _structured = new()
        {
            [DeviceCellKind.IndRnn] = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(StructuredKernels.EvaluateIndRnn<T>),
            [DeviceCellKind.DiagonalGru] = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(StructuredKernels.EvaluateDiagonalGru<T>),
            [DeviceCellKind.DiagonalLstm] = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(StructuredKernels.EvaluateDiagonalLstm<T>),
        };
        _loop = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int>(DenseKernels.Loop<T>);
    }

    private readonly Dictionary<DeviceCellKind, Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>> _structured;

    internal Accelerator Accelerator => _accelerator;

    internal DiagonalScan<T> Diagonal => _diagonal;

    /// <summary>h_{t−1} of an iterate ([B, L, S]): NewtonKernels.Shift.</summary>
    internal Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int> ShiftKernel => _shift;

    /// <summary>W_hh h_{t−1} of the dense cells: DenseKernels.RecurrentProduct.</summary>
    internal Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int> ProductKernel => _product;

    internal BlockScan<T> Blocks => _blocks;

    /// <summary>The damped step's kernels, loaded on first use.</summary>
    internal DeviceDamping<T> Damping => _damping ??= new DeviceDamping<T>(_accelerator);

    /// <summary>The adjoint's kernels, loaded on first use.</summary>
    internal DeviceAdjoint<T> Adjoint => _adjoint ??= new DeviceAdjoint<T>(this);

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

    /// <summary>What the policy needs of a device cell: its sizes as the device stores them, and its Jacobian's blocks.</summary>
    public static CellFootprint Footprint(DeviceCell<T> cell) =>
        new(cell.StateSize, cell.InputSize, cell.ProjectionSize, cell.Structure, cell.Linear);

    /// <summary>The user's function behind a custom cell, with its kernels' launches; null for a built-in cell.</summary>
    internal static ICustomFunction<T>? Custom(DeviceCell<T> cell) => cell.Function?.Accept(CustomFunctions<T>.Factory);

    /// <summary>The kernels of a custom cell's struct type on this accelerator, compiled on first use.</summary>
    internal object Kernels(ICustomFunction<T> function) => _custom.GetOrAdd(function.Key, _ => function.Load(_accelerator));

    /// <summary>Uploads the inputs and computes xp: W_ih x + b_ih for a built-in cell, x itself for a custom one.</summary>
    internal void Project(DeviceCell<T> cell, DeviceWorkspace<T> ws, ReadOnlySpan<T> inputs, bool custom)
    {
        long rows = ws.Rows;
        int d = cell.InputSize;
        if (custom)
        {
            if (d > 0)
            {
                ws.Projections.View.SubView(0, rows * d).AsContiguous().CopyFromCPU(inputs[..(int)(rows * d)]);
            }

            return;
        }

        if (d > 0)
        {
            ws.Inputs.View.SubView(0, rows * d).AsContiguous().CopyFromCPU(inputs[..(int)(rows * d)]);
        }

        _project((int)(rows * cell.ProjectionSize), ws.WeightIH.View, ws.BiasIH.View, ws.Inputs.View, ws.Projections.View, d, cell.ProjectionSize);
    }

    /// <summary>
    /// f (and, per <paramref name="mode"/>, the Jacobian's diagonal, its full matrix or its blocks, with the Newton term) at
    /// the iterate in <paramref name="ws"/>; each sequence's residual into <paramref name="residuals"/> when given.
    /// </summary>
    internal void Evaluate(DeviceCell<T> cell, ICustomFunction<T>? custom, DeviceWorkspace<T> ws, JacobianMode mode, double atol, double rtol,
        Span<IterateResidual> residuals)
    {
        int n = cell.HiddenSize, s = cell.StateSize;
        long rows = ws.Rows;
        // The kernels take 0 (f only), 1 (the diagonal) or 2 (the full Jacobian, or a structured cell's blocks).
        int kernelMode = mode switch { JacobianMode.None => 0, JacobianMode.Diagonal => 1, _ => 2 };
        _shift((int)(rows * s), ws.Current.View, ws.InitialState.View, ws.Previous.View, ws.Length, s);
        if (custom is not null)
        {
            custom.Evaluate(Kernels(custom), (int)(rows * s), ws.Projections.View, ws.Previous.View, ws.WeightHH.View, ws.F.View, ws.Jacobians.View,
                ws.Terms.View, s, cell.InputSize, kernelMode);
        }
        else if (cell.Structured)
        {
            // The structured kernels always give the blocks (the diagonal itself for 1×1 blocks).
            _structured[cell.Kind]((int)(rows * n), ws.Projections.View, ws.WeightHH.View, ws.BiasHH.View, ws.Previous.View, ws.F.View, ws.Jacobians.View,
                ws.Terms.View, n, cell.BlockSize);
        }
        else
        {
            if (!cell.Linear)
            {
                _product((int)(rows * cell.Gates * n), ws.WeightHH.View, ws.Previous.View, ws.Products.View, n, s, cell.Gates * n);
            }

            _evaluate[cell.Kind]((int)(rows * n), ws.Projections.View, ws.Products.View, ws.BiasHH.View, ws.WeightHH.View, ws.Previous.View, ws.F.View,
                ws.Jacobians.View, ws.Terms.View, n, kernelMode);
        }

        if (!residuals.IsEmpty)
        {
            _residual.Measure(ws.Current.View, ws.F.View, atol, rtol, ws.Batch, ws.Length * s, residuals);
        }
    }

    /// <summary>The sequential loop on the device, one thread per sequence, into the iterate.</summary>
    private void Loop(DeviceCell<T> cell, ICustomFunction<T>? custom, DeviceWorkspace<T> ws)
    {
        if (custom is not null)
        {
            custom.Loop(Kernels(custom), ws.Batch, ws.Projections.View, ws.InitialState.View, ws.WeightHH.View, ws.Current.View, ws.Length, cell.StateSize,
                cell.InputSize);
        }
        else
        {
            _loop(ws.Batch, ws.Projections.View, ws.WeightHH.View, ws.BiasHH.View, ws.InitialState.View, ws.Current.View, ws.Length, cell.HiddenSize, (int)cell.Kind);
        }
    }

    /// <summary>The starting iterate: the warm start, h0 broadcast over time, or zeros.</summary>
    private void InitialIterate(DeviceWorkspace<T> ws, int s, ReadOnlySpan<T> warmStart, InitialGuess guess)
    {
        if (!warmStart.IsEmpty)
        {
            ws.Current.View.AsContiguous().CopyFromCPU(warmStart[..(int)(ws.Rows * s)]);
        }
        else if (guess == InitialGuess.BroadcastInitialState)
        {
            _broadcast((int)(ws.Rows * s), ws.InitialState.View, ws.Current.View, ws.Length, s);
        }
        else
        {
            ws.Current.MemSetToZero();
        }
    }

    /// <summary>The update of a Newton (or Picard) step: the block scan, the diagonal scan, or the copy of f.</summary>
    private void Update(DeviceCell<T> cell, DeviceWorkspace<T> ws, JacobianMode mode, int chunks)
    {
        int s = cell.StateSize;
        switch (mode)
        {
            case JacobianMode.Full or JacobianMode.Block:
                _blocks.Solve(ws.Jacobians.View, ws.Terms.View, ws.InitialState.View, ws.Current.View, ws.Batch, ws.Length, s, cell.Structure, chunks);
                break;
            case JacobianMode.Diagonal:
                _diagonal.Solve(ws.Jacobians.View, ws.Terms.View, ws.InitialState.View, ws.Current.View, ws.Batch, ws.Length, s, chunks);
                break;
            default:
                ws.Current.View.CopyFrom(ws.F.View);
                _accelerator.Synchronize();
                break;
        }
    }

    /// <summary>Copies sequence <paramref name="q"/>'s iterate into the host's [B, L, S] at <paramref name="offset"/>.</summary>
    private static void Download(DeviceWorkspace<T> ws, int q, int s, T[] destination, long offset)
    {
        long count = (long)ws.Length * s;
        ws.Current.View.SubView(q * count, count).AsContiguous().CopyToCPU(destination.AsSpan((int)(offset + (q * count)), (int)count));
    }

    public void Dispose()
    {
        _residual.Dispose();
        _damping?.Dispose();
    }
}
