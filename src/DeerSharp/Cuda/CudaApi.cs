using System.Runtime.InteropServices;

namespace DeerSharp.Cuda;

/// <summary>
/// The CUDA driver API functions Deer calls, bound at run time from the library <see cref="CudaLibraries"/> found (so no
/// CUDA is needed to build or to run on the CPU). Handles are IntPtr; CUdevice is int; CUdeviceptr is ulong.
/// </summary>
internal sealed unsafe class DriverApi
{
    public delegate* unmanaged<uint, int> Init;
    public delegate* unmanaged<int*, int> DriverGetVersion;
    public delegate* unmanaged<int*, int> DeviceGetCount;
    public delegate* unmanaged<int*, int, int> DeviceGet;
    public delegate* unmanaged<byte*, int, int, int> DeviceGetName;
    public delegate* unmanaged<int*, int, int, int> DeviceGetAttribute;
    public delegate* unmanaged<nuint*, int, int> DeviceTotalMem;
    public delegate* unmanaged<IntPtr*, int, int> DevicePrimaryCtxRetain;
    public delegate* unmanaged<int, int> DevicePrimaryCtxRelease;
    public delegate* unmanaged<IntPtr, int> CtxSetCurrent;
    public delegate* unmanaged<int> CtxSynchronize;
    public delegate* unmanaged<IntPtr*, void*, int> ModuleLoadData;
    public delegate* unmanaged<IntPtr, int> ModuleUnload;
    public delegate* unmanaged<IntPtr*, IntPtr, byte*, int> ModuleGetFunction;
    public delegate* unmanaged<ulong*, nuint, int> MemAlloc;
    public delegate* unmanaged<ulong, int> MemFree;
    public delegate* unmanaged<ulong, void*, nuint, int> MemcpyHtoD;
    public delegate* unmanaged<void*, ulong, nuint, int> MemcpyDtoH;
    public delegate* unmanaged<ulong, ulong, nuint, int> MemcpyDtoD;
    public delegate* unmanaged<ulong, byte, nuint, int> MemsetD8;
    public delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, void**, int> LaunchKernel;
    public delegate* unmanaged<IntPtr*, uint, int> EventCreate;
    public delegate* unmanaged<IntPtr, IntPtr, int> EventRecord;
    public delegate* unmanaged<IntPtr, int> EventSynchronize;
    public delegate* unmanaged<float*, IntPtr, IntPtr, int> EventElapsedTime;
    public delegate* unmanaged<IntPtr, int> EventDestroy;
    public delegate* unmanaged<int, byte**, int> GetErrorName;

    public static DriverApi Bind(IntPtr library) => new()
    {
        Init = (delegate* unmanaged<uint, int>)Export(library, "cuInit"),
        DriverGetVersion = (delegate* unmanaged<int*, int>)Export(library, "cuDriverGetVersion"),
        DeviceGetCount = (delegate* unmanaged<int*, int>)Export(library, "cuDeviceGetCount"),
        DeviceGet = (delegate* unmanaged<int*, int, int>)Export(library, "cuDeviceGet"),
        DeviceGetName = (delegate* unmanaged<byte*, int, int, int>)Export(library, "cuDeviceGetName"),
        DeviceGetAttribute = (delegate* unmanaged<int*, int, int, int>)Export(library, "cuDeviceGetAttribute"),
        DeviceTotalMem = (delegate* unmanaged<nuint*, int, int>)Export(library, "cuDeviceTotalMem_v2"),
        DevicePrimaryCtxRetain = (delegate* unmanaged<IntPtr*, int, int>)Export(library, "cuDevicePrimaryCtxRetain"),
        DevicePrimaryCtxRelease = (delegate* unmanaged<int, int>)Export(library, "cuDevicePrimaryCtxRelease_v2"),
        CtxSetCurrent = (delegate* unmanaged<IntPtr, int>)Export(library, "cuCtxSetCurrent"),
        CtxSynchronize = (delegate* unmanaged<int>)Export(library, "cuCtxSynchronize"),
        ModuleLoadData = (delegate* unmanaged<IntPtr*, void*, int>)Export(library, "cuModuleLoadData"),
        ModuleUnload = (delegate* unmanaged<IntPtr, int>)Export(library, "cuModuleUnload"),
        ModuleGetFunction = (delegate* unmanaged<IntPtr*, IntPtr, byte*, int>)Export(library, "cuModuleGetFunction"),
        MemAlloc = (delegate* unmanaged<ulong*, nuint, int>)Export(library, "cuMemAlloc_v2"),
        MemFree = (delegate* unmanaged<ulong, int>)Export(library, "cuMemFree_v2"),
        MemcpyHtoD = (delegate* unmanaged<ulong, void*, nuint, int>)Export(library, "cuMemcpyHtoD_v2"),
        MemcpyDtoH = (delegate* unmanaged<void*, ulong, nuint, int>)Export(library, "cuMemcpyDtoH_v2"),
        MemcpyDtoD = (delegate* unmanaged<ulong, ulong, nuint, int>)Export(library, "cuMemcpyDtoD_v2"),
        MemsetD8 = (delegate* unmanaged<ulong, byte, nuint, int>)Export(library, "cuMemsetD8_v2"),
        LaunchKernel = (delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, void**, int>)Export(library, "cuLaunchKernel"),
        EventCreate = (delegate* unmanaged<IntPtr*, uint, int>)Export(library, "cuEventCreate"),
        EventRecord = (delegate* unmanaged<IntPtr, IntPtr, int>)Export(library, "cuEventRecord"),
        EventSynchronize = (delegate* unmanaged<IntPtr, int>)Export(library, "cuEventSynchronize"),
        EventElapsedTime = (delegate* unmanaged<float*, IntPtr, IntPtr, int>)Export(library, "cuEventElapsedTime"),
        EventDestroy = (delegate* unmanaged<IntPtr, int>)Export(library, "cuEventDestroy_v2"),
        GetErrorName = (delegate* unmanaged<int, byte**, int>)Export(library, "cuGetErrorName"),
    };

    /// <summary>Throws a <see cref="CudaException"/> carrying the driver's name for <paramref name="status"/> unless it is CUDA_SUCCESS.</summary>
    public void Check(int status, string call)
    {
        if (status == 0)
        {
            return;
        }

        string name = $"CUDA_ERROR_{status}";
        byte* text = null;
        if (GetErrorName(status, &text) == 0 && text != null)
        {
            name = Marshal.PtrToStringAnsi((IntPtr)text) ?? name;
        }

        throw new CudaException(call, name, status);
    }

    internal static IntPtr Export(IntPtr library, string name) =>
        NativeLibrary.TryGetExport(library, name, out IntPtr address)
            ? address
            : throw new CudaException($"the CUDA library has no export '{name}': it is too old for Deer (CUDA 12 or newer is needed).");
}

/// <summary>The NVRTC functions Deer calls.</summary>
internal sealed unsafe class NvrtcApi
{
    public delegate* unmanaged<int*, int*, int> Version;
    public delegate* unmanaged<IntPtr*, byte*, byte*, int, byte**, byte**, int> CreateProgram;
    public delegate* unmanaged<IntPtr, int, byte**, int> CompileProgram;
    public delegate* unmanaged<IntPtr*, int> DestroyProgram;
    public delegate* unmanaged<IntPtr, nuint*, int> GetCubinSize;
    public delegate* unmanaged<IntPtr, byte*, int> GetCubin;
    public delegate* unmanaged<IntPtr, nuint*, int> GetProgramLogSize;
    public delegate* unmanaged<IntPtr, byte*, int> GetProgramLog;
    public delegate* unmanaged<int, byte*> GetErrorString;

    public static NvrtcApi Bind(IntPtr library) => new()
    {
        Version = (delegate* unmanaged<int*, int*, int>)DriverApi.Export(library, "nvrtcVersion"),
        CreateProgram = (delegate* unmanaged<IntPtr*, byte*, byte*, int, byte**, byte**, int>)DriverApi.Export(library, "nvrtcCreateProgram"),
        CompileProgram = (delegate* unmanaged<IntPtr, int, byte**, int>)DriverApi.Export(library, "nvrtcCompileProgram"),
        DestroyProgram = (delegate* unmanaged<IntPtr*, int>)DriverApi.Export(library, "nvrtcDestroyProgram"),
        GetCubinSize = (delegate* unmanaged<IntPtr, nuint*, int>)DriverApi.Export(library, "nvrtcGetCUBINSize"),
        GetCubin = (delegate* unmanaged<IntPtr, byte*, int>)DriverApi.Export(library, "nvrtcGetCUBIN"),
        GetProgramLogSize = (delegate* unmanaged<IntPtr, nuint*, int>)DriverApi.Export(library, "nvrtcGetProgramLogSize"),
        GetProgramLog = (delegate* unmanaged<IntPtr, byte*, int>)DriverApi.Export(library, "nvrtcGetProgramLog"),
        GetErrorString = (delegate* unmanaged<int, byte*>)DriverApi.Export(library, "nvrtcGetErrorString"),
    };

    public void Check(int status, string call, string? log = null)
    {
        if (status != 0)
        {
            string name = Marshal.PtrToStringAnsi((IntPtr)GetErrorString(status)) ?? $"NVRTC_ERROR_{status}";
            throw new CudaException(call, name, status, log);
        }
    }
}

/// <summary>The cuBLAS functions Deer calls (column-major, as cuBLAS is; callers transpose by swapping operands).</summary>
internal sealed unsafe class CublasApi
{
    public delegate* unmanaged<IntPtr*, int> Create;
    public delegate* unmanaged<IntPtr, int> Destroy;
    public delegate* unmanaged<IntPtr, int, int, int, int, int, float*, ulong, int, ulong, int, float*, ulong, int, int> Sgemm;
    public delegate* unmanaged<IntPtr, int, int, int, int, int, double*, ulong, int, ulong, int, double*, ulong, int, int> Dgemm;

    public static CublasApi Bind(IntPtr library) => new()
    {
        Create = (delegate* unmanaged<IntPtr*, int>)DriverApi.Export(library, "cublasCreate_v2"),
        Destroy = (delegate* unmanaged<IntPtr, int>)DriverApi.Export(library, "cublasDestroy_v2"),
        Sgemm = (delegate* unmanaged<IntPtr, int, int, int, int, int, float*, ulong, int, ulong, int, float*, ulong, int, int>)DriverApi.Export(library, "cublasSgemm_v2"),
        Dgemm = (delegate* unmanaged<IntPtr, int, int, int, int, int, double*, ulong, int, ulong, int, double*, ulong, int, int>)DriverApi.Export(library, "cublasDgemm_v2"),
    };

    public static void Check(int status, string call)
    {
        if (status != 0)
        {
            throw new CudaException(call, CudaException.CublasStatusName(status), status);
        }
    }
}
