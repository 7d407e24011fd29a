using DeerSharp.Engines;

namespace DeerSharp.Gpu;

/// <summary>
/// The ILGPU engine: solves a piece of consecutive sequences whole on an accelerator (<see cref="DeviceSolver{T}"/>),
/// under the accelerator's lock. It takes the cell's own device form (<see cref="IDeviceFormSource{T}"/>); whether a
/// solve comes here at all, and with what settings, is decided before it is built (<see cref="TryCreate"/>).
/// </summary>
internal sealed class DeviceEngine<T> : ISolveEngine<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly IlgpuBackend.Device _device;
    private readonly DeviceCell<T> _cell;

    private DeviceEngine(IlgpuBackend.Device device, DeviceCell<T> cell, ComputeDevice where)
    {
        _device = device;
        _cell = cell;
        Device = where;
    }

    public ComputeDevice Device { get; }

    /// <summary>
    /// The device engine and its settings when <see cref="SolveOptions.Device"/> asks for a device (Gpu, Emulated) or Auto
    /// finds one worthwhile; (null, default) leaves the solve to the CPU (Device = Cpu, or Auto). An explicit device that
    /// cannot run the problem throws, saying why.
    /// </summary>
    public static (ISolveEngine<T>? Engine, SolverSettings<T> Settings) TryCreate<TCell>(TCell cell, SolveOptions options, int batch, int length, int layer)
        where TCell : IRecurrentCell<T>
    {
        if (options.Device == ComputeDevice.Cpu)
        {
            return (null, default);
        }

        bool required = options.Device is ComputeDevice.Gpu or ComputeDevice.Emulated;
        ComputeDevice where = options.Device == ComputeDevice.Emulated ? ComputeDevice.Emulated : ComputeDevice.Gpu;
        DeviceCell<T>? deviceCell = DeviceCell<T>.From(cell);
        if (deviceCell is null)
        {
            return required
                ? throw new NotSupportedException(
                    $"The GPU backend has kernels for TanhRnnCell, GruCell, LstmCell, GilrCell, GilrLstmCell, SruCell, IndRnnCell, DiagonalGruCell and DiagonalLstmCell, and compiles a user's IDeviceRecurrence (DeviceRecurrence.Cell); {typeof(TCell).Name} is none of these. Write the recurrence as an IDeviceRecurrence, or use Device = Cpu or Auto.")
                : (null, default);
        }

        CellFootprint footprint = DeviceSolver<T>.Footprint(deviceCell);
        SolveMethod method = SolverSettings<T>.ResolveMethod(options, new Backend(where, 0), footprint, batch, length);
        if (DeviceSolver<T>.Unsupported(deviceCell, method) is { } why)
        {
            return required ? throw new NotSupportedException($"{options.Device}: {why}. Use Device = Cpu or Auto.") : (null, default);
        }

        IlgpuBackend.Device? device = IlgpuBackend.Find(where, out string absence);
        if (device is null)
        {
            return required
                ? throw new NotSupportedException(where == ComputeDevice.Emulated
                    ? $"Device = Emulated is not available: {absence}."
                    : $"Device = Gpu, but there is no GPU: {absence}. Use Device = Emulated to run the GPU kernels on the CPU.")
                : (null, default);
        }

        if (!required && !SolverSettings<T>.DeviceWorthwhile(batch, length, deviceCell.StateSize))
        {
            return (null, default);
        }

        SolverSettings<T> settings = SolverSettings<T>.Resolve(options, new Backend(where, device.Accelerator.MemorySize), footprint, batch, length, layer);
        return (new DeviceEngine<T>(device, deviceCell, where), settings);
    }

    public void Solve(Piece piece, ReadOnlySpan<T> inputs, ReadOnlySpan<T> starts, ReadOnlySpan<T> warmStart, T[] states, in SolverSettings<T> settings,
        Span<SequenceOutcome> outcomes)
    {
        if (!piece.Contiguous)
        {
            throw new ArgumentException("The device solves consecutive whole sequences, or one sequence's window, at a time.", nameof(piece));
        }

        int count = piece.Sequences.Length, d = _cell.InputSize, s = _cell.StateSize, rows = count * piece.Steps;
        ReadOnlySpan<T> x = inputs.Slice((int)piece.Offset(0, d), rows * d);
        ReadOnlySpan<T> warm = warmStart.IsEmpty ? default : warmStart.Slice((int)piece.Offset(0, s), rows * s);
        lock (_device.Gate)
        {
            // Loading the kernels (once per element type) happens under the same lock as the solves on this accelerator.
            _device.Solver<T>().Solve(_cell, x, count, piece.Steps, starts, warm, settings, piece.Sequences[0], piece.Window, states, piece.Offset(0, s), outcomes);
        }
    }

    /// <summary>
    /// The scan adjoint on the device that solved the forward pass, for the dense and custom cells whose full Jacobian the
    /// block scan takes (states up to 32), the structured cells (their blocks) and the linear surrogates; false leaves the
    /// adjoint to the CPU (larger dense states, or a problem over the device's memory budget or index range).
    /// </summary>
    public static bool TryGradient<TCell>(TCell cell, ComputeDevice where, ReadOnlySpan<T> inputs, ReadOnlySpan<T> states, ReadOnlySpan<T> h0,
        ReadOnlySpan<T> cotangent, int batch, int length, long memoryBudget, out (T[] Parameters, T[] Inputs, T[] InitialStates) gradient)
        where TCell : IRecurrentCell<T>
    {
        gradient = default;
        DeviceCell<T>? deviceCell = DeviceCell<T>.From(cell);
        IlgpuBackend.Device? device = where is ComputeDevice.Gpu or ComputeDevice.Emulated ? IlgpuBackend.Find(where, out _) : null;
        if (deviceCell is null || device is null || !DeviceAdjoint<T>.Has(deviceCell) || length < 1 || batch < 1)
        {
            return false;
        }

        // About four S×S maps and a dozen vectors per row: keep within the budget and the index range, else the CPU.
        long bytes = (long)batch * length * ((4L * deviceCell.StateSize * (deviceCell.Linear ? 1 : deviceCell.Structure.Side)) + (12L * deviceCell.ProjectionSize))
            * System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        if (bytes > Math.Min(memoryBudget, device.Accelerator.MemorySize / 4 * 3)
            || (long)batch * length > SolverSettings<T>.DeviceMaxRows(DeviceSolver<T>.Footprint(deviceCell), SolveMethod.Deer))
        {
            return false;
        }

        lock (device.Gate)
        {
            gradient = device.Solver<T>().Adjoint.Gradient(deviceCell, inputs, states, h0, cotangent, batch, length, cell.OutputSize);
        }

        return true;
    }

    public void Dispose()
    {
        // The accelerator and its solver are process-wide (IlgpuBackend); a solve's buffers are freed as it ends.
    }
}
