using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Loader;
using DeerSharp.Cells;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace DeerSharp.Gpu;

/// <summary>
/// The ILGPU backend behind <see cref="ComputeDevice.Gpu"/>, <see cref="ComputeDevice.Emulated"/> and
/// <see cref="ComputeDevice.Auto"/>: one process-wide accelerator of each kind, created on first use (the GPU's context
/// apart from the emulator's, so a failed GPU compile cannot poison the emulator), the kernels loaded once per element
/// type, and calls on one accelerator serialised.
/// </summary>
internal static class IlgpuBackend
{
    /// <summary>Below this many state values (B·T·S), Auto keeps the CPU: launch and transfer overheads dominate.</summary>
    public const long AutoThreshold = 1L << 20;

    private static readonly Lazy<Device?> Emulator = new(() => Device.Create(emulated: true), LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly Lazy<Device?> Gpu = new(() => Device.Create(emulated: false), LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>One accelerator with its context, its solvers per element type, and a lock.</summary>
    private sealed class Device(Context context, Accelerator accelerator, string description)
    {
        private readonly ConcurrentDictionary<Type, IDisposable> _solvers = new();

        public Context Context { get; } = context;

        public Accelerator Accelerator { get; } = accelerator;

        public string Description { get; } = description;

        public object Gate { get; } = new();

        public static string? GpuAbsence { get; private set; }

        public DeviceSolver<T> Solver<T>()
            where T : unmanaged, IFloatingPointIeee754<T> =>
            (DeviceSolver<T>)_solvers.GetOrAdd(typeof(T), _ => new DeviceSolver<T>(Accelerator));

        public static Device? Create(bool emulated)
        {
            if (!System.Runtime.CompilerServices.RuntimeFeature.IsDynamicCodeCompiled)
            {
                GpuAbsence = "this is a Native AOT build, and ILGPU compiles its kernels from IL that such a build does not keep; use the JIT build of deer (dotnet run, or scripts/gpu-check.sh)";
                return null;
            }

            if (emulated)
            {
                var cpu = new CPUDevice(4, 1, Math.Max(1, Environment.ProcessorCount));
                Context context = Context.Create(b => b.CPU(cpu).EnableAlgorithms());
                CPUAccelerator accelerator = context.CreateCPUAccelerator(0, CPUAcceleratorMode.Parallel);
                return new Device(context, accelerator, string.Create(CultureInfo.InvariantCulture,
                    $"emulated: ILGPU's CPU accelerator ({accelerator.NumMultiprocessors} multiprocessor(s) × {accelerator.WarpSize}-thread warps), the GPU kernels run on the CPU"));
            }

            InstallDriverResolver();
            Context? gpu = null;
            try
            {
                gpu = Context.Create(b => b.Cuda().EnableAlgorithms());
                if (gpu.GetCudaDevices().Count == 0)
                {
                    GpuAbsence = "ILGPU finds no CUDA device (no NVIDIA driver, libcuda.so.1, or GPU on this machine)";
                    gpu.Dispose();
                    return null;
                }

                CudaAccelerator accelerator = gpu.CreateCudaAccelerator(0);
                return new Device(gpu, accelerator, string.Create(CultureInfo.InvariantCulture,
                    $"gpu: {accelerator.Name} (CUDA, {accelerator.Architecture}, {accelerator.MemorySize / (1L << 30)} GiB)"));
            }
            catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or InvalidOperationException or NotSupportedException or CudaException)
            {
                GpuAbsence = $"ILGPU could not open CUDA: {e.Message}";
                gpu?.Dispose();
                return null;
            }
        }
    }

    /// <summary>
    /// ILGPU asks for the library "cuda", which .NET probes as libcuda.so; many machines have only libcuda.so.1. Map it,
    /// once, before the context is created (ilgpu.md §5). It fires only after the default probing failed.
    /// </summary>
    private static void InstallDriverResolver()
    {
        if (!OperatingSystem.IsLinux() || Interlocked.Exchange(ref _resolverInstalled, 1) == 1)
        {
            return;
        }

        AssemblyLoadContext.Default.ResolvingUnmanagedDll += (_, name) =>
            name == "cuda" && NativeLibrary.TryLoad("libcuda.so.1", out nint handle) ? handle : 0;
    }

    private static int _resolverInstalled;

    /// <summary>What the backend has, one line per accelerator, or why there is no GPU: for `deer info`.</summary>
    public static IReadOnlyList<string> Describe()
    {
        var lines = new List<string>();
        Device? gpu = Gpu.Value;
        lines.Add(gpu?.Description ?? $"gpu: none ({Device.GpuAbsence})");
        lines.Add(Emulator.Value?.Description ?? $"emulated: none ({Device.GpuAbsence})");
        return lines;
    }

    /// <summary>Whether ILGPU finds a CUDA GPU.</summary>
    public static bool GpuPresent => Gpu.Value is not null;

    /// <summary>
    /// The accelerator behind <paramref name="device"/> (Gpu or its synonym Cuda, or Emulated) with its description, or
    /// null with the reason there is none: for the GPU bench, which times the scan and a device copy directly.
    /// </summary>
    public static (Accelerator? Accelerator, string Description) Open(ComputeDevice device)
    {
        Device? d = device == ComputeDevice.Emulated ? Emulator.Value : Gpu.Value;
        return d is null ? (null, Device.GpuAbsence ?? "no GPU") : (d.Accelerator, d.Description);
    }

    /// <summary>
    /// Solves on the ILGPU backend when <see cref="SolveOptions.Device"/> asks for it (Gpu, Emulated) or Auto finds it
    /// worthwhile. False leaves the solve to the CPU (Auto only); an explicit device that cannot run the problem throws.
    /// </summary>
    public static bool TrySolve<TCell, T>(TCell cell, ReadOnlySpan<T> inputs, int batch, int length, ReadOnlySpan<T> h0, ReadOnlySpan<T> warmStart,
        SolveOptions options, [NotNullWhen(true)] out SolveResult<T>? result)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        result = null;
        bool required = options.Device is ComputeDevice.Gpu or ComputeDevice.Cuda or ComputeDevice.Emulated;
        DeviceCell<T>? deviceCell = DeviceCell<T>.From(cell);
        if (deviceCell is null)
        {
            return required
                ? throw new NotSupportedException(
                    $"The GPU backend has kernels for TanhRnnCell, GruCell, LstmCell, GilrCell, GilrLstmCell, SruCell, IndRnnCell, DiagonalGruCell and DiagonalLstmCell, and compiles a user's IDeviceRecurrence (DeviceRecurrence.Cell); {typeof(TCell).Name} is none of these. Write the recurrence as an IDeviceRecurrence, or use Device = Cpu or Auto.")
                : false;
        }

        SolveMethod method = options.Method switch
        {
            SolveMethod.Auto when deviceCell.Linear => SolveMethod.Scan,
            SolveMethod.Auto when deviceCell.Structured || deviceCell.StateSize <= DeviceCell<T>.MaxDenseState => SolveMethod.Deer,
            SolveMethod.Auto => SolveMethod.QuasiDeer,
            var m => m,
        };
        if (DeviceSolver<T>.Unsupported(deviceCell, method) is { } why)
        {
            return required ? throw new NotSupportedException($"{options.Device}: {why}. Use Device = Cpu or Auto.") : false;
        }

        Device? device = options.Device == ComputeDevice.Emulated ? Emulator.Value : Gpu.Value;
        if (device is null)
        {
            return required
                ? throw new NotSupportedException(options.Device == ComputeDevice.Emulated
                    ? $"Device = Emulated is not available: {Device.GpuAbsence}."
                    : $"Device = Gpu, but there is no GPU: {Device.GpuAbsence}. Use Device = Emulated to run the GPU kernels on the CPU.")
                : false;
        }

        if (!required && (long)batch * length * deviceCell.StateSize < AutoThreshold)
        {
            return false;
        }

        bool single = typeof(T) == typeof(float);
        double atol = options.AbsoluteTolerance ?? (single ? 1e-5 : 1e-10), rtol = options.RelativeTolerance ?? (single ? 1e-5 : 1e-10);
        int maxIterations = options.MaxIterations ?? Math.Min(method == SolveMethod.Deer ? 100 : 500, Math.Max(length, method == SolveMethod.QuasiElk ? 50 : 0));
        ComputeDevice where = options.Device == ComputeDevice.Emulated ? ComputeDevice.Emulated : ComputeDevice.Gpu;
        var clock = Stopwatch.StartNew();
        long budget = Math.Min(options.MemoryBudgetBytes ?? long.MaxValue, device.Accelerator.MemorySize / 4 * 3);
        long rowsFit = Math.Min(budget / DeviceSolver<T>.BytesPerRow(deviceCell, method), DeviceSolver<T>.MaxRows(deviceCell, method));
        if (rowsFit < 1)
        {
            throw new InsufficientMemoryException(string.Create(CultureInfo.InvariantCulture,
                $"One step of {method} on the {where} backend needs {DeviceSolver<T>.BytesPerRow(deviceCell, method)} bytes of device memory, over the budget of {budget} bytes; raise SolveOptions.MemoryBudgetBytes or use Device = Cpu."));
        }

        (DeviceSolver<T>.Outcome outcome, int windows) = Windowed(device, deviceCell, inputs, batch, length, h0, warmStart, method, atol, rtol, maxIterations, rowsFit, options.InitialDamping);
        clock.Stop();
        string message = Describe(outcome, method, atol, rtol, length, where);
        result = new SolveResult<T>(outcome.States, batch, length, deviceCell.StateSize, cell.OutputSize, method, outcome.Iterations, outcome.Status,
            message, [.. outcome.History], outcome.MaxResidual, clock.Elapsed, windows: windows) { Device = where };
        if (!result.Converged && (options.Fallback == FallbackPolicy.Sequential || options.Method == SolveMethod.Auto))
        {
            // The CPU loop evaluates the sequences instead, labelled as the CPU backend labels its fallbacks: Method names
            // what failed, FallbackMethod what produced the states, and the status and residual are the loop's.
            SolveResult<T> loop = Solvers.Solver.Solve(cell, inputs, batch, length, h0, default,
                options with { Device = ComputeDevice.Cpu, Method = SolveMethod.Sequential });
            string text = $"{method} did not converge on the {where} backend ({result.Message}); the CPU's sequential loop evaluated all {batch} sequence(s) instead. {loop.Message}";
            result = new SolveResult<T>(loop.States, batch, length, loop.StateSize, loop.OutputSize, method, outcome.Iterations, loop.Status, text,
                [.. outcome.History], loop.MaxResidual, clock.Elapsed + loop.Elapsed, null, batch, result.Message) { Device = where };
        }

        return true;
    }

    /// <summary>
    /// The scan adjoint on the device that solved the forward pass, for the dense and custom cells whose full Jacobian the
    /// block scan takes (states up to 32) and the structured cells (their blocks); false leaves the adjoint to the CPU (the
    /// linear surrogates, larger dense states, or a problem over the device's memory budget or index range).
    /// </summary>
    public static bool TryGradient<TCell, T>(TCell cell, ComputeDevice where, ReadOnlySpan<T> inputs, ReadOnlySpan<T> states, ReadOnlySpan<T> h0,
        ReadOnlySpan<T> cotangent, int batch, int length, long memoryBudget, out (T[] Parameters, T[] Inputs, T[] InitialStates) gradient)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        gradient = default;
        DeviceCell<T>? deviceCell = DeviceCell<T>.From(cell);
        Device? device = where == ComputeDevice.Emulated ? Emulator.Value : where is ComputeDevice.Gpu or ComputeDevice.Cuda ? Gpu.Value : null;
        if (deviceCell is null || device is null || !DeviceSolver<T>.HasAdjoint(deviceCell) || length < 1 || batch < 1)
        {
            return false;
        }

        // About four S×S maps and a dozen vectors per row: keep within the budget and the index range, else the CPU.
        long bytes = (long)batch * length * ((4L * deviceCell.StateSize * (deviceCell.Linear ? 1 : deviceCell.Structure.Side)) + (12L * deviceCell.ProjectionSize)) * System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        if (bytes > Math.Min(memoryBudget, device.Accelerator.MemorySize / 4 * 3) || (long)batch * length > DeviceSolver<T>.MaxRows(deviceCell, SolveMethod.Deer))
        {
            return false;
        }

        lock (device.Gate)
        {
            gradient = device.Solver<T>().Gradient(deviceCell, inputs, states, h0, cotangent, batch, length, cell.OutputSize);
        }

        return true;
    }

    /// <summary>
    /// The solve in pieces that fit <paramref name="rowsFit"/> rows of device memory: all of it at once when it fits;
    /// else groups of whole sequences; else, per sequence, windows over time, each starting from the last state of the one
    /// before (as the CPU backend windows under its memory budget). Iterations add up, the residual is the largest; a
    /// window that fails stops the sequence, and the states it could not reach are NaN, never reported as solved.
    /// </summary>
    private static (DeviceSolver<T>.Outcome Outcome, int Windows) Windowed<T>(Device device, DeviceCell<T> cell, ReadOnlySpan<T> inputs, int batch, int length,
        ReadOnlySpan<T> h0, ReadOnlySpan<T> warmStart, SolveMethod method, double atol, double rtol, int maxIterations, long rowsFit, double initialDamping)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        DeviceSolver<T> solver;
        lock (device.Gate)
        {
            // Loading the kernels (once per element type) happens under the same lock as the solves on this accelerator.
            solver = device.Solver<T>();
        }

        int s = cell.StateSize, d = cell.InputSize;
        if ((long)batch * length <= rowsFit)
        {
            lock (device.Gate)
            {
                return (solver.Solve(cell, inputs, batch, length, h0, warmStart, method, atol, rtol, maxIterations, initialDamping), 1);
            }
        }

        var states = new T[(long)batch * length * s];
        var history = new List<double>();
        int iterations = 0, windows = 0;
        double residual = 0, ratio = 0;
        SolveStatus status = SolveStatus.Converged;
        int group = (int)Math.Min(batch, rowsFit / length);
        int window = group >= 1 ? length : (int)rowsFit;
        group = Math.Max(1, group);
        var carry = new T[s];
        for (int b0 = 0; b0 < batch && status == SolveStatus.Converged; b0 += group)
        {
            int count = Math.Min(group, batch - b0);
            for (int t0 = 0; t0 < length; t0 += window)
            {
                int steps = Math.Min(window, length - t0);
                ReadOnlySpan<T> x = count > 1 || window == length ? inputs.Slice(b0 * length * d, count * length * d) : inputs.Slice(((b0 * length) + t0) * d, steps * d);
                ReadOnlySpan<T> start = t0 == 0 ? (h0.IsEmpty ? default : h0.Slice(b0 * s, count * s)) : carry;
                ReadOnlySpan<T> warm = warmStart.IsEmpty ? default
                    : count > 1 || window == length ? warmStart.Slice(b0 * length * s, count * length * s) : warmStart.Slice(((b0 * length) + t0) * s, steps * s);
                DeviceSolver<T>.Outcome part;
                lock (device.Gate)
                {
                    part = solver.Solve(cell, x, count, steps, start, warm, method, atol, rtol, maxIterations, initialDamping);
                }

                windows++;
                iterations += part.Iterations;
                history.AddRange(part.History);
                residual = double.IsNaN(part.MaxResidual) ? double.NaN : Math.Max(residual, part.MaxResidual);
                ratio = double.IsNaN(part.Ratio) ? double.NaN : Math.Max(ratio, part.Ratio);
                part.States.CopyTo(states.AsSpan(count > 1 || window == length ? b0 * length * s : ((b0 * length) + t0) * s));
                if (part.Status != SolveStatus.Converged)
                {
                    status = part.Status;
                    long reached = window == length ? (long)(b0 + count) * length * s : (((long)b0 * length) + t0 + steps) * s;
                    states.AsSpan((int)reached..).Fill(T.NaN);
                    break;
                }

                part.States.AsSpan((steps - 1) * s, s).CopyTo(carry);
            }
        }

        return (new DeviceSolver<T>.Outcome(states, iterations, status, residual, ratio, history), windows);
    }

    private static string Describe<T>(DeviceSolver<T>.Outcome outcome, SolveMethod method, double atol, double rtol, int length, ComputeDevice where)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var c = CultureInfo.InvariantCulture;
        string tolerance = string.Create(c, $"atol {atol:G3} + rtol {rtol:G3}·|f|");
        return outcome.Status switch
        {
            SolveStatus.Converged => string.Create(c, $"Converged on the {where} backend: the fixed-point residual of the returned states, {outcome.MaxResidual:G3}, reduced on the device, is within {tolerance}."),
            SolveStatus.Diverged => string.Create(c, $"Diverged on the {where} backend after {outcome.Iterations} iteration(s): the residual is not finite. Use FallbackPolicy.Sequential, Device = Cpu, or another method."),
            _ when method == SolveMethod.Sequential => string.Create(c, $"The {where} backend's loop gave states whose residual, {outcome.MaxResidual:G3}, is above {tolerance} (rounding on the device)."),
            _ => string.Create(c, $"Not converged on the {where} backend: after {outcome.Iterations} iteration(s) the fixed-point residual is {outcome.MaxResidual:G3}, above {tolerance}. Raise MaxIterations (every undamped method is exact after T = {length} iterations), loosen the tolerances, or use SolveMethod.Deer."),
        };
    }
}
