using System.Text.Json;
using DeerSharp.IO;

namespace DeerSharp.Cli.Tests;

/// <summary>
/// `deer run` and `deer grad` for --cell indrnn, diag-gru and diag-lstm against modules written in PyTorch from the
/// equations (tests/Deer.Cli.Tests/python/structured_fixtures.py, fresh weights each run): k = 1, 2, 4, one and two
/// layers, batched and unbatched, float32 and float64, a 1-D weight_hh for k = 1. Outputs within 1e-9 (float64) and
/// 1e-4 (float32); gradients within 1e-8 and 1e-3 of each tensor's largest entry.
/// </summary>
public sealed class StructuredCommandTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [TorchFact]
    public void Run_and_grad_reproduce_the_PyTorch_equations()
    {
        int seed = Random.Shared.Next();
        using JsonDocument cases = TorchAgreementTests.Fixtures(_dir, seed, "structured_fixtures.py");
        var failures = new List<string>();
        int runs = 0, compared = 0;
        foreach (JsonElement c in cases.RootElement.EnumerateArray())
        {
            string name = c.GetProperty("name").GetString()!, cell = c.GetProperty("cell").GetString()!;
            string folder = Path.Combine(_dir.Path, name);
            bool dbl = c.GetProperty("dtype").GetString() == "float64";
            double[] expected = Npy.Read(Path.Combine(folder, "expected.npy")).ToArray<double>();
            foreach (string method in new[] { "auto", "sequential", "deer", "quasi-deer" })
            {
                var args = new List<string> { "run", "--cell", cell, "--weights", Path.Combine(folder, "weights.safetensors"),
                    "--inputs", Path.Combine(folder, "x.npy"), "--method", method, "--out", Path.Combine(folder, $"{method}.npy") };
                args.AddRange(TorchAgreementTests.StateArgs(c, folder));
                if (method == "deer")
                {
                    args.AddRange(["--block-size", c.GetProperty("k").GetInt32().ToString(System.Globalization.CultureInfo.InvariantCulture)]);
                }

                Cli.Outcome r = Cli.Run([.. args]);
                runs++;
                if (r.ExitCode != 0)
                {
                    failures.Add($"{name} {method}: {r}");
                    continue;
                }

                double diff = TorchAgreementTests.MaxAbsDiff(expected, Npy.Read(Path.Combine(folder, $"{method}.npy")).ToArray<double>());
                if (!(diff <= (dbl ? 1e-9 : 1e-4)))
                {
                    failures.Add($"{name} {method}: max difference {diff:G3} from PyTorch");
                }
            }

            SafetensorsFile autograd = SafetensorsFile.Read(Path.Combine(folder, "grads.safetensors"));
            foreach (string method in new[] { "deer", "sequential" })
            {
                string outPath = Path.Combine(folder, $"g-{method}.safetensors");
                var args = new List<string> { "grad", "--cell", cell, "--weights", Path.Combine(folder, "weights.safetensors"),
                    "--inputs", Path.Combine(folder, "x.npy"), "--cotangent", Path.Combine(folder, "c.npy"), "--method", method, "--out", outPath };
                args.AddRange(TorchAgreementTests.StateArgs(c, folder));
                if (dbl)
                {
                    args.AddRange(["--atol", "1e-13", "--rtol", "1e-13"]);
                }

                Cli.Outcome r = Cli.Run([.. args]);
                if (r.ExitCode != 0)
                {
                    failures.Add($"{name} grad {method}: {r}");
                    continue;
                }

                SafetensorsFile actual = SafetensorsFile.Read(outPath);
                if (!actual.Keys.Order(StringComparer.Ordinal).SequenceEqual(autograd.Keys.Order(StringComparer.Ordinal)))
                {
                    failures.Add($"{name} grad {method}: keys {string.Join(",", actual.Keys)} vs autograd's {string.Join(",", autograd.Keys)}");
                    continue;
                }

                foreach (string key in autograd.Keys)
                {
                    TensorData e = autograd.Get(key), a = actual.Get(key);
                    double[] ev = e.ToArray<double>(), av = a.ToArray<double>();
                    double scale = Math.Max(1e-300, ev.Max(Math.Abs)), diff = TorchAgreementTests.MaxAbsDiff(ev, av), tolerance = dbl ? 1e-8 : 1e-3;
                    compared++;
                    if (!e.Shape.SequenceEqual(a.Shape) || !(diff <= tolerance * scale))
                    {
                        failures.Add($"{name} grad {method} {key}: shape {a.ShapeText} vs {e.ShapeText}, relative difference {diff / scale:G3} (tolerance {tolerance:G1})");
                    }
                }
            }
        }

        Assert.Equal(72, runs);
        Assert.True(compared > 100, $"only {compared} tensors compared");
        Assert.True(failures.Count == 0, $"seed {seed}:\n" + string.Join("\n", failures));
    }

    [Fact]
    public void Shape_errors_name_the_key_and_both_shapes()
    {
        var rnd = new Random(3);
        double[] Draw(int count) => [.. Enumerable.Range(0, count).Select(_ => rnd.NextDouble() - 0.5)];
        var tensors = new Dictionary<string, TensorData>
        {
            ["weight_ih_l0"] = TensorData.FromDouble(Draw(18), 18 / 3 * 3, 1),
            ["weight_hh_l0"] = TensorData.FromDouble(Draw(18 * 4), 18, 4),
        };
        SafetensorsFile.Write(_dir.File("w.safetensors"), tensors);
        Npy.Write(_dir.File("x.npy"), TensorData.FromDouble(Draw(10), 10, 1));
        string[] Args(params string[] extra) =>
            ["run", "--cell", "diag-gru", "--weights", _dir.File("w.safetensors"), "--inputs", _dir.File("x.npy"), "--out", _dir.File("h.npy"), .. extra];

        // n = 6, k = 4: the block size must divide n.
        Cli.Outcome r = Cli.Run(Args());
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("weight_hh_l0", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("[18, 4]", r.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(_dir.File("h.npy")));

        tensors["weight_hh_l0"] = TensorData.FromDouble(Draw(18 * 2), 18, 2);
        SafetensorsFile.Write(_dir.File("w.safetensors"), tensors);
        r = Cli.Run(Args("--block-size", "3"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("weight_hh_l0", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("[18, 3]", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("[18, 2]", r.Stderr, StringComparison.Ordinal);

        r = Cli.Run(Args("--block-size", "2"));
        Assert.True(r.ExitCode == 0, r.ToString());

        r = Cli.Run(["run", "--cell", "gru", "--weights", _dir.File("w.safetensors"), "--inputs", _dir.File("x.npy"), "--out", _dir.File("g.npy"), "--block-size", "2"]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--block-size", r.Stderr, StringComparison.Ordinal);
    }
}
