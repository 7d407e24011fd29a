using System.Globalization;
using System.Text;
using System.Text.Json;
using DeerSharp.IO;
using DeerSharp.Onnx;

namespace DeerSharp.Cli.Bench;

/// <summary>
/// `deer bench --only onnx-cold`: an ONNX model as a .NET service meets it the first time. For the GRU and the LSTM
/// (float32, d = n = 32, T = 65,536), exported by torch.onnx.export (Deer's own export, with a note, where PyTorch is
/// missing), it runs, as fresh processes in interleaved rounds, `deer run --model --method auto` and the ONNX Runtime
/// peer (benchmarks/peers/OrtPeer: InferenceSession with default options, one Run). It reports each side's whole
/// process and its first inference (Deer: loading the model and the solve; ONNX Runtime: creating the session and
/// the first Run), and checks that both outputs agree.
/// </summary>
internal static class OnnxColdBench
{
    public sealed record Row(string Case, string Exporter, string Method, Stopwatches.Timing DeerProcess, Stopwatches.Timing DeerFirst,
        Stopwatches.Timing OrtProcess, Stopwatches.Timing OrtFirst, string OrtVersion, double MaxDiff)
    {
        public double ProcessRatio => OrtProcess.Median / DeerProcess.Median;

        public double FirstRatio => OrtFirst.Median / DeerFirst.Median;
    }

    /// <summary>The ONNX Runtime peer's dll: <paramref name="given"/>, DEER_ORT_PEER, or the build beside this repository's sources.</summary>
    public static string? FindPeer(string? given)
    {
        if (given is not null)
        {
            return File.Exists(given) ? Path.GetFullPath(given) : throw new UsageException($"--ort-peer {given}: no such file (build benchmarks/peers/OrtPeer; its dll is ort-peer.dll).");
        }

        if (Environment.GetEnvironmentVariable("DEER_ORT_PEER") is { Length: > 0 } env && File.Exists(env))
        {
            return env;
        }

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            foreach (string configuration in new[] { "Release", "Debug" })
            {
                string path = Path.Combine(dir.FullName, "benchmarks", "peers", "OrtPeer", "bin", configuration, "net10.0", "ort-peer.dll");
                if (File.Exists(path))
                {
                    return path;
                }
            }
        }

        return null;
    }

    /// <summary>
    /// Writes the one-layer module and its inputs [B, T, d] into <paramref name="dir"/> and exports the module as ONNX with
    /// torch.onnx.export, or with Deer's <see cref="OnnxExport"/> (the same graph; <paramref name="note"/> says why) where
    /// PyTorch cannot. Returns the model's path, the inputs' path and who exported it.
    /// </summary>
    public static (string Model, string Inputs, string Exporter) Prepare(string dir, string cell, RecurrentWeights<float> weights, float[] x, int batch,
        int length, TorchPeer? torch, ref string? note)
    {
        string stem = string.Create(CultureInfo.InvariantCulture, $"{cell}-d{weights.InputSize}-n{weights.HiddenSize}-T{length}-B{batch}");
        string w = Path.Combine(dir, stem + ".safetensors"), xs = Path.Combine(dir, stem + ".npy"), model = Path.Combine(dir, stem + ".onnx");
        TorchPeer.WriteModule(w, weights);
        Npy.Write(xs, TensorData.FromSingle(x, batch, length, weights.InputSize));
        if (torch is not null && torch.ExportOnnx(cell, w, xs, model))
        {
            return (model, xs, "torch.onnx.export");
        }

        note ??= $"PyTorch could not export the models ({torch?.Why ?? "PyTorch peer skipped"}), so Deer's own export (the same graph) was used";
        OnnxExport.Write(model, cell == "gru" ? RecurrentKind.Gru : RecurrentKind.Lstm, [[weights]]);
        return (model, xs, "Deer's OnnxExport");
    }

    public static List<Row> Run(bool quick, int repeats, TorchPeer? torch, string? peer, TextWriter log, out string? note)
    {
        const int N = 32;
        int length = quick ? 4096 : 65536;
        var rows = new List<Row>();
        note = null;
        if (peer is null)
        {
            note = "the ONNX Runtime peer was not found: build it with `dotnet build -c Release benchmarks/peers/OrtPeer` or pass --ort-peer";
            log.WriteLine($"onnx-cold: skipped ({note})");
            return rows;
        }

        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"onnx-cold: `deer run --model --method auto` and ONNX Runtime's first run, each a fresh process, {repeats} interleaved rounds, float32, d = n = {N}, T = {length}"));
        string dir = Path.Combine(Path.GetTempPath(), "deer-onnx-cold-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            foreach (string cell in new[] { "gru", "lstm" })
            {
                var rnd = new Random(cell == "gru" ? 32 : 33);
                var weights = RecurrentWeights<float>.Random(cell == "gru" ? 3 : 4, N, N, rnd);
                float[] x = [.. Enumerable.Range(0, length * N).Select(_ => (float)((rnd.NextDouble() * 2) - 1))];
                (string model, string xs, string exporter) = Prepare(dir, cell, weights, x, 1, length, torch, ref note);

                string deerOut = Path.Combine(dir, "deer.npy"), ortOut = Path.Combine(dir, "ort.npy"), report = Path.Combine(dir, "r.json");
                string[] deerArgs = ["run", "--model", model, "--inputs", xs, "--method", "auto", "--out", deerOut, "--report", report];
                string[] ortArgs = ["--model", model, "--inputs", xs, "--out", ortOut];

                // One uncounted round puts both programs and their libraries in the page cache.
                Processes.RunSelf(deerArgs);
                Processes.RunDotnet(peer, ortArgs, out _);
                double[] deerProcess = new double[repeats], deerFirst = new double[repeats], ortProcess = new double[repeats], ortFirst = new double[repeats];
                string method = "?", version = "?";
                for (int i = 0; i < repeats; i++)
                {
                    // Alternate which side goes first, so that neither always runs on a machine the other just warmed.
                    if (i % 2 == 0)
                    {
                        Deer(i);
                        Ort(i);
                    }
                    else
                    {
                        Ort(i);
                        Deer(i);
                    }
                }

                void Deer(int i)
                {
                    deerProcess[i] = Processes.RunSelf(deerArgs);
                    using JsonDocument json = JsonDocument.Parse(File.ReadAllText(report));
                    deerFirst[i] = json.RootElement.GetProperty("load_seconds").GetDouble() + json.RootElement.GetProperty("solve_seconds").GetDouble();
                    method = string.Join("+", json.RootElement.GetProperty("solves").EnumerateArray().Select(s => s.GetProperty("method").GetString()).Distinct());
                }

                void Ort(int i)
                {
                    ortProcess[i] = Processes.RunDotnet(peer, ortArgs, out string stdout);
                    using JsonDocument json = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
                    ortFirst[i] = json.RootElement.GetProperty("session_seconds").GetDouble() + json.RootElement.GetProperty("first_run_seconds").GetDouble();
                    version = json.RootElement.GetProperty("ort").GetString() ?? "?";
                }

                double diff = BenchCommand.MaxDiff(Npy.Read(deerOut).ToArray<float>(), Npy.Read(ortOut).ToArray<float>());
                var row = new Row(string.Create(CultureInfo.InvariantCulture, $"{cell.ToUpperInvariant()} n={N} d={N} T={length} B=1 float32"), exporter, method,
                    Stopwatches.Timing.Of(deerProcess), Stopwatches.Timing.Of(deerFirst), Stopwatches.Timing.Of(ortProcess), Stopwatches.Timing.Of(ortFirst), version, diff);
                rows.Add(row);
                log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {cell,-4} deer process {row.DeerProcess.Median * 1e3:F0} ms (load + solve {row.DeerFirst.Median * 1e3:F0} ms)  ONNX Runtime process {row.OrtProcess.Median * 1e3:F0} ms (session + first run {row.OrtFirst.Median * 1e3:F0} ms)  ORT/Deer x{row.ProcessRatio:F2} process, x{row.FirstRatio:F2} first inference  max |Δ| {diff:G2}"));
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }

        return rows;
    }

    public static void Markdown(StringBuilder md, List<Row> rows, string? note)
    {
        var c = CultureInfo.InvariantCulture;
        if (rows.Count == 0)
        {
            if (note is not null)
            {
                md.Append(c, $"\n## Cold start with an ONNX model\n\nNot measured: {note}.\n");
            }

            return;
        }

        md.Append(c, $"\n## Cold start with an ONNX model: `deer run --model` against ONNX Runtime {rows[0].OrtVersion}'s first run, each a fresh process\n\n");
        md.Append("| case | exported by | Deer method | Deer process (ms) | Deer load + solve (ms) | ONNX Runtime process (ms) | ORT session + first Run (ms) | ORT / Deer, process | ORT / Deer, first inference | max \\|Δ\\| |\n|---|---|---|---|---|---|---|---|---|---|\n");
        foreach (Row r in rows)
        {
            md.Append(c, $"| {r.Case} | {r.Exporter} | auto ({r.Method}) | {r.DeerProcess.Median * 1e3:F0} ({r.DeerProcess.Min * 1e3:F0}-{r.DeerProcess.UpperQuartile * 1e3:F0}) | {r.DeerFirst.Median * 1e3:F0} | ");
            md.Append(c, $"{r.OrtProcess.Median * 1e3:F0} ({r.OrtProcess.Min * 1e3:F0}-{r.OrtProcess.UpperQuartile * 1e3:F0}) | {r.OrtFirst.Median * 1e3:F0} | {r.ProcessRatio:F2}x | {r.FirstRatio:F2}x | {r.MaxDiff:G2} |\n");
        }

        md.Append("\nMedians over interleaved rounds of fresh processes (min-upper quartile in brackets). Process: start to exit, reading x.npy and writing the output included. ");
        md.Append("First inference: Deer's report (load_seconds + solve_seconds) and the peer's (InferenceSession creation + the first Run). Above 1x, Deer is faster.\n");
        if (note is not null)
        {
            md.Append(c, $"Note: {note}.\n");
        }
    }

    public static void Json(Utf8JsonWriter w, List<Row> rows) =>
        ReportJson.Rows(w, "onnx_cold", rows, r => [
            ("case", r.Case), ("exported_by", r.Exporter), ("method", r.Method), ("deer_process_seconds_median", r.DeerProcess.Median),
            ("deer_first_inference_seconds_median", r.DeerFirst.Median), ("ort_process_seconds_median", r.OrtProcess.Median),
            ("ort_first_inference_seconds_median", r.OrtFirst.Median), ("ort_over_deer_process", r.ProcessRatio), ("ort_over_deer_first_inference", r.FirstRatio),
            ("onnxruntime", r.OrtVersion), ("max_abs_diff", r.MaxDiff),
        ]);
}
