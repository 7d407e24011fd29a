using System.Globalization;
using System.Text.Json;
using DeerSharp.IO;

namespace DeerSharp.Cli.Tests;

/// <summary>
/// `deer run` against PyTorch's own modules: for RNN, GRU and LSTM, 1 and 2 layers, batched and unbatched, float32 and
/// float64, with and without h0/c0 and biases, every method reproduces the module's output (1e-4 float32, 1e-9 float64).
/// The cases are generated fresh by torch on every run (tests/Deer.Cli.Tests/python/torch_fixtures.py).
/// </summary>
public class TorchAgreementTests
{
    [TorchFact]
    public void Run_reproduces_PyTorch_modules_with_every_method()
    {
        using var dir = new TempDir();
        int seed = Random.Shared.Next();
        using JsonDocument cases = Fixtures(dir, seed);
        var failures = new List<string>();
        int runs = 0;
        foreach (JsonElement c in cases.RootElement.EnumerateArray())
        {
            string name = c.GetProperty("name").GetString()!, cell = c.GetProperty("cell").GetString()!;
            string folder = Path.Combine(dir.Path, name);
            TensorData expected = Npy.Read(Path.Combine(folder, "expected.npy"));
            double tolerance = c.GetProperty("dtype").GetString() == "float64" ? 1e-9 : 1e-4;
            foreach (string method in new[] { "auto", "sequential", "deer", "quasi-deer", "quasi-elk", "picard" })
            {
                var args = new List<string> { "run", "--cell", cell, "--weights", Path.Combine(folder, "weights.safetensors"),
                    "--inputs", Path.Combine(folder, "x.npy"), "--method", method, "--out", Path.Combine(folder, $"{method}.npy"),
                    "--report", Path.Combine(folder, $"{method}.json") };
                args.AddRange(StateArgs(c, folder));

                Cli.Outcome r = Cli.Run([.. args]);
                runs++;
                if (r.ExitCode != 0)
                {
                    failures.Add($"{name} {method}: {r}");
                    continue;
                }

                TensorData actual = Npy.Read(Path.Combine(folder, $"{method}.npy"));
                double diff = MaxAbsDiff(expected.ToArray<double>(), actual.ToArray<double>());
                if (!actual.Shape.SequenceEqual(expected.Shape) || actual.IsDouble != expected.IsDouble || !(diff <= tolerance))
                {
                    failures.Add($"{name} {method}: shape {actual.ShapeText} vs {expected.ShapeText}, double {actual.IsDouble} vs {expected.IsDouble}, max diff {diff:G3} (tolerance {tolerance:G1})");
                }

                using JsonDocument report = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, $"{method}.json")));
                foreach (string key in new[] { "method", "backend", "iterations", "converged", "max_residual", "solve_seconds" })
                {
                    if (!report.RootElement.TryGetProperty(key, out _))
                    {
                        failures.Add($"{name} {method}: report lacks '{key}'");
                    }
                }
            }
        }

        Assert.Equal(144, runs);
        Assert.True(failures.Count == 0, $"seed {seed}:\n" + string.Join("\n", failures));
    }

    /// <summary>
    /// `deer run --device emulated` (the GPU kernels on ILGPU's CPU accelerator) against PyTorch's modules: every float32
    /// case (RNN, GRU, LSTM; 1 and 2 layers; batched or not), DEER and quasi-DEER with no fallback, within 1e-4; the report
    /// names the emulated backend.
    /// </summary>
    [TorchFact]
    public void Run_on_the_emulated_device_reproduces_PyTorch_modules()
    {
        using var dir = new TempDir();
        int seed = Random.Shared.Next();
        using JsonDocument cases = Fixtures(dir, seed);
        var failures = new List<string>();
        int runs = 0;
        foreach (JsonElement c in cases.RootElement.EnumerateArray().Where(c => c.GetProperty("dtype").GetString() == "float32"))
        {
            string name = c.GetProperty("name").GetString()!, cell = c.GetProperty("cell").GetString()!;
            string folder = Path.Combine(dir.Path, name);
            TensorData expected = Npy.Read(Path.Combine(folder, "expected.npy"));
            foreach (string method in new[] { "deer", "quasi-deer" })
            {
                var args = new List<string> { "run", "--cell", cell, "--weights", Path.Combine(folder, "weights.safetensors"),
                    "--inputs", Path.Combine(folder, "x.npy"), "--method", method, "--device", "emulated",
                    "--out", Path.Combine(folder, $"emulated-{method}.npy"), "--report", Path.Combine(folder, $"emulated-{method}.json") };
                args.AddRange(StateArgs(c, folder));

                Cli.Outcome r = Cli.Run([.. args]);
                runs++;
                if (r.ExitCode != 0)
                {
                    failures.Add($"{name} {method}: {r}");
                    continue;
                }

                double diff = MaxAbsDiff(expected.ToArray<double>(), Npy.Read(Path.Combine(folder, $"emulated-{method}.npy")).ToArray<double>());
                using JsonDocument report = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, $"emulated-{method}.json")));
                string? backend = report.RootElement.GetProperty("backend").GetString();
                if (!(diff <= 1e-4) || backend != "emulated")
                {
                    failures.Add($"{name} {method}: max diff {diff:G3} (tolerance 1e-4), backend {backend}");
                }
            }
        }

        Assert.Equal(24, runs);
        Assert.True(failures.Count == 0, $"seed {seed}:\n" + string.Join("\n", failures));
    }

    /// <summary>
    /// `deer grad` against autograd's output.backward(C): every weight key, "inputs", "h0" and "c0", for every case, after
    /// forward passes by DEER, quasi-DEER and the loop; 1e-8 relative to each tensor's largest entry in float64, 1e-3 in float32.
    /// </summary>
    [TorchFact]
    public void Grad_reproduces_PyTorch_autograd()
    {
        using var dir = new TempDir();
        int seed = Random.Shared.Next();
        using JsonDocument cases = Fixtures(dir, seed);
        var failures = new List<string>();
        int compared = 0;
        foreach (JsonElement c in cases.RootElement.EnumerateArray())
        {
            string name = c.GetProperty("name").GetString()!, cell = c.GetProperty("cell").GetString()!;
            string folder = Path.Combine(dir.Path, name);
            bool dbl = c.GetProperty("dtype").GetString() == "float64";
            SafetensorsFile expected = SafetensorsFile.Read(Path.Combine(folder, "grads.safetensors"));
            foreach (string method in new[] { "deer", "quasi-deer", "sequential" })
            {
                string outPath = Path.Combine(folder, $"g-{method}.safetensors");
                var args = new List<string> { "grad", "--cell", cell, "--weights", Path.Combine(folder, "weights.safetensors"),
                    "--inputs", Path.Combine(folder, "x.npy"), "--cotangent", Path.Combine(folder, "c.npy"), "--method", method, "--out", outPath };
                if (dbl)
                {
                    args.AddRange(["--atol", "1e-13", "--rtol", "1e-13"]);
                }

                args.AddRange(StateArgs(c, folder));

                Cli.Outcome r = Cli.Run([.. args]);
                if (r.ExitCode != 0)
                {
                    failures.Add($"{name} {method}: {r}");
                    continue;
                }

                SafetensorsFile actual = SafetensorsFile.Read(outPath);
                if (!actual.Keys.Order(StringComparer.Ordinal).SequenceEqual(expected.Keys.Order(StringComparer.Ordinal)))
                {
                    failures.Add($"{name} {method}: keys {string.Join(",", actual.Keys)} vs autograd's {string.Join(",", expected.Keys)}");
                    continue;
                }

                foreach (string key in expected.Keys)
                {
                    TensorData e = expected.Get(key), a = actual.Get(key);
                    double[] ev = e.ToArray<double>(), av = a.ToArray<double>();
                    double scale = Math.Max(1e-300, ev.Max(Math.Abs)), diff = MaxAbsDiff(ev, av), tolerance = dbl ? 1e-8 : 1e-3;
                    compared++;
                    if (!e.Shape.SequenceEqual(a.Shape) || !(diff <= tolerance * scale))
                    {
                        failures.Add($"{name} {method} {key}: shape {a.ShapeText} vs {e.ShapeText}, relative difference {diff / scale:G3} (tolerance {tolerance:G1})");
                    }
                }
            }
        }

        Assert.True(compared > 200, $"only {compared} tensors compared");
        Assert.True(failures.Count == 0, $"seed {seed}:\n" + string.Join("\n", failures));
    }

    /// <summary>Runs a fixture script (torch_fixtures.py by default) into <paramref name="dir"/> with fresh random weights and data; returns its case list.</summary>
    internal static JsonDocument Fixtures(TempDir dir, int seed, string name = "torch_fixtures.py")
    {
        string script = Path.Combine(AppContext.BaseDirectory, "python", name);
        (int code, string output) = PythonTorch.Run(PythonTorch.Interpreter!, [script, dir.Path, seed.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromMinutes(3));
        Assert.True(code == 0, $"{name} failed: {output}");
        return JsonDocument.Parse(File.ReadAllText(dir.File("cases.json")));
    }

    /// <summary>--h0 (and --c0 for an LSTM) when the case has initial states.</summary>
    internal static IEnumerable<string> StateArgs(JsonElement c, string folder)
    {
        if (!c.GetProperty("h0").GetBoolean())
        {
            return [];
        }

        string cell = c.GetProperty("cell").GetString()!;
        return cell is "lstm" or "diag-lstm"
            ? ["--h0", Path.Combine(folder, "h0.npy"), "--c0", Path.Combine(folder, "c0.npy")]
            : ["--h0", Path.Combine(folder, "h0.npy")];
    }

    internal static double MaxAbsDiff(double[] a, double[] b)
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
