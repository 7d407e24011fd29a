using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Runtime.Loader;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace DeerSharp.Gpu;

/// <summary>
/// Finds and owns the accelerators behind <see cref="ComputeDevice.Gpu"/>, <see cref="ComputeDevice.Emulated"/> and
/// <see cref="ComputeDevice.Auto"/>: one process-wide accelerator of each kind, created on first use (the GPU's context
/// apart from the emulator's, so a failed GPU compile cannot poison the emulator), its solver (kernels) loaded once per
/// element type, and a lock that serialises the calls on it. Solving is the device engine's (<see cref="DeviceEngine{T}"/>).
/// </summary>
internal static class IlgpuBackend
{
    private static readonly Lazy<Device?> Emulator = new(() => Device.Create(emulated: true), LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly Lazy<Device?> Gpu = new(() => Device.Create(emulated: false), LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>One accelerator with its context, its solvers per element type, and a lock.</summary>
    internal sealed class Device(Context context, Accelerator accelerator, string description)
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

    /// <summary>The accelerator behind <paramref name="device"/> (Gpu, or Emulated), or null with why there is none.</summary>
    internal static Device? Find(ComputeDevice device, out string absence)
    {
        Device? found = device == ComputeDevice.Emulated ? Emulator.Value : Gpu.Value;
        absence = Device.GpuAbsence ?? "no GPU";
        return found;
    }

    /// <summary>
    /// The accelerator behind <paramref name="device"/> (Gpu or Emulated) with its description, or
    /// null with the reason there is none: for the GPU bench, which times the scan and a device copy directly.
    /// </summary>
    public static (Accelerator? Accelerator, string Description) Open(ComputeDevice device)
    {
        Device? d = device == ComputeDevice.Emulated ? Emulator.Value : Gpu.Value;
        return d is null ? (null, Device.GpuAbsence ?? "no GPU") : (d.Accelerator, d.Description);
    }
}
