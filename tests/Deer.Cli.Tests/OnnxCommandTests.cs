using System.Text.Json;
using DeerSharp.IO;
using Google.Protobuf;
using Onnx;

namespace DeerSharp.Cli.Tests;

/// <summary>
/// The CLI's ONNX surface: `deer run --model` on PyTorch's exports (the first output at --out, the others beside it, all
/// equal to PyTorch's), `deer run --cell` on bidirectional and time-major state_dicts (output, h_n, c_n as PyTorch
/// names them), `deer export` read back by ONNX Runtime, and every refusal: exit 2, one line naming the file, node,
/// attribute or input, and nothing written.
/// </summary>
public class OnnxCommandTests
{
    [TorchFact]
    public void Run_and_export_reproduce_PyTorch()
    {
        using var dir = new TempDir();
        int seed = Random.Shared.Next();
        string script = Path.Combine(AppContext.BaseDirectory, "python", "onnx_fixtures.py");
        (int code, string log) = PythonTorch.Run(PythonTorch.Interpreter!, [script, dir.Path, seed.ToString(System.Globalization.CultureInfo.InvariantCulture)], TimeSpan.FromMinutes(5));
        Assert.True(code == 0, log);
        using JsonDocument cases = JsonDocument.Parse(File.ReadAllText(dir.File("cases.json")));
        var failures = new List<string>();
        foreach (JsonElement c in cases.RootElement.EnumerateArray().Where(c => c.GetProperty("dtype").GetString() == "float32"))
        {
            string name = c.GetProperty("name").GetString()!, folder = Path.Combine(dir.Path, name), cell = c.GetProperty("kind").GetString()!;
            bool h0 = c.GetProperty("h0").GetBoolean(), lstm = cell == "lstm";
            string[] outputs = lstm ? ["y", "h_n", "c_n"] : ["y", "h_n"];

            // 1. The ONNX export.
            string runs = Directory.CreateDirectory(Path.Combine(folder, "model-run")).FullName;
            var args = new List<string> { "run", "--model", Path.Combine(folder, "model.onnx"), "--inputs", Path.Combine(folder, "x.npy"), "--out", Path.Combine(runs, "y.npy") };
            if (h0)
            {
                args.AddRange(["--input", $"h0={Path.Combine(folder, "h0.npy")}"]);
                if (lstm)
                {
                    args.AddRange(["--input", $"c0={Path.Combine(folder, "c0.npy")}"]);
                }
            }

            Check(failures, $"{name} --model", Cli.Run([.. args]), runs, folder, outputs, outputs);

            // 2. The state_dict, as PyTorch's module (bidirectional and time-major included).
            string module = Directory.CreateDirectory(Path.Combine(folder, "module-run")).FullName;
            args = ["run", "--cell", cell, "--weights", Path.Combine(folder, "weights.safetensors"), "--inputs", Path.Combine(folder, "x.npy"),
                "--out", Path.Combine(module, "output.npy")];
            if (!c.GetProperty("batch_first").GetBoolean())
            {
                args.Add("--time-major");
            }

            if (h0)
            {
                args.AddRange(["--h0", Path.Combine(folder, "h0.npy")]);
                if (lstm)
                {
                    args.AddRange(["--c0", Path.Combine(folder, "c0.npy")]);
                }
            }

            Check(failures, $"{name} --cell", Cli.Run([.. args]), module, folder, ["output", .. outputs.Skip(1)], outputs);

            // 3. deer export, run by ONNX Runtime.
            args = ["export", "--cell", cell, "--weights", Path.Combine(folder, "weights.safetensors"), "--out", Path.Combine(folder, "deer.onnx")];
            if (!c.GetProperty("batch_first").GetBoolean())
            {
                args.Add("--time-major");
            }

            if (h0)
            {
                args.Add("--initial-states");
            }

            Cli.Outcome export = Cli.Run([.. args]);
            if (export.ExitCode != 0)
            {
                failures.Add($"{name} export: {export}");
                continue;
            }

            var inputs = new Dictionary<string, TensorData> { ["input"] = Npy.Read(Path.Combine(folder, "x.npy")) };
            if (h0)
            {
                inputs["h0"] = Npy.Read(Path.Combine(folder, "h0.npy"));
                if (lstm)
                {
                    inputs["c0"] = Npy.Read(Path.Combine(folder, "c0.npy"));
                }
            }

            Dictionary<string, TensorData> ort = OnnxTorchTests.OnnxRuntimeRun(Path.Combine(folder, "deer.onnx"), inputs);
            OnnxTorchTests.Compare(failures, $"{name} export by ONNX Runtime", ort["output"], Npy.Read(Path.Combine(folder, "y.npy")), 1e-4);
        }

        Assert.True(failures.Count == 0, $"seed {seed}:\n{string.Join('\n', failures)}");
    }

    [Fact]
    public void The_demo_writes_an_ONNX_model_that_ONNX_Runtime_and_deer_run_agree_on()
    {
        using var dir = new TempDir();
        int seed = Random.Shared.Next();
        Cli.Outcome demo = Cli.Run("demo", "--length", "300", "--seed", seed.ToString(System.Globalization.CultureInfo.InvariantCulture), "--onnx", dir.File("demo.onnx"));
        Assert.True(demo.ExitCode == 0, demo.ToString());
        Assert.Contains("and so does the ONNX model", demo.Stdout, StringComparison.Ordinal);

        // Fresh inputs (batch 3), run by ONNX Runtime and by deer run --model; tolerance 1e-4 in float32.
        var random = new Random(seed);
        float[] x = [.. Enumerable.Range(0, 3 * 300 * 4).Select(_ => (float)(random.NextDouble() * 2 - 1))];
        Npy.Write(dir.File("x.npy"), TensorData.FromSingle(x, 3, 300, 4));
        Dictionary<string, TensorData> ort = OnnxTorchTests.OnnxRuntimeRun(dir.File("demo.onnx"), new Dictionary<string, TensorData> { ["input"] = Npy.Read(dir.File("x.npy")) });
        Cli.Outcome run = Cli.Run("run", "--model", dir.File("demo.onnx"), "--inputs", dir.File("x.npy"), "--method", "deer", "--out", dir.File("y.npy"));
        Assert.True(run.ExitCode == 0, run.ToString());
        var failures = new List<string>();
        OnnxTorchTests.Compare(failures, "output", Npy.Read(dir.File("y.npy")), ort["output"], 1e-4);
        OnnxTorchTests.Compare(failures, "h_n", Npy.Read(dir.File("h_n.npy")), ort["h_n"], 1e-4);
        Assert.True(failures.Count == 0, $"seed {seed}:\n{string.Join('\n', failures)}");
    }

    private static void Check(List<string> failures, string what, Cli.Outcome r, string folder, string expectedFolder, string[] files, string[] expected)
    {
        if (r.ExitCode != 0)
        {
            failures.Add($"{what}: {r}");
            return;
        }

        for (int i = 0; i < files.Length; i++)
        {
            string path = Path.Combine(folder, files[i] + ".npy");
            if (!File.Exists(path))
            {
                failures.Add($"{what}: {files[i]}.npy was not written ({r.Stdout.Trim()})");
                continue;
            }

            OnnxTorchTests.Compare(failures, $"{what} {files[i]}", Npy.Read(path), Npy.Read(Path.Combine(expectedFolder, expected[i] + ".npy")), 1e-4);
        }
    }

    public static TheoryData<string, string> Refusals() => new()
    {
        { "unknown-op", "node 'an Add' (Add)" },
        { "clip", "attribute 'clip'" },
        { "activations", "attribute 'activations'" },
        { "truncated", "not an ONNX model" },
        { "npy", "not an ONNX model" },
        { "torch-save", "torch.save" },
        { "wrong-shape", "input 'X' must have shape [7, 2, 3]; it has [7, 2, 4]" },
        { "missing-input", "'sequence_lens'" },
        { "unknown-input", "has no input 'nope'" },
        { "external", "external file" },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public void What_Deer_does_not_run_is_refused_with_its_name_and_nothing_is_written(string kind, string expected)
    {
        using var dir = new TempDir();
        var spec = new OnnxNodeTests.NodeSpec
        {
            Op = "GRU", Direction = "forward", LinearBeforeReset = true, T = 7, B = 2, I = 3, H = 4, W = new float[3 * 4 * 3], R = new float[3 * 4 * 4],
            X = new float[7 * 2 * 3], Lengths = kind == "missing-input" ? [7, 5] : null,
        };
        ModelProto model = spec.Model(layout: 0);
        NodeProto node = model.Graph.Node[0];
        switch (kind)
        {
            case "unknown-op":
                model.Graph.Node.Add(new NodeProto { OpType = "Add", Name = "an Add", Input = { "Y", "Y" }, Output = { "Z" } });
                break;
            case "clip":
                node.Attribute.Add(new AttributeProto { Name = "clip", Type = AttributeProto.Types.AttributeType.Float, F = 3 });
                break;
            case "activations":
                node.Attribute.Add(new AttributeProto { Name = "activations", Type = AttributeProto.Types.AttributeType.Strings, Strings = { ByteString.CopyFromUtf8("Relu"), ByteString.CopyFromUtf8("Tanh") } });
                break;
            case "external":
                model.Graph.Initializer[0].DataLocation = TensorProto.Types.DataLocation.External;
                break;
        }

        string path = dir.File("m.onnx");
        byte[] bytes = model.ToByteArray();
        switch (kind)
        {
            case "truncated":
                bytes = bytes[..(bytes.Length / 2)];
                break;
            case "npy":
                Npy.Write(path, TensorData.FromSingle([1, 2, 3], 3));
                bytes = File.ReadAllBytes(path);
                break;
            case "torch-save":
                bytes = [(byte)'P', (byte)'K', 3, 4, .. new byte[60]];
                break;
        }

        File.WriteAllBytes(path, bytes);
        Npy.Write(dir.File("x.npy"), TensorData.FromSingle(new float[7 * 2 * (kind == "wrong-shape" ? 4 : 3)], 7, 2, kind == "wrong-shape" ? 4 : 3));
        string[] extra = kind == "unknown-input" ? ["--input", $"nope={dir.File("x.npy")}"] : [];
        Cli.Outcome r = Cli.Run(["run", "--model", path, "--inputs", dir.File("x.npy"), "--out", dir.File("y.npy"), .. extra]);
        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains(expected, r.Stderr, StringComparison.Ordinal);
        Assert.Contains("m.onnx", r.Stderr, StringComparison.Ordinal);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.False(File.Exists(dir.File("y.npy")), "an output was written");
        Assert.Empty(Directory.EnumerateFiles(dir.Path, ".*"));
    }

    [Fact]
    public void A_torch_save_file_given_as_weights_says_what_it_is()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("gru.pt"), [(byte)'P', (byte)'K', 3, 4, .. new byte[60]]);
        Npy.Write(dir.File("x.npy"), TensorData.FromSingle(new float[12], 4, 3));
        Cli.Outcome r = Cli.Run("run", "--cell", "gru", "--weights", dir.File("gru.pt"), "--inputs", dir.File("x.npy"), "--out", dir.File("y.npy"));
        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains("torch.save", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("scripts/torch-to-safetensors.py", r.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(dir.File("y.npy")));
    }
}
