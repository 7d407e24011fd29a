using System.Text.Json;
using DeerSharp.Cells;
using DeerSharp.IO;

namespace DeerSharp.Cli.Tests;

/// <summary>
/// The CLI's side of the result contract: exit 3 whenever the result says "not converged", exit 0 with a valid report
/// when a fallback produced checked states. Cases 1 and 3 of the contract issue, reproduced as a user would.
/// </summary>
public sealed class ContractCommandTests
{
    [Fact]
    public void Fixed_grid_ode_that_misses_its_tolerance_exits_3()
    {
        // Case 1: y(10) came back as -120,466 with exit 0 and status "Converged".
        using var dir = new TempDir();
        Npy.Write(dir.File("y0.npy"), TensorData.FromDouble([1.0, 1.0], 2));
        Npy.Write(dir.File("t.npy"), TensorData.FromDouble([.. Enumerable.Range(0, 21).Select(i => i * 0.5)], 21));
        string[] args = ["ode", "--system", "lotka-volterra", "--y0", dir.File("y0.npy"), "--times", dir.File("t.npy"), "--method", "deer",
            "--fixed-grid", "--out", dir.File("y.npy"), "--report", dir.File("r.json")];
        Cli.Outcome r = Cli.Run(args);
        Assert.True(r.ExitCode == 3, r.ToString());
        Assert.Contains("AccuracyNotReached", r.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(dir.File("y.npy")));
        Assert.False(File.Exists(dir.File("r.json")));

        // With the fallback the states are Dopri5's, and the report says so.
        Cli.Outcome repaired = Cli.Run([.. args, "--fallback", "dopri5"]);
        Assert.True(repaired.ExitCode == 0, repaired.ToString());
        using JsonDocument report = JsonDocument.Parse(File.ReadAllText(dir.File("r.json")));
        Assert.Equal("dopri5", report.RootElement.GetProperty("states_method").GetString());
        Assert.True(report.RootElement.GetProperty("tolerance_met").GetBoolean());
        double[] y = Npy.Read(dir.File("y.npy")).ToArray<double>();
        Assert.InRange(y[^2], 0.0, 10.0);   // Lotka-Volterra's prey stays positive and bounded; -120,466 was the failure
    }

    [Fact]
    public void Run_report_after_a_successful_fallback_is_valid_and_exits_0()
    {
        // Case 3: a non-finite residual in the history crashed the JSON writer (exit 2, nothing written).
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        using var dir = new TempDir();
        const int N = 6, D = 3, T = 300;
        RecurrentWeights<double> w = RecurrentWeights<double>.Random(1, N, D, random);
        for (int i = 0; i < w.WeightHH.Length; i++)
        {
            w.WeightHH[i] *= 40;
        }

        SafetensorsFile.Write(dir.File("rnn.safetensors"), new Dictionary<string, TensorData>
        {
            ["weight_ih_l0"] = TensorData.FromDouble(w.WeightIH, N, D),
            ["weight_hh_l0"] = TensorData.FromDouble(w.WeightHH, N, N),
            ["bias_ih_l0"] = TensorData.FromDouble(w.BiasIH, N),
            ["bias_hh_l0"] = TensorData.FromDouble(w.BiasHH, N),
        });
        Npy.Write(dir.File("x.npy"), TensorData.FromDouble([.. Enumerable.Range(0, T * D).Select(_ => random.NextDouble() * 2 - 1)], T, D));
        Cli.Outcome r = Cli.Run("run", "--cell", "rnn", "--weights", dir.File("rnn.safetensors"), "--inputs", dir.File("x.npy"), "--method", "deer",
            "--max-iter", "3", "--fallback", "sequential", "--out", dir.File("h.npy"), "--report", dir.File("r.json"));
        Assert.True(r.ExitCode == 0, $"seed {seed}: {r}");
        using JsonDocument report = JsonDocument.Parse(File.ReadAllText(dir.File("r.json")));
        JsonElement root = report.RootElement;
        Assert.Equal("deer", root.GetProperty("method").GetString());
        Assert.Equal("sequential", root.GetProperty("fallback_method").GetString());
        Assert.True(root.GetProperty("converged").GetBoolean());
        Assert.True(double.IsFinite(root.GetProperty("max_residual").GetDouble()));

        // The states are the loop's.
        SolveResult<double> loop = Deer.Solve(new TanhRnnCell<double>(w), Npy.Read(dir.File("x.npy")).ToArray<double>(), 1, T,
            new SolveOptions { Method = SolveMethod.Sequential });
        Assert.Equal(loop.States, Npy.Read(dir.File("h.npy")).ToArray<double>());
    }
}
