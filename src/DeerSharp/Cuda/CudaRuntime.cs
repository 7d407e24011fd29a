using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace DeerSharp.Cuda;

/// <summary>One CUDA device as Deer sees it.</summary>
/// <param name="Ordinal">The driver's index of the device.</param>
/// <param name="Name">The device's name, e.g. "NVIDIA H200".</param>
/// <param name="ComputeMajor">Compute capability, major (9 on Hopper).</param>
/// <param name="ComputeMinor">Compute capability, minor.</param>
/// <param name="Multiprocessors">Streaming multiprocessors.</param>
/// <param name="TotalMemoryBytes">Device memory.</param>
public sealed record CudaDeviceInfo(int Ordinal, string Name, int ComputeMajor, int ComputeMinor, int Multiprocessors, long TotalMemoryBytes)
{
    /// <summary>The NVRTC architecture flag for this device, e.g. sm_90.</summary>
    public string Architecture => $"sm_{ComputeMajor}{ComputeMinor}";
}

/// <summary>What a probe for CUDA found: the devices, or why there are none.</summary>
/// <param name="Available">Whether at least one device can be used.</param>
/// <param name="Reason">Why not, in one sentence; empty when available.</param>
/// <param name="Devices">The devices found.</param>
/// <param name="DriverLibrary">Where libcuda was loaded from.</param>
/// <param name="DriverVersion">The driver's CUDA version, e.g. 13000; 0 when unknown.</param>
public sealed record CudaProbe(bool Available, string Reason, IReadOnlyList<CudaDeviceInfo> Devices, string DriverLibrary, int DriverVersion);

/// <summary>
/// The CUDA backend's entry points for callers: <see cref="Probe"/> says whether a device is present (never throws).
/// </summary>
public static class CudaDevices
{
    private static readonly Lazy<CudaProbe> Cached = new(ProbeNow);

    /// <summary>Looks for libcuda and devices once per process; never throws.</summary>
    public static CudaProbe Probe() => Cached.Value;

    private static unsafe CudaProbe ProbeNow()
    {
        if (!OperatingSystem.IsLinux())
        {
            return new CudaProbe(false, "the CUDA backend supports Linux only", [], "", 0);
        }

        if (!CudaLibraries.TryLoad(CudaLibrary.Driver, out IntPtr library, out string from, out string why))
        {
            return new CudaProbe(false, $"no CUDA driver: {why}", [], "", 0);
        }

        try
        {
            DriverApi api = DriverApi.Bind(library);
            int status = api.Init(0);
            if (status != 0)
            {
                byte* text = null;
                string name = api.GetErrorName(status, &text) == 0 && text != null ? Marshal.PtrToStringAnsi((IntPtr)text) ?? $"{status}" : $"{status}";
                return new CudaProbe(false, $"cuInit failed with {name}: the driver is present but no usable GPU is", [], from, 0);
            }

            int version = 0, count = 0;
            api.Check(api.DriverGetVersion(&version), "cuDriverGetVersion");
            api.Check(api.DeviceGetCount(&count), "cuDeviceGetCount");
            var devices = new List<CudaDeviceInfo>();
            for (int i = 0; i < count; i++)
            {
                devices.Add(Describe(api, i));
            }

            return count == 0
                ? new CudaProbe(false, "the CUDA driver reports no devices", [], from, version)
                : new CudaProbe(true, "", devices, from, version);
        }
        catch (CudaException e)
        {
            return new CudaProbe(false, e.Message, [], from, 0);
        }
    }

    internal static unsafe CudaDeviceInfo Describe(DriverApi api, int ordinal)
    {
        int device;
        api.Check(api.DeviceGet(&device, ordinal), "cuDeviceGet");
        byte* name = stackalloc byte[256];
        api.Check(api.DeviceGetName(name, 256, device), "cuDeviceGetName");
        int major, minor, sms;
        nuint memory;
        api.Check(api.DeviceGetAttribute(&major, 75, device), "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MAJOR)");
        api.Check(api.DeviceGetAttribute(&minor, 76, device), "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MINOR)");
        api.Check(api.DeviceGetAttribute(&sms, 16, device), "cuDeviceGetAttribute(MULTIPROCESSOR_COUNT)");
        api.Check(api.DeviceTotalMem(&memory, device), "cuDeviceTotalMem_v2");
        return new CudaDeviceInfo(ordinal, Marshal.PtrToStringAnsi((IntPtr)name) ?? "?", major, minor, sms, (long)memory);
    }
}

/// <summary>
/// The real GPU: the driver API for memory and launches, NVRTC to compile Kernels/deer.cu (an embedded resource) for the
/// device's architecture, once per element type, cached in memory and on disk; cuBLAS for the products.
/// </summary>
internal sealed unsafe class CudaRuntime : IGpuRuntime
{
    private static readonly ConcurrentDictionary<(int Ordinal, bool IsDouble), Lazy<IntPtr>> Modules = new();
    private readonly DriverApi _driver;
    private readonly CublasApi _cublas;
    private readonly NvrtcApi _nvrtc;
    private readonly IntPtr _context;
    private readonly IntPtr _blas;
    private readonly int _device;
    private readonly ConcurrentDictionary<(string, bool), IntPtr> _functions = new();

    private CudaRuntime(DriverApi driver, NvrtcApi nvrtc, CublasApi cublas, CudaDeviceInfo info, int device, IntPtr context, IntPtr blas)
    {
        _driver = driver;
        _nvrtc = nvrtc;
        _cublas = cublas;
        Info = info;
        _device = device;
        _context = context;
        _blas = blas;
    }

    public CudaDeviceInfo Info { get; }

    public string Description => $"{Info.Name} ({Info.Architecture}, {Info.Multiprocessors} SMs, {Info.TotalMemoryBytes / (1L << 30)} GiB)";

    public long FreeMemoryBytes => Info.TotalMemoryBytes * 9 / 10;

    /// <summary>Opens device <paramref name="ordinal"/>; throws <see cref="CudaException"/> with the reason when it cannot.</summary>
    public static CudaRuntime Open(int ordinal = 0)
    {
        CudaProbe probe = CudaDevices.Probe();
        if (!probe.Available)
        {
            throw new CudaException($"No CUDA device: {probe.Reason}.");
        }

        if (ordinal < 0 || ordinal >= probe.Devices.Count)
        {
            throw new CudaException($"CUDA device {ordinal} does not exist; there are {probe.Devices.Count}.");
        }

        if (!CudaLibraries.TryLoad(CudaLibrary.Driver, out IntPtr driverLibrary, out _, out string why)
            || !CudaLibraries.TryLoad(CudaLibrary.Nvrtc, out IntPtr nvrtcLibrary, out _, out why)
            || !CudaLibraries.TryLoad(CudaLibrary.Cublas, out IntPtr cublasLibrary, out _, out why))
        {
            throw new CudaException($"A CUDA device is present but a library is missing: {why}.");
        }

        DriverApi driver = DriverApi.Bind(driverLibrary);
        var nvrtc = NvrtcApi.Bind(nvrtcLibrary);
        var cublas = CublasApi.Bind(cublasLibrary);
        int device;
        IntPtr context, blas;
        driver.Check(driver.DeviceGet(&device, ordinal), "cuDeviceGet");
        driver.Check(driver.DevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
        driver.Check(driver.CtxSetCurrent(context), "cuCtxSetCurrent");
        CublasApi.Check(cublas.Create(&blas), "cublasCreate_v2");
        return new CudaRuntime(driver, nvrtc, cublas, probe.Devices[ordinal], device, context, blas);
    }

    private void MakeCurrent() => _driver.Check(_driver.CtxSetCurrent(_context), "cuCtxSetCurrent");

    public ulong Allocate(long bytes)
    {
        MakeCurrent();
        ulong pointer;
        _driver.Check(_driver.MemAlloc(&pointer, (nuint)Math.Max(bytes, 1)), $"cuMemAlloc_v2({bytes} bytes)");
        return pointer;
    }

    public void Free(ulong pointer)
    {
        if (pointer != 0)
        {
            _driver.Check(_driver.MemFree(pointer), "cuMemFree_v2");
        }
    }

    public void Upload(ulong destination, void* source, long bytes) =>
        _driver.Check(_driver.MemcpyHtoD(destination, source, (nuint)bytes), "cuMemcpyHtoD_v2");

    public void Download(void* destination, ulong source, long bytes) =>
        _driver.Check(_driver.MemcpyDtoH(destination, source, (nuint)bytes), "cuMemcpyDtoH_v2");

    public void Copy(ulong destination, ulong source, long bytes) =>
        _driver.Check(_driver.MemcpyDtoD(destination, source, (nuint)bytes), "cuMemcpyDtoD_v2");

    public void Zero(ulong pointer, long bytes) => _driver.Check(_driver.MemsetD8(pointer, 0, (nuint)bytes), "cuMemsetD8_v2");

    public void Launch(string kernel, bool isDouble, uint gridX, uint gridY, uint blockX, uint sharedBytes, void** arguments)
    {
        if (gridX == 0 || gridY == 0)
        {
            return;
        }

        IntPtr function = _functions.GetOrAdd((kernel, isDouble), key => Function(key.Item1, key.Item2));
        _driver.Check(_driver.LaunchKernel(function, gridX, gridY, 1, blockX, 1, 1, sharedBytes, IntPtr.Zero, arguments, null), $"cuLaunchKernel({kernel})");
    }

    public void GemmABt(bool isDouble, int m, int n, int k, ulong a, int lda, ulong b, int ldb, double beta, ulong c, int ldc)
    {
        // Row-major C = A Bᵀ is column-major Cᵀ = B Aᵀ: cuBLAS computes op(B)[n×k] · op(A)[k×m] with B transposed.
        const int opN = 0, opT = 1;
        if (isDouble)
        {
            double one = 1, betaValue = beta;
            CublasApi.Check(_cublas.Dgemm(_blas, opT, opN, n, m, k, &one, b, ldb, a, lda, &betaValue, c, ldc), "cublasDgemm_v2");
        }
        else
        {
            float one = 1, betaValue = (float)beta;
            CublasApi.Check(_cublas.Sgemm(_blas, opT, opN, n, m, k, &one, b, ldb, a, lda, &betaValue, c, ldc), "cublasSgemm_v2");
        }
    }

    public void Synchronize() => _driver.Check(_driver.CtxSynchronize(), "cuCtxSynchronize");

    private IntPtr Function(string kernel, bool isDouble)
    {
        IntPtr module = Modules.GetOrAdd((_device, isDouble), key => new Lazy<IntPtr>(() => LoadModule(key.IsDouble))).Value;
        IntPtr function;
        byte[] name = Encoding.ASCII.GetBytes(kernel + "\0");
        fixed (byte* p = name)
        {
            _driver.Check(_driver.ModuleGetFunction(&function, module, p), $"cuModuleGetFunction({kernel})");
        }

        return function;
    }

    /// <summary>The module for one element type: a cached CUBIN when one matches the source and architecture, else NVRTC.</summary>
    private IntPtr LoadModule(bool isDouble)
    {
        string source = KernelSource();
        string type = isDouble ? "double" : "float";
        string hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(source)))[..16];
        string cacheDirectory = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "deer", "cuda");
        string cachePath = Path.Combine(cacheDirectory, $"deer-{hash}-{Info.Architecture}-{type}.cubin");
        byte[]? cubin = null;
        try
        {
            if (File.Exists(cachePath))
            {
                cubin = File.ReadAllBytes(cachePath);
            }
        }
        catch (IOException)
        {
            cubin = null;
        }

        if (cubin is null)
        {
            cubin = Compile(source, type);
            try
            {
                Directory.CreateDirectory(cacheDirectory);
                string temp = cachePath + $".{Environment.ProcessId}.tmp";
                File.WriteAllBytes(temp, cubin);
                File.Move(temp, cachePath, overwrite: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The disk cache is an optimisation; the compiled module is in memory either way.
            }
        }

        IntPtr module;
        MakeCurrent();
        fixed (byte* image = cubin)
        {
            _driver.Check(_driver.ModuleLoadData(&module, image), "cuModuleLoadData");
        }

        return module;
    }

    private byte[] Compile(string source, string type)
    {
        IntPtr program;
        byte[] src = Encoding.UTF8.GetBytes(source + "\0"), name = Encoding.ASCII.GetBytes("deer.cu\0");
        fixed (byte* s = src, n = name)
        {
            _nvrtc.Check(_nvrtc.CreateProgram(&program, s, n, 0, null, null), "nvrtcCreateProgram");
        }

        try
        {
            string[] options = [$"-arch={Info.Architecture}", $"-DREAL={type}", "-std=c++17"];
            byte[][] encoded = [.. options.Select(o => Encoding.ASCII.GetBytes(o + "\0"))];
            var handles = encoded.Select(e => GCHandle.Alloc(e, GCHandleType.Pinned)).ToArray();
            try
            {
                byte** pointers = stackalloc byte*[handles.Length];
                for (int i = 0; i < handles.Length; i++)
                {
                    pointers[i] = (byte*)handles[i].AddrOfPinnedObject();
                }

                int status = _nvrtc.CompileProgram(program, handles.Length, pointers);
                _nvrtc.Check(status, $"nvrtcCompileProgram({string.Join(' ', options)})", status == 0 ? null : Log(program));
            }
            finally
            {
                foreach (GCHandle h in handles)
                {
                    h.Free();
                }
            }

            nuint size;
            _nvrtc.Check(_nvrtc.GetCubinSize(program, &size), "nvrtcGetCUBINSize");
            var cubin = new byte[(int)size];
            fixed (byte* c = cubin)
            {
                _nvrtc.Check(_nvrtc.GetCubin(program, c), "nvrtcGetCUBIN");
            }

            return cubin;
        }
        finally
        {
            _nvrtc.DestroyProgram(&program);
        }
    }

    private string Log(IntPtr program)
    {
        nuint size;
        if (_nvrtc.GetProgramLogSize(program, &size) != 0 || size == 0)
        {
            return "";
        }

        var log = new byte[(int)size];
        fixed (byte* l = log)
        {
            _nvrtc.GetProgramLog(program, l);
        }

        return Encoding.UTF8.GetString(log).TrimEnd('\0').ReplaceLineEndings(" ");
    }

    /// <summary>Kernels/deer.cu, embedded in the assembly.</summary>
    internal static string KernelSource()
    {
        using Stream stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("DeerSharp.Cuda.Kernels.deer.cu")
                              ?? throw new CudaException("The embedded resource DeerSharp.Cuda.Kernels.deer.cu is missing from the assembly.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    public void Dispose()
    {
        if (_blas != IntPtr.Zero)
        {
            _cublas.Destroy(_blas);
        }

        _driver.DevicePrimaryCtxRelease(_device);
    }
}
