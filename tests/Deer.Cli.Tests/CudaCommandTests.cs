using DeerSharp.Cuda;
using DeerSharp.IO;

namespace DeerSharp.Cli.Tests;

/// <summary>The CLI's CUDA surface on a machine without a GPU: clear refusals, never a stack trace or a partial file.</summary>
public class CudaCommandTests
{
    [Fact]
    public void Info_lists_the_cuda_backend_or_says_why_it_is_absent()
    {
        Cli.Outcome r = Cli.Run("info");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains(CudaDevices.Probe().Available ? "cuda (available" : "cuda (not available: ", r.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Cuda_commands_without_a_device_exit_2_with_the_reason()
    {
        if (CudaDevices.Probe().Available)
        {
            return; // On a GPU machine these commands run for real (CudaAgreement and the selftest cover them).
        }

        using var dir = new TempDir();
        var gru = Cells.GruCell<float>.Random(2, 3, new Random(1));
        SafetensorsFile.Write(dir.File("w.safetensors"), new Dictionary<string, TensorData>
        {
            ["weight_ih_l0"] = TensorData.FromSingle(gru.Weights.WeightIH, 9, 2),
            ["weight_hh_l0"] = TensorData.FromSingle(gru.Weights.WeightHH, 9, 3),
        });
        Npy.Write(dir.File("x.npy"), TensorData.FromSingle(new float[20], 10, 2));
        string[][] commands =
        [
            ["selftest", "--device", "cuda"],
            ["bench", "--device", "cuda", "--quick", "--out-dir", dir.File("bench")],
            ["run", "--cell", "gru", "--weights", dir.File("w.safetensors"), "--inputs", dir.File("x.npy"), "--device", "cuda", "--out", dir.File("h.npy")],
        ];
        foreach (string[] args in commands)
        {
            Cli.Outcome r = Cli.Run(args);
            Assert.True(r.ExitCode == 2, $"{string.Join(' ', args)}: {r}");
            Assert.Contains("no CUDA device", r.Stderr, StringComparison.OrdinalIgnoreCase);
            Assert.Single(r.Stderr.Trim().Split('\n'));
        }

        Assert.False(File.Exists(dir.File("h.npy")));
        Cli.Outcome auto = Cli.Run("run", "--cell", "gru", "--weights", dir.File("w.safetensors"), "--inputs", dir.File("x.npy"), "--device", "auto",
            "--out", dir.File("h.npy"), "--report", dir.File("r.json"));
        Assert.True(auto.ExitCode == 0, auto.ToString());
        Assert.Contains("\"backend\": \"cpu\"", File.ReadAllText(dir.File("r.json")), StringComparison.Ordinal);
    }
}
