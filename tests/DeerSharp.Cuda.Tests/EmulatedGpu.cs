using System.Diagnostics;
using System.Runtime.InteropServices;

namespace DeerSharp.Cuda.Tests;

/// <summary>
/// An <see cref="IGpuRuntime"/> that runs Deer's CUDA kernels on the CPU: emulator/emulator.cpp compiles
/// Kernels/deer.cu with g++ (once per test run, for float and for double) and runs every launch block by block with real
/// threads and barriers. Device memory is host memory; GEMM is a plain loop. It tests the kernels' logic and the host
/// orchestration (GpuSolver) without a GPU; it says nothing about speed.
/// </summary>
internal sealed unsafe class EmulatedGpu : IGpuRuntime
{
    private static readonly Lazy<(IntPtr Float, IntPtr Double, string Why)> Libraries = new(Build);
    private readonly delegate* unmanaged<byte*, uint, uint, uint, uint, void**, int> _float;
    private readonly delegate* unmanaged<byte*, uint, uint, uint, uint, void**, int> _double;

    public EmulatedGpu()
    {
        var (f, d, why) = Libraries.Value;
        if (f == IntPtr.Zero)
        {
            throw new InvalidOperationException(why);
        }

        _float = (delegate* unmanaged<byte*, uint, uint, uint, uint, void**, int>)NativeLibrary.GetExport(f, "deer_emulate");
        _double = (delegate* unmanaged<byte*, uint, uint, uint, uint, void**, int>)NativeLibrary.GetExport(d, "deer_emulate");
    }

    /// <summary>Why the emulator cannot be built here (no g++ with C++20), or null when it can.</summary>
    public static string? Unavailable => Libraries.Value.Float == IntPtr.Zero ? Libraries.Value.Why : null;

    public string Description => "CPU emulator of the CUDA kernels";

    public long FreeMemoryBytes => 1L << 31;

    public int Launches { get; private set; }

    public ulong Allocate(long bytes) => (ulong)NativeMemory.AllocZeroed((nuint)Math.Max(bytes, 1));

    public void Free(ulong pointer) => NativeMemory.Free((void*)pointer);

    public void Upload(ulong destination, void* source, long bytes) => Buffer.MemoryCopy(source, (void*)destination, bytes, bytes);

    public void Download(void* destination, ulong source, long bytes) => Buffer.MemoryCopy((void*)source, destination, bytes, bytes);

    public void Copy(ulong destination, ulong source, long bytes) => Buffer.MemoryCopy((void*)source, (void*)destination, bytes, bytes);

    public void Zero(ulong pointer, long bytes) => NativeMemory.Clear((void*)pointer, (nuint)bytes);

    public void Launch(string kernel, bool isDouble, uint gridX, uint gridY, uint blockX, uint sharedBytes, void** arguments)
    {
        Launches++;
        byte[] name = System.Text.Encoding.ASCII.GetBytes(kernel + "\0");
        fixed (byte* p = name)
        {
            int status = isDouble ? _double(p, gridX, gridY, blockX, sharedBytes, arguments) : _float(p, gridX, gridY, blockX, sharedBytes, arguments);
            if (status != 0)
            {
                throw new CudaException("deer_emulate", "UNKNOWN_KERNEL", status, kernel);
            }
        }
    }

    public void GemmABt(bool isDouble, int m, int n, int k, ulong a, int lda, ulong b, int ldb, double beta, ulong c, int ldc)
    {
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int q = 0; q < k; q++)
                {
                    sum += isDouble
                        ? ((double*)a)[(long)i * lda + q] * ((double*)b)[(long)j * ldb + q]
                        : ((float*)a)[(long)i * lda + q] * (double)((float*)b)[(long)j * ldb + q];
                }

                if (isDouble)
                {
                    double* target = (double*)c + (long)i * ldc + j;
                    *target = sum + (beta == 0 ? 0 : beta * *target);
                }
                else
                {
                    float* target = (float*)c + (long)i * ldc + j;
                    *target = (float)(sum + (beta == 0 ? 0 : beta * *target));
                }
            }
        }
    }

    public void Synchronize()
    {
    }

    public void Dispose()
    {
    }

    private static (IntPtr, IntPtr, string) Build()
    {
        string source = Path.Combine(AppContext.BaseDirectory, "emulator");
        string output = Path.Combine(Path.GetTempPath(), $"deer-emulator-{Environment.ProcessId}");
        Directory.CreateDirectory(output);
        var handles = new IntPtr[2];
        string[] types = ["float", "double"];
        for (int i = 0; i < 2; i++)
        {
            string library = Path.Combine(output, $"libdeeremu_{types[i]}.so");
            var info = new ProcessStartInfo("g++") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (string arg in new[] { "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", $"-DREAL={types[i]}", $"-I{source}", Path.Combine(source, "emulator.cpp"), "-o", library })
            {
                info.ArgumentList.Add(arg);
            }

            try
            {
                using Process p = Process.Start(info)!;
                string errors = p.StandardError.ReadToEnd();
                p.WaitForExit();
                if (p.ExitCode != 0)
                {
                    return (IntPtr.Zero, IntPtr.Zero, $"g++ could not build the kernel emulator: {errors}");
                }
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                return (IntPtr.Zero, IntPtr.Zero, $"no g++ to build the kernel emulator ({e.Message}); install g++ to run these tests without a GPU");
            }

            handles[i] = NativeLibrary.Load(library);
        }

        return (handles[0], handles[1], "");
    }
}

/// <summary>A fact that needs the kernel emulator (g++); skipped with the reason where it cannot be built.</summary>
internal sealed class EmulatorFactAttribute : FactAttribute
{
    public EmulatorFactAttribute()
    {
        if (EmulatedGpu.Unavailable is { } why)
        {
            Skip = why;
        }
    }
}

/// <summary>A fact that needs a real CUDA device; skipped, with the probe's reason, where there is none.</summary>
internal sealed class CudaFactAttribute : FactAttribute
{
    public CudaFactAttribute()
    {
        CudaProbe probe = CudaDevices.Probe();
        if (!probe.Available)
        {
            Skip = $"no CUDA device: {probe.Reason}";
        }
    }
}
