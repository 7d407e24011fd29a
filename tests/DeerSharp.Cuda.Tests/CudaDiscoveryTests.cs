using DeerSharp.Cells;

namespace DeerSharp.Cuda.Tests;

/// <summary>The parts of the CUDA backend that need no GPU: the library resolver, the probe, and clear failures.</summary>
public class CudaDiscoveryTests
{
    [Fact]
    public void Resolver_tries_the_environment_then_usr_local_cuda_then_python_wheels_then_the_loader()
    {
        var env = new Dictionary<string, string?> { ["CUDA_PATH"] = "/opt/cuda-a", ["CUDA_HOME"] = "/opt/cuda-b" };
        IReadOnlyList<string> nvrtc = CudaLibraries.Candidates(CudaLibrary.Nvrtc, k => env.GetValueOrDefault(k), ["/py/site-packages"]);
        int a = IndexOf(nvrtc, "/opt/cuda-a/lib64/libnvrtc.so.13"), b = IndexOf(nvrtc, "/opt/cuda-b/lib64/libnvrtc.so.13");
        int local = IndexOf(nvrtc, "/usr/local/cuda/lib64/libnvrtc.so.13"), wheel = IndexOf(nvrtc, "/py/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so.12");
        int bare = IndexOf(nvrtc, "libnvrtc.so.13");
        Assert.True(a < b && b < local && local < wheel && wheel < bare, string.Join("\n", nvrtc));
        Assert.True(IndexOf(nvrtc, "/opt/cuda-a/lib64/libnvrtc.so.13") < IndexOf(nvrtc, "/opt/cuda-a/lib64/libnvrtc.so.12"), "13 before 12");
        Assert.Contains("/py/site-packages/nvidia/cu13/lib/libnvrtc.so.13", nvrtc);

        IReadOnlyList<string> cublas = CudaLibraries.Candidates(CudaLibrary.Cublas, _ => null, ["/py"]);
        Assert.Equal("/usr/local/cuda/lib64/libcublas.so.13", cublas[0]);
        Assert.Contains("/py/nvidia/cublas/lib/libcublas.so.12", cublas);
        Assert.Equal(["libcublas.so.13", "libcublas.so.12", "libcublas.so"], cublas.TakeLast(3));

        IReadOnlyList<string> driver = CudaLibraries.Candidates(CudaLibrary.Driver, _ => null, ["/py"]);
        Assert.DoesNotContain(driver, p => p.StartsWith("/py", StringComparison.Ordinal));
        Assert.Equal("libcuda.so.1", driver[^2]);
    }

    [Fact]
    public void Probe_never_throws_and_explains_an_absent_device()
    {
        CudaProbe probe = CudaDevices.Probe();
        if (probe.Available)
        {
            Assert.NotEmpty(probe.Devices);
            Assert.All(probe.Devices, d => Assert.StartsWith("sm_", d.Architecture, StringComparison.Ordinal));
        }
        else
        {
            Assert.False(string.IsNullOrWhiteSpace(probe.Reason));
            Assert.Empty(probe.Devices);
        }
    }

    [Fact]
    public void Asking_for_cuda_without_a_device_or_for_an_unsupported_cell_fails_clearly()
    {
        var gru = GruCell<float>.Random(2, 3, new Random(1));
        float[] x = new float[20];
        if (!CudaDevices.Probe().Available)
        {
            var e = Assert.Throws<CudaException>(() => Deer.Solve(gru, x, 1, 10, new SolveOptions { Device = ComputeDevice.Cuda }));
            Assert.Contains("no CUDA device", e.Message, StringComparison.Ordinal);
            // Auto quietly stays on the CPU.
            Assert.True(Deer.Solve(gru, x, 1, 10, new SolveOptions { Device = ComputeDevice.Auto }).Converged);
        }

        var sru = SruCell<float>.Random(3, new Random(2));
        var unsupported = Assert.Throws<NotSupportedException>(() => Deer.Solve(sru, new float[30], 1, 10, new SolveOptions { Device = ComputeDevice.Cuda }));
        Assert.Contains("SruCell", unsupported.Message, StringComparison.Ordinal);
        var elk = Assert.Throws<NotSupportedException>(() => Deer.Solve(gru, x, 1, 10, new SolveOptions { Device = ComputeDevice.Cuda, Method = SolveMethod.QuasiElk }));
        Assert.Contains("QuasiElk", elk.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Kernel_source_is_embedded_in_the_library()
    {
        string source = CudaRuntime.KernelSource();
        foreach (string kernel in new[] { "scan_diag_reduce", "scan_dense_apply", "gru_eval", "lstm_eval", "rnn_eval", "gilr_coefficients", "sequential_cell" })
        {
            Assert.Contains($"void {kernel}(", source, StringComparison.Ordinal);
        }
    }

    private static int IndexOf(IReadOnlyList<string> list, string item)
    {
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i] == item)
            {
                return i;
            }
        }

        Assert.Fail($"'{item}' is not a candidate:\n{string.Join("\n", list)}");
        return -1;
    }
}
