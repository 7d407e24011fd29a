using DeerSharp.Tests;
using DeerSharp.Cells;
using DeerSharp.IO;

namespace DeerSharp.Cli.Tests;

/// <summary>`deer run` and `deer grad` for GILR and GILR-LSTM, single layers and stacks, against the library's loop.</summary>
public sealed class SurrogateCommandTests : IDisposable
{
    private readonly TempDir _dir = new();
    private const int T = 90, D = 4, N = 5, B = 2;

    public void Dispose() => _dir.Dispose();

    private static void AddGilr(Dictionary<string, TensorData> t, string p, GilrWeights<double> w)
    {
        t[p + "gate.weight"] = TensorData.FromDouble(w.GateWeight, w.HiddenSize, w.InputSize);
        t[p + "gate.bias"] = TensorData.FromDouble(w.GateBias, w.HiddenSize);
        t[p + "impulse.weight"] = TensorData.FromDouble(w.ImpulseWeight, w.HiddenSize, w.InputSize);
        t[p + "impulse.bias"] = TensorData.FromDouble(w.ImpulseBias, w.HiddenSize);
    }

    [Theory]
    [InlineData("gilr", 1)]
    [InlineData("gilr", 2)]
    [InlineData("gilr-lstm", 1)]
    [InlineData("gilr-lstm", 2)]
    public void Run_and_grad_match_the_library(string cell, int layers) => Seeded.Run(rnd =>
    {
        var tensors = new Dictionary<string, TensorData>();
        var gilr = new List<GilrWeights<double>>();
        var lstm = new List<GilrLstmWeights<double>>();
        for (int k = 0; k < layers; k++)
        {
            string p = layers == 1 ? "" : $"{k}.";
            int d = k == 0 ? D : N;
            if (cell == "gilr")
            {
                gilr.Add(GilrWeights<double>.Random(N, d, rnd));
                AddGilr(tensors, p, gilr[^1]);
            }
            else
            {
                lstm.Add(GilrLstmWeights<double>.Random(N, d, rnd));
                AddGilr(tensors, p + "surrogate.", lstm[^1].Surrogate);
                tensors[p + "weight_ih"] = TensorData.FromDouble(lstm[^1].WeightIH, 4 * N, d);
                tensors[p + "weight_hh"] = TensorData.FromDouble(lstm[^1].WeightHH, 4 * N, N);
                tensors[p + "bias"] = TensorData.FromDouble(lstm[^1].Bias, 4 * N);
            }
        }

        SafetensorsFile.Write(_dir.File("w.safetensors"), tensors);
        double[] x = [.. Enumerable.Range(0, B * T * D).Select(_ => rnd.NextDouble() * 2 - 1)];
        double[] c = [.. Enumerable.Range(0, B * T * N).Select(_ => rnd.NextDouble() * 2 - 1)];
        Npy.Write(_dir.File("x.npy"), TensorData.FromDouble(x, B, T, D));
        Npy.Write(_dir.File("c.npy"), TensorData.FromDouble(c, B, T, N));
        var loop = new SolveOptions { Method = SolveMethod.Sequential };
        SolveResult<double> expected = cell == "gilr"
            ? Deer.Solve(new StackedCells<GilrCell<double>, double>([.. gilr.Select(w => new GilrCell<double>(w))]), x, B, T, loop)
            : Deer.Solve(new StackedCells<GilrLstmCell<double>, double>([.. lstm.Select(w => new GilrLstmCell<double>(w))]), x, B, T, loop);

        foreach (string method in new[] { "scan", "auto", "sequential" })
        {
            Cli.Outcome r = Cli.Run("run", "--cell", cell, "--weights", _dir.File("w.safetensors"), "--inputs", _dir.File("x.npy"),
                "--method", method, "--out", _dir.File($"h-{method}.npy"));
            Assert.True(r.ExitCode == 0, $"{method}: {r}");
            double[] h = Npy.Read(_dir.File($"h-{method}.npy")).ToArray<double>();
            Assert.True(h.Zip(expected.Outputs()).Max(p => Math.Abs(p.First - p.Second)) <= 1e-10, method);
        }

        Cli.Outcome g = Cli.Run("grad", "--cell", cell, "--weights", _dir.File("w.safetensors"), "--inputs", _dir.File("x.npy"),
            "--cotangent", _dir.File("c.npy"), "--method", "scan", "--out", _dir.File("g.safetensors"));
        Assert.True(g.ExitCode == 0, g.ToString());
        SafetensorsFile grads = SafetensorsFile.Read(_dir.File("g.safetensors"));
        Assert.Equal([.. tensors.Keys.Append("inputs").Order(StringComparer.Ordinal)], grads.Keys.Order(StringComparer.Ordinal));
        GradientResult<double> lib = cell == "gilr"
            ? Deer.Gradient(new StackedCells<GilrCell<double>, double>([.. gilr.Select(w => new GilrCell<double>(w))]), x, B, T, c, loop)
            : Deer.Gradient(new StackedCells<GilrLstmCell<double>, double>([.. lstm.Select(w => new GilrLstmCell<double>(w))]), x, B, T, c, loop);
        double[] gx = grads.Get("inputs").ToArray<double>();
        Assert.True(gx.Zip(lib.InputGradient).Max(p => Math.Abs(p.First - p.Second)) <= 1e-9);
        string first = layers == 1 ? "" : "0.";
        double[] gg = grads.Get(first + (cell == "gilr" ? "gate.weight" : "surrogate.gate.weight")).ToArray<double>();
        Assert.True(gg.Zip(lib.LayerParameterGradients[0]).Max(p => Math.Abs(p.First - p.Second)) <= 1e-9);
    });

    [Fact]
    public void C0_is_refused_for_gilr_and_missing_keys_are_named()
    {
        var tensors = new Dictionary<string, TensorData>();
        AddGilr(tensors, "", GilrWeights<double>.Random(N, D, new Random(1)));
        SafetensorsFile.Write(_dir.File("w.safetensors"), tensors);
        Npy.Write(_dir.File("x.npy"), TensorData.FromDouble(new double[T * D], T, D));
        Npy.Write(_dir.File("c0.npy"), TensorData.FromDouble(new double[N], 1, N));
        Cli.Outcome c0 = Cli.Run("run", "--cell", "gilr", "--weights", _dir.File("w.safetensors"), "--inputs", _dir.File("x.npy"), "--c0", _dir.File("c0.npy"), "--out", _dir.File("h.npy"));
        Assert.Equal(2, c0.ExitCode);
        Cli.Outcome missing = Cli.Run("run", "--cell", "gilr-lstm", "--weights", _dir.File("w.safetensors"), "--inputs", _dir.File("x.npy"), "--out", _dir.File("h.npy"));
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("surrogate.gate.weight", missing.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(_dir.File("h.npy")));
    }
}
