using System.Globalization;
using System.Text;
using System.Text.Json;

namespace DeerSharp.Cli.Bench;

/// <summary>
/// `deer bench --only ort`: the warm race against ONNX Runtime. For each case (GRU and LSTM, the shapes of issue #24) one
/// PyTorch module with PyTorch's initialisation is exported to ONNX and run by the ONNX Runtime peer in race mode:
/// ONNX Runtime (IntraOpNumThreads = the machine's cores) and Deer (<c>OnnxModel.Run</c>, Method = Auto) in one process,
/// on the same file and inputs, one warm-up each, then interleaved rounds, with the JIT's tiering off (the code a
/// long-running service reaches). Medians, their ratio, and the largest difference between the two outputs.
/// </summary>
internal static class OrtRaceBench
{
    public sealed record Row(string Case, string Exporter, string Method, double OrtSeconds, double DeerSeconds, double MaxDiff, int Steps, int Threads, string OrtVersion,
        Roofline.Floor Floor)
    {
        public double Ratio => OrtSeconds / DeerSeconds;

        /// <summary>Deer's time per sequence-step over the floor's.</summary>
        public double OverFloor => DeerSeconds / Steps / Floor.Seconds;
    }

    /// <summary>The peaks the floors were computed from (measured once per run, before the races).</summary>
    public static Roofline.Peak? LastPeak { get; private set; }

    private static readonly (string Cell, int D, int N, int T, int B)[] Cases =
    [
        ("gru", 32, 32, 65536, 1), ("gru", 8, 8, 262144, 1), ("lstm", 32, 32, 65536, 1), ("gru", 64, 128, 16384, 1), ("gru", 32, 32, 4096, 16), ("lstm", 32, 32, 4096, 16),
    ];

    public static List<Row> Run(bool quick, int repeats, TorchPeer? torch, string? peer, TextWriter log, out string? note)
    {
        var rows = new List<Row>();
        note = null;
        if (peer is null)
        {
            note = "the ONNX Runtime peer was not found: build it with `dotnet build -c Release benchmarks/peers/OrtPeer` or pass --ort-peer";
            log.WriteLine($"ort: skipped ({note})");
            return rows;
        }

        log.WriteLine($"ort: ONNX Runtime against Deer (Method = Auto), warm, one process, {repeats} interleaved rounds per case, float32");
        Roofline.Peak peak = Roofline.Measure();
        LastPeak = peak;
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  this core: {peak.FmaPerSecond / 1e9:F0} GFMA/s ({peak.Bits}-bit, register-resident), {peak.FmaLatencySeconds * 1e9:F2} ns per dependent FMA, L2 reads {peak.L2BytesPerSecond / 1e9:F0} GB/s, {peak.ActivationSeconds * 1e9 * peak.Bits / 32:F1} ns per {peak.Bits}-bit σ or tanh"));
        string dir = Path.Combine(Path.GetTempPath(), "deer-ort-race-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            foreach ((string cell, int d, int n, int fullLength, int batch) in Cases)
            {
                int length = quick ? Math.Max(256, fullLength / 64) : fullLength;
                var random = new Random(24 + rows.Count);
                var weights = RecurrentWeights<float>.Random(cell == "gru" ? 3 : 4, n, d, random);
                float[] x = [.. Enumerable.Range(0, batch * length * d).Select(_ => (float)((random.NextDouble() * 2) - 1))];
                (string model, string inputs, string exporter) = OnnxColdBench.Prepare(dir, cell, weights, x, batch, length, torch, ref note);
                // Fully optimised code from the first call on both sides, as in a service that has run for a while (with the
                // default tiered JIT, Deer's loops ran as on-stack-replaced tier-0 code for the first rounds, up to 3x slower).
                Processes.RunDotnet(peer, ["--race", "--model", model, "--inputs", inputs, "--repeats", repeats.ToString(CultureInfo.InvariantCulture)], out string stdout,
                    ("DOTNET_TieredCompilation", "0"));
                using JsonDocument json = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
                JsonElement r = json.RootElement;
                var row = new Row(string.Create(CultureInfo.InvariantCulture, $"{cell.ToUpperInvariant()} d={d} n={n} T={length} B={batch}"), exporter,
                    r.GetProperty("deer_method").GetString() ?? "?", r.GetProperty("ort_median_seconds").GetDouble(), r.GetProperty("deer_median_seconds").GetDouble(),
                    r.GetProperty("max_abs_diff").GetDouble(), batch * length, r.GetProperty("ort_threads").GetInt32(), r.GetProperty("ort").GetString() ?? "?",
                    Roofline.For(cell == "gru" ? 3 : 4, n, d, batch, Environment.ProcessorCount, peak));
                rows.Add(row);
                log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {row.Case,-28} ONNX Runtime {row.OrtSeconds * 1e3,7:F1} ms  Deer {row.DeerSeconds * 1e3,7:F1} ms ({row.Method})  ORT/Deer x{row.Ratio:F2}  max |Δ| {row.MaxDiff:G2}  Deer {row.DeerSeconds * 1e9 / row.Steps:F0} ns/step, floor {row.Floor.Seconds * 1e9:F0} ({row.Floor.Bound}), x{row.OverFloor:F1}"));
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
                md.Append(c, $"\n## Warm against ONNX Runtime\n\nNot measured: {note}.\n");
            }

            return;
        }

        md.Append(c, $"\n## Warm against ONNX Runtime {rows[0].OrtVersion} ({rows[0].Threads} intra-op threads), one process, interleaved rounds\n\n");
        md.Append("| case | exported by | ONNX Runtime (ms) | Deer (ms) | Deer method | ORT / Deer | max \\|Δ\\| | Deer (ns per sequence-step) | floor (ns) | bound | Deer / floor |\n");
        md.Append("|---|---|---|---|---|---|---|---|---|---|---|\n");
        foreach (Row r in rows)
        {
            md.Append(c, $"| {r.Case} | {r.Exporter} | {r.OrtSeconds * 1e3:F1} | {r.DeerSeconds * 1e3:F1} | {r.Method} | {r.Ratio:F2}x | {r.MaxDiff:G2} | ");
            md.Append(c, $"{r.DeerSeconds * 1e9 / r.Steps:F0} | {r.Floor.Seconds * 1e9:F0} | {r.Floor.Bound} | {r.OverFloor:F1}x |\n");
        }

        if (LastPeak is { } p)
        {
            md.Append(c, $"\nThe floors use this core's peaks, measured in the same run: {p.FmaPerSecond / 1e9:F0} GFMA/s ({p.Bits}-bit FMAs, register-resident), ");
            md.Append(c, $"{p.FmaLatencySeconds * 1e9:F2} ns per dependent FMA, {p.L2BytesPerSecond / 1e9:F0} GB/s read from L2, ");
            md.Append(c, $"{p.ActivationSeconds * 1e9 * p.Bits / 32:F1} ns per {p.Bits}-bit σ or tanh at full throughput (docs/benchmarks.md, \"Roofline\").\n");
        }

        md.Append("\nMedians. Both run the same .onnx file on the same inputs; Deer through OnnxModel.Run with Method = Auto. Above 1x, Deer is faster.\n");
        if (note is not null)
        {
            md.Append(c, $"Note: {note}.\n");
        }
    }

    public static void Json(Utf8JsonWriter w, List<Row> rows) =>
        ReportJson.Rows(w, "ort", rows, r => [
            ("case", r.Case), ("exported_by", r.Exporter), ("deer_method", r.Method), ("ort_seconds_median", r.OrtSeconds), ("deer_seconds_median", r.DeerSeconds),
            ("ort_over_deer", r.Ratio), ("max_abs_diff", r.MaxDiff), ("ort_threads", r.Threads), ("onnxruntime", r.OrtVersion),
            ("floor_seconds_per_step", r.Floor.Seconds), ("floor_throughput_seconds", r.Floor.ThroughputSeconds), ("floor_latency_seconds", r.Floor.LatencySeconds),
            ("floor_bound", r.Floor.Bound), ("deer_over_floor", r.OverFloor),
        ]);
}
