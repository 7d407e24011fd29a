using System.Text.Json;
using DeerSharp.IO;
using DeerSharp.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace DeerSharp.Cli.Tests;

/// <summary>
/// ONNX models as <c>torch.onnx.export</c> writes them (tests/Deer.Cli.Tests/python/onnx_fixtures.py, fresh weights and
/// inputs on every run, the seed printed on failure): nn.RNN, nn.GRU and nn.LSTM, one or two layers, uni- and
/// bidirectional, batch_first and time-major, with and without biases and h0/c0 inputs, float32 and float64. Deer's run
/// of the graph matches PyTorch's own outputs (1e-4 in float32, 1e-9 in float64) and ONNX Runtime's on the same file
/// (float32; ONNX Runtime has no float64 GRU on the CPU), every output, with every method.
/// </summary>
public class OnnxTorchTests
{
    [TorchFact]
    public void Deer_runs_PyTorch_exports_as_PyTorch_and_OnnxRuntime_do()
    {
        using var dir = new TempDir();
        int seed = Random.Shared.Next();
        using JsonDocument cases = Fixtures(dir, seed);
        var failures = new List<string>();
        int compared = 0;
        foreach (JsonElement c in cases.RootElement.EnumerateArray())
        {
            string name = c.GetProperty("name").GetString()!, folder = Path.Combine(dir.Path, name);
            bool single = c.GetProperty("dtype").GetString() == "float32";
            double tolerance = single ? 1e-4 : 1e-9;
            var inputs = c.GetProperty("inputs").EnumerateArray().Select(e => e.GetString()!).ToDictionary(k => k, k => Npy.Read(Path.Combine(folder, $"{k}.npy")));
            string[] outputs = [.. c.GetProperty("outputs").EnumerateArray().Select(e => e.GetString()!)];
            OnnxModel model = OnnxModel.Load(Path.Combine(folder, "model.onnx"));
            Dictionary<string, TensorData>? reference = single ? OnnxRuntimeRun(Path.Combine(folder, "model.onnx"), inputs) : null;
            foreach (SolveMethod method in new[] { SolveMethod.Auto, SolveMethod.Sequential, SolveMethod.Deer, SolveMethod.QuasiDeer })
            {
                OnnxRunResult run = model.Run(inputs, new SolveOptions { Method = method, Fallback = FallbackPolicy.None, MaxIterations = 200 });
                if (!run.Converged)
                {
                    failures.Add($"{name} {method}: not converged: {string.Join("; ", run.Solves.Select(s => s.Message))}");
                    continue;
                }

                foreach (string output in outputs)
                {
                    TensorData actual = run.Outputs[output], torch = Npy.Read(Path.Combine(folder, $"{output}.npy"));
                    Compare(failures, $"{name} {method} {output} vs PyTorch", actual, torch, tolerance);
                    if (reference is not null)
                    {
                        Compare(failures, $"{name} {method} {output} vs ONNX Runtime", actual, reference[output], tolerance);
                    }

                    compared++;
                }
            }
        }

        Assert.True(failures.Count == 0, $"seed {seed}: {failures.Count} of {compared} comparisons failed:\n{string.Join('\n', failures)}");
        Assert.True(compared >= 100, $"seed {seed}: only {compared} comparisons");
    }

    internal static void Compare(List<string> failures, string what, TensorData actual, TensorData expected, double tolerance)
    {
        double[] a = actual.ToArray<double>(), e = expected.ToArray<double>();
        double diff = a.Length == e.Length ? a.Zip(e, (p, q) => Math.Abs(p - q)).DefaultIfEmpty(0).Max() : double.PositiveInfinity;
        if (!actual.Shape.SequenceEqual(expected.Shape) || !(diff <= tolerance))
        {
            failures.Add($"{what}: shape {actual.ShapeText} vs {expected.ShapeText}, max |Δ| {diff:G3} (tolerance {tolerance:G1})");
        }
    }

    /// <summary>ONNX Runtime's outputs on the same file and inputs (CPU, float32).</summary>
    internal static Dictionary<string, TensorData> OnnxRuntimeRun(string path, IReadOnlyDictionary<string, TensorData> inputs)
    {
        using var session = new InferenceSession(path);
        var values = inputs.Select(kv => kv.Key == "sequence_lens"
            ? NamedOnnxValue.CreateFromTensor(kv.Key, new DenseTensor<int>(kv.Value.ToArray<double>().Select(v => (int)v).ToArray(), kv.Value.Shape.ToArray()))
            : kv.Value.IsDouble
            ? NamedOnnxValue.CreateFromTensor(kv.Key, new DenseTensor<double>(kv.Value.ToArray<double>(), [.. kv.Value.Shape]))
            : NamedOnnxValue.CreateFromTensor(kv.Key, new DenseTensor<float>(kv.Value.ToArray<float>(), [.. kv.Value.Shape]))).ToList();
        using IDisposableReadOnlyCollection<DisposableNamedOnnxValue> results = session.Run(values);
        var outputs = new Dictionary<string, TensorData>();
        foreach (DisposableNamedOnnxValue r in results)
        {
            Tensor<float> t = r.AsTensor<float>();
            outputs[r.Name] = TensorData.FromSingle([.. t], [.. t.Dimensions]);
        }

        return outputs;
    }

    private static JsonDocument Fixtures(TempDir dir, int seed)
    {
        string script = Path.Combine(AppContext.BaseDirectory, "python", "onnx_fixtures.py");
        (int code, string output) = PythonTorch.Run(PythonTorch.Interpreter!, [script, dir.Path, seed.ToString(System.Globalization.CultureInfo.InvariantCulture)],
            TimeSpan.FromMinutes(5));
        Assert.True(code == 0, $"seed {seed}: onnx_fixtures.py failed: {output}");
        return JsonDocument.Parse(File.ReadAllText(Path.Combine(dir.Path, "cases.json")));
    }
}
