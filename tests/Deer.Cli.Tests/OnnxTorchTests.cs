using System.Text.Json;
using DeerSharp.IO;
using DeerSharp.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace DeerSharp.Cli.Tests;

/// <summary>
/// ONNX models as <c>torch.onnx.export</c> writes them (tests/Deer.Cli.Tests/python/onnx_fixtures.py, fresh weights and
/// inputs on every run, the seed printed on failure): nn.RNN, nn.GRU and nn.LSTM, one or two layers, uni- and
/// bidirectional, batch_first and time-major, with and without biases and h0/c0 inputs, float32 and float64, exported at opsets 9, 11, 13, 14 and 17. Deer's run
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

    /// <summary>
    /// The same modules from their state_dicts (safetensors), bidirectional and time-major included, run by
    /// <see cref="RecurrentModule{T}"/> as PyTorch runs them; and Deer's export of each, run by ONNX Runtime, gives the same
    /// numbers again (the round trip Deer → ONNX → ONNX Runtime = Deer).
    /// </summary>
    [TorchFact]
    public void Modules_from_state_dicts_and_their_exports_match_PyTorch()
    {
        using var dir = new TempDir();
        int seed = Random.Shared.Next();
        using JsonDocument cases = Fixtures(dir, seed);
        var failures = new List<string>();
        foreach (JsonElement c in cases.RootElement.EnumerateArray())
        {
            string name = c.GetProperty("name").GetString()!, folder = Path.Combine(dir.Path, name);
            bool single = c.GetProperty("dtype").GetString() == "float32", batchFirst = c.GetProperty("batch_first").GetBoolean();
            RecurrentKind kind = c.GetProperty("kind").GetString() switch { "rnn" => RecurrentKind.TanhRnn, "gru" => RecurrentKind.Gru, _ => RecurrentKind.Lstm };
            TensorData x = Npy.Read(Path.Combine(folder, "x.npy"));
            TensorData? h0 = File.Exists(Path.Combine(folder, "h0.npy")) ? Npy.Read(Path.Combine(folder, "h0.npy")) : null;
            TensorData? c0 = File.Exists(Path.Combine(folder, "c0.npy")) ? Npy.Read(Path.Combine(folder, "c0.npy")) : null;
            SafetensorsFile weights = SafetensorsFile.Read(Path.Combine(folder, "weights.safetensors"));
            double tolerance = single ? 1e-4 : 1e-9;
            RecurrentModuleResult run = single
                ? RecurrentModule<float>.Load(weights, kind, batchFirst: batchFirst).Run(x, h0, c0)
                : RecurrentModule<double>.Load(weights, kind, batchFirst: batchFirst).Run(x, h0, c0);
            Compare(failures, $"{name} output", run.Output, Npy.Read(Path.Combine(folder, "y.npy")), tolerance);
            Compare(failures, $"{name} h_n", run.FinalHidden, Npy.Read(Path.Combine(folder, "h_n.npy")), tolerance);
            if (run.FinalCell is not null)
            {
                Compare(failures, $"{name} c_n", run.FinalCell, Npy.Read(Path.Combine(folder, "c_n.npy")), tolerance);
            }

            if (single)
            {
                string exported = Path.Combine(folder, "deer.onnx");
                RecurrentModule<float>.Load(weights, kind, batchFirst: batchFirst).ExportOnnx(exported, initialStates: h0 is not null);
                var inputs = new Dictionary<string, TensorData> { ["input"] = x };
                if (h0 is not null)
                {
                    inputs["h0"] = h0;
                    if (c0 is not null)
                    {
                        inputs["c0"] = c0;
                    }
                }

                Dictionary<string, TensorData> ort = OnnxRuntimeRun(exported, inputs);
                Compare(failures, $"{name} export: ONNX Runtime's output vs Deer's", ort["output"], run.Output, tolerance);
                Compare(failures, $"{name} export: ONNX Runtime's h_n vs Deer's", ort["h_n"], run.FinalHidden, tolerance);
                OnnxRunResult again = OnnxModel.Load(exported).Run(inputs);
                Compare(failures, $"{name} export: Deer's run of its own export", again.Outputs["output"], run.Output, 0);
            }
        }

        Assert.True(failures.Count == 0, $"seed {seed}:\n{string.Join('\n', failures)}");
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
