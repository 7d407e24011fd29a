using System.Globalization;
using System.Text.Json;
using DeerSharp.IO;

namespace DeerSharp.Cli.Tests;

/// <summary>`deer ode`: agreement with an independent PyTorch reference, shapes, reports and bad input.</summary>
public class OdeCommandTests
{
    /// <summary>
    /// The acceptance check: a random float64 MLP field (PyTorch nn.Sequential, tanh), 10,000 points on [0, 1],
    /// uniform and random grids; deer, quasi-deer, dopri5 and rk4 each within 1e-6 (max abs) of RK4 with 3 substeps per
    /// interval evaluated by the torch module itself (python/ode_fixtures.py, fresh seed each run).
    /// </summary>
    [TorchFact]
    public void Ode_matches_a_high_accuracy_torch_reference_on_10000_points()
    {
        using var dir = new TempDir();
        int seed = Random.Shared.Next(1, int.MaxValue);
        string script = Path.Combine(AppContext.BaseDirectory, "python", "ode_fixtures.py");
        (int code, string output) = PythonTorch.Run(PythonTorch.Interpreter!, [script, dir.Path, seed.ToString(CultureInfo.InvariantCulture), "tanh"],
            TimeSpan.FromMinutes(3));
        Assert.True(code == 0, $"ode_fixtures.py failed: {output}");
        var failures = new List<string>();
        foreach (string grid in new[] { "uniform", "random" })
        {
            double[] reference = Npy.Read(dir.File($"ref_{grid}.npy")).ToArray<double>();
            foreach (string method in new[] { "deer", "quasi-deer", "dopri5", "rk4" })
            {
                string outPath = dir.File($"{grid}-{method}.npy");
                Cli.Outcome r = Cli.Run("ode", "--mlp", dir.File("mlp.safetensors"), "--y0", dir.File("y0.npy"), "--times", dir.File($"t_{grid}.npy"),
                    "--method", method, "--atol", "1e-10", "--rtol", "1e-10", "--out", outPath, "--report", dir.File($"{grid}-{method}.json"));
                if (r.ExitCode != 0)
                {
                    failures.Add($"{grid} {method}: {r}");
                    continue;
                }

                TensorData y = Npy.Read(outPath);
                double diff = MaxAbsDiff(y.ToArray<double>(), reference);
                if (!y.Shape.SequenceEqual([10_000, 4]) || !y.IsDouble || !(diff <= 1e-6))
                {
                    failures.Add($"{grid} {method}: shape {y.ShapeText}, max |Δ| {diff:G3}");
                }
            }
        }

        Assert.True(failures.Count == 0, $"seed {seed}:\n" + string.Join("\n", failures));
    }

    [Fact]
    public void Ode_solves_builtin_systems_batched_and_reports()
    {
        using var dir = new TempDir();
        Npy.Write(dir.File("y0.npy"), TensorData.FromDouble([1.0, 2.0, 2.0, 1.0, 0.5, 0.5], 3, 2));
        Npy.Write(dir.File("t.npy"), TensorData.FromDouble([.. Enumerable.Range(0, 201).Select(i => i * 0.02)], 201));
        foreach (string method in new[] { "deer", "quasi-deer", "rk4", "dopri5" })
        {
            Cli.Outcome r = Cli.Run("ode", "--system", "lotka-volterra", "--y0", dir.File("y0.npy"), "--times", dir.File("t.npy"), "--method", method,
                "--out", dir.File($"{method}.npy"), "--report", dir.File($"{method}.json"), "--substeps", "20", "--atol", "1e-10", "--rtol", "1e-9");
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Equal([3, 201, 2], Npy.Read(dir.File($"{method}.npy")).Shape);
            using JsonDocument report = JsonDocument.Parse(File.ReadAllText(dir.File($"{method}.json")));
            Assert.Equal(method, report.RootElement.GetProperty("method").GetString());
            // RK4 has no error estimate: it succeeds (exit 0) without claiming that the tolerance was met.
            Assert.Equal(method != "rk4", report.RootElement.GetProperty("converged").GetBoolean());
            Assert.Equal(method == "rk4" ? "ErrorNotControlled" : "Converged", report.RootElement.GetProperty("status").GetString());
            Assert.True(report.RootElement.GetProperty("internal_grid_size").GetInt32() >= 2);

            // The error estimate says what it is relative to; a converged method's is at most 1, RK4 has none.
            Assert.Contains("atol + rtol*|y|", report.RootElement.GetProperty("error_estimate_relative_to").GetString(), StringComparison.Ordinal);
            Assert.Contains(method == "rk4" ? "no error estimate" : "× (atol + rtol·|y|), within the tolerance", r.Stdout, StringComparison.Ordinal);
            if (method != "rk4")
            {
                Assert.InRange(report.RootElement.GetProperty("error_estimate").GetDouble(), 0, 1);
            }
        }

        double[] dopri = Npy.Read(dir.File("dopri5.npy")).ToArray<double>();
        foreach (string method in new[] { "deer", "quasi-deer", "rk4" })
        {
            double diff = MaxAbsDiff(Npy.Read(dir.File($"{method}.npy")).ToArray<double>(), dopri);
            Assert.True(diff <= 2e-5, $"{method} vs dopri5: {diff:G3}");
        }

        // float32 output on request, same shape.
        Cli.Outcome single = Cli.Run("ode", "--system", "van-der-pol", "--y0", dir.File("y0.npy"), "--times", dir.File("t.npy"), "--dtype", "float32",
            "--out", dir.File("f32.npy"));
        Assert.True(single.ExitCode == 0, single.ToString());
        Assert.False(Npy.Read(dir.File("f32.npy")).IsDouble);
    }

    [Fact]
    public void Ode_rejects_bad_input_with_one_line_naming_it()
    {
        using var dir = new TempDir();
        Npy.Write(dir.File("y0.npy"), TensorData.FromDouble([1.0, 2.0], 2));
        Npy.Write(dir.File("y3.npy"), TensorData.FromDouble([1.0, 2.0, 3.0], 3));
        Npy.Write(dir.File("t.npy"), TensorData.FromDouble([0, 0.5, 1.0], 3));
        Npy.Write(dir.File("tbad.npy"), TensorData.FromDouble([0, 0.5, 0.5], 3));
        Npy.Write(dir.File("t2d.npy"), TensorData.FromDouble([0, 0.5, 1.0, 1.5], 2, 2));
        string Y(string name) => dir.File(name);
        (string[] Args, string Expected)[] cases =
        [
            (["--y0", Y("y0.npy"), "--times", Y("t.npy")], "exactly one of --mlp"),
            (["--system", "pendulum", "--mlp", Y("m.safetensors"), "--y0", Y("y0.npy"), "--times", Y("t.npy")], "exactly one of --mlp"),
            (["--system", "pendulum", "--y0", Y("y3.npy"), "--times", Y("t.npy")], "--y0 " + Y("y3.npy") + ": expected shape [2] or [B, 2]"),
            (["--system", "pendulum", "--y0", Y("y0.npy"), "--times", Y("tbad.npy")], "must be strictly increasing"),
            (["--system", "pendulum", "--y0", Y("y0.npy"), "--times", Y("t2d.npy")], "expected shape [N + 1]"),
            (["--system", "pendulum", "--y0", Y("none.npy"), "--times", Y("t.npy")], "no such file"),
            (["--system", "pendulum", "--y0", Y("y0.npy"), "--times", Y("t.npy"), "--inputs", Y("t.npy")], "reads no inputs"),
            (["--system", "pendulum", "--y0", Y("y0.npy"), "--times", Y("t.npy"), "--atol", "0", "--rtol", "0"], "cannot both be 0"),
            (["--mlp", Y("y0.npy"), "--y0", Y("y0.npy"), "--times", Y("t.npy")], "--mlp " + Y("y0.npy")),
            (["--system", "sun", "--y0", Y("y0.npy"), "--times", Y("t.npy")], "sun"),
        ];
        foreach (var (args, expected) in cases)
        {
            Cli.Outcome r = Cli.Run(["ode", .. args, "--out", dir.File("out.npy")]);
            Assert.True(r.ExitCode == 2, $"{string.Join(' ', args)}: {r}");
            Assert.Contains(expected, r.Stderr, StringComparison.Ordinal);
            Assert.Single(r.Stderr.Trim().Split('\n'));
            Assert.False(File.Exists(dir.File("out.npy")));
        }
    }

    [Fact]
    public void Ode_exits_3_and_writes_nothing_when_deer_fails_unless_asked_to_fall_back()
    {
        using var dir = new TempDir();
        Npy.Write(dir.File("y0.npy"), TensorData.FromDouble([2.0, 0.0], 2));
        Npy.Write(dir.File("t.npy"), TensorData.FromDouble([.. Enumerable.Range(0, 50).Select(i => i * 0.2)], 50));
        string[] common = ["ode", "--system", "van-der-pol", "--y0", dir.File("y0.npy"), "--times", dir.File("t.npy"), "--max-iter", "1", "--fixed-grid",
            "--out", dir.File("out.npy")];
        Cli.Outcome failed = Cli.Run(common);
        Assert.True(failed.ExitCode == 3, failed.ToString());
        Assert.Contains("--fallback dopri5", failed.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(dir.File("out.npy")));
        Assert.Empty(Directory.GetFiles(dir.Path, ".*"));

        Cli.Outcome fallback = Cli.Run([.. common, "--fallback", "dopri5", "--report", dir.File("r.json")]);
        Assert.True(fallback.ExitCode == 0, fallback.ToString());
        using JsonDocument report = JsonDocument.Parse(File.ReadAllText(dir.File("r.json")));
        Assert.Equal("deer", report.RootElement.GetProperty("method").GetString());
        Assert.Equal("dopri5", report.RootElement.GetProperty("states_method").GetString());
        Assert.True(report.RootElement.GetProperty("fallback_used").GetBoolean());
    }

    private static double MaxAbsDiff(double[] a, double[] b)
    {
        if (a.Length != b.Length)
        {
            return double.PositiveInfinity;
        }

        double max = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = Math.Abs(a[i] - b[i]);
            max = double.IsNaN(d) ? double.NaN : Math.Max(max, d);
        }

        return max;
    }
}
