using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using DeerSharp.IO;

namespace DeerSharp.Cli.Bench;

/// <summary>Runs benchmarks/peers/torch_rnn.py (embedded in the tool) on the same weights and inputs as Deer.</summary>
internal sealed class TorchPeer(string? python)
{
    public sealed record Result(double MedianSeconds, double MinSeconds, int Threads, string TorchVersion, float[] Output);

    public string? Python { get; } = python ?? Find();

    public string? Why { get; private set; }

    private static string? Find()
    {
        foreach (string? candidate in new[] { Environment.GetEnvironmentVariable("DEER_PYTHON"), "/usr/bin/python3", "python3" })
        {
            if (!string.IsNullOrEmpty(candidate) && Run(candidate, ["-c", "import torch, numpy"], out _) == 0)
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>
    /// Times forward and backward of sum(cotangent ⊙ output) by autograd on the CPU (torch_rnn.py --backward); the result's
    /// output is the parameter gradient in Deer's order. Null (with <see cref="Why"/>) as <see cref="Time"/>.
    /// </summary>
    public Result? TimeBackward(string cell, RecurrentWeights<float> weights, float[] inputs, float[] cotangent, int batch, int length, int repeats) =>
        Time(cell, weights, inputs, batch, length, repeats, cotangent: cotangent);

    /// <summary>Times the module; null (with <see cref="Why"/>) when Python with torch is missing or the peer fails.</summary>
    public Result? Time(string cell, RecurrentWeights<float> weights, float[] inputs, int batch, int length, int repeats, string device = "cpu",
        string scriptName = "torch_rnn.py", float[]? cotangent = null, params string[] extra)
    {
        if (Python is null)
        {
            Why = "no Python with torch and numpy (install Debian's python3-torch, or pass --python)";
            return null;
        }

        string dir = Path.Combine(Path.GetTempPath(), "deer-bench-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string script = Extract(dir, scriptName);

            int d = weights.InputSize;
            WriteModule(Path.Combine(dir, "w.safetensors"), weights);
            Npy.Write(Path.Combine(dir, "x.npy"), TensorData.FromSingle(inputs, batch, length, d));
            if (cotangent is not null)
            {
                Npy.Write(Path.Combine(dir, "c.npy"), TensorData.FromSingle(cotangent, batch, length, weights.HiddenSize));
                extra = [.. extra, "--backward", Path.Combine(dir, "c.npy")];
            }

            bool torch = scriptName == "torch_rnn.py";
            string[] args = [script, .. torch ? new[] { "--cell", cell, "--device", device } : [], "--weights", Path.Combine(dir, "w.safetensors"),
                "--inputs", Path.Combine(dir, "x.npy"), "--out", Path.Combine(dir, "y.npy"), "--repeats", repeats.ToString(CultureInfo.InvariantCulture), .. extra];
            if (Run(Python, args, out string output) != 0)
            {
                Why = $"{scriptName} failed: {output.Trim().Split('\n')[^1]}";
                return null;
            }

            using JsonDocument json = JsonDocument.Parse(output.Trim().Split('\n')[^1]);
            JsonElement r = json.RootElement;
            string version = r.TryGetProperty("torch", out JsonElement t) ? t.GetString()! : r.TryGetProperty("jax", out JsonElement j) ? "jax " + j.GetString() : "?";
            int threads = r.TryGetProperty("threads", out JsonElement th) ? th.GetInt32() : 0;
            return new Result(r.GetProperty("median_seconds").GetDouble(), r.GetProperty("min_seconds").GetDouble(), threads, version,
                Npy.Read(Path.Combine(dir, "y.npy")).ToArray<float>());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// Writes the one-layer batch_first module in <paramref name="weightsPath"/> as ONNX with torch.onnx.export
    /// (torch_rnn.py --export-onnx); false (with <see cref="Why"/>) when Python with torch is missing or the export fails.
    /// </summary>
    public bool ExportOnnx(string cell, string weightsPath, string inputsPath, string onnxPath)
    {
        if (Python is null)
        {
            Why = "no Python with torch and numpy (install Debian's python3-torch, or pass --python)";
            return false;
        }

        string dir = Path.Combine(Path.GetTempPath(), "deer-export-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string script = Extract(dir, "torch_rnn.py");
            if (Run(Python, [script, "--cell", cell, "--weights", weightsPath, "--inputs", inputsPath, "--export-onnx", onnxPath], out string output) != 0
                || !File.Exists(onnxPath))
            {
                Why = $"torch_rnn.py --export-onnx failed: {output.Trim().Split('\n')[^1]}";
                return false;
            }

            return true;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Copies the embedded peer script into <paramref name="dir"/>; returns its path.</summary>
    private static string Extract(string dir, string scriptName)
    {
        string script = Path.Combine(dir, scriptName);
        using Stream resource = Assembly.GetExecutingAssembly().GetManifestResourceStream(scriptName)!;
        using FileStream file = File.Create(script);
        resource.CopyTo(file);
        return script;
    }

    /// <summary>One layer's weights as PyTorch's state_dict keys (weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0).</summary>
    public static void WriteModule(string path, RecurrentWeights<float> weights)
    {
        int g = weights.Gates, n = weights.HiddenSize, d = weights.InputSize;
        SafetensorsFile.Write(path, new Dictionary<string, TensorData>
        {
            ["weight_ih_l0"] = TensorData.FromSingle(weights.WeightIH, g * n, d),
            ["weight_hh_l0"] = TensorData.FromSingle(weights.WeightHH, g * n, n),
            ["bias_ih_l0"] = TensorData.FromSingle(weights.BiasIH, g * n),
            ["bias_hh_l0"] = TensorData.FromSingle(weights.BiasHH, g * n),
        });
    }

    private static int Run(string file, string[] args, out string output)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in args)
        {
            info.ArgumentList.Add(a);
        }

        try
        {
            using Process p = Process.Start(info)!;
            Task<string> stderr = p.StandardError.ReadToEndAsync();
            output = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            output += stderr.Result;
            return p.ExitCode;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            output = e.Message;
            return -1;
        }
    }
}
