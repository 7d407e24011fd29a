using System.Globalization;
using System.Text;
using System.Text.Json;

namespace DeerSharp.Cli.Bench;

// What a bench run writes: bench.md, bench.json and the chart.
internal static partial class BenchCommand
{
    /// <summary>The sections against ONNX Runtime: cold (fresh processes) and warm (the race), each with why it was not measured.</summary>
    private sealed record OnnxSections(List<OnnxColdBench.Row> Cold, string? ColdNote, List<OrtRaceBench.Row> Race, string? RaceNote);

    /// <summary>The sections on gradients: one training step of the memorisation task, and the gradient through a sequential solve (with why its peer was not measured).</summary>
    private sealed record TrainingSections(List<TrainBench.Row> Train, List<GradBench.Row> Grad, string? GradNote);

    private static string Markdown(Options o, Dictionary<string, string> m, List<ScanRow> scan, List<RnnRow> rnn, string? torchNote, List<SweepRow> sweep,
        List<StructuredBench.Row> structured, List<ColdBench.Row> cold, string? coldNote, OnnxSections onnx, TrainingSections training)
    {
        var c = CultureInfo.InvariantCulture;
        var md = new StringBuilder();
        md.Append(c, $"# deer bench{(o.Quick ? " --quick (smoke sizes: not figures to quote)" : "")}\n\n");
        md.Append(c, $"{m["date"]}; {m["cpu"]}, {m["cores"]} cores, {m["memory"]}, {m["simd"]} (Vector<T> {m["vector_t_bits"]}-bit); {m["os"]}; .NET {m["dotnet"]}; Deer {m["deer"]}.\n");
        md.Append(c, $"Every figure is the median of {o.Repeats} timed runs after one warm-up (DEER and Picard rows: at most 3), measured in this one run.\n\n");
        md.Append("## Diagonal scan against a memory copy (float32)\n\n| what | T·n | time (ms) | GB/s | fraction of |\n|---|---|---|---|---|\n");
        foreach (ScanRow r in scan)
        {
            md.Append(c, $"| {r.Name} | 2^{Math.Log2(r.Elements):F0} | {r.Seconds * 1e3:F2} | {r.GigabytesPerSecond:F2} | {(r.Ceiling.Length > 0 ? $"{r.Fraction:P0} of {r.Ceiling}" : "")} |\n");
        }

        md.Append("\nGB/s counts the bytes each must move: the scan reads a and b and writes h (12 bytes per element); the copy reads a and b and writes them elsewhere (16).\n\n");
        md.Append("## GRU and LSTM, every method, against PyTorch on the same weights and inputs\n\n| case | method | time (ms) | 95% CI of the median (ms) | iterations | converged | max \\|Δ\\| vs sequential | vs sequential | vs PyTorch |\n|---|---|---|---|---|---|---|---|---|\n");
        foreach (RnnRow r in rnn)
        {
            string ci = r.Timing is { } t ? $"{t.MedianCiLow * 1e3:F1}-{t.MedianCiHigh * 1e3:F1} ({t.Runs} runs)" : "—";
            md.Append(c, $"| {r.Case} | {r.Method} | {r.Seconds * 1e3:F1} | {ci} | {r.Iterations} | {(r.Converged ? "yes" : "no")} | {r.MaxDiff:G2} | {r.VsSequential:F2}x | {(r.VsTorch is { } v ? $"{v:F1}x" : "—")} |\n");
        }

        if (torchNote is not null)
        {
            md.Append(c, $"\nPyTorch peer not measured: {torchNote}.\n");
        }

        md.Append("\n## Speedup against sequence length (GRU, float32, d = n, B = 1)\n\n| n | T | sequential (ms) | DEER (ms) | iterations | quasi-DEER (ms) | iterations | best speedup |\n|---|---|---|---|---|---|---|---|\n");
        foreach (SweepRow r in sweep)
        {
            md.Append(c, $"| {r.Hidden} | {r.Length} | {r.Sequential * 1e3:F2} | {r.Deer * 1e3:F2} | {r.DeerIterations} | {r.QuasiDeer * 1e3:F2} | {r.QuasiIterations} | {r.Speedup:F2}x |\n");
        }

        md.Append("\nbench.png and bench.svg plot the speedup of each method: below the dashed line the sequential loop is faster.\n");
        StructuredBench.Markdown(md, structured);
        ColdBench.Markdown(md, cold, coldNote);
        OnnxColdBench.Markdown(md, onnx.Cold, onnx.ColdNote);
        OrtRaceBench.Markdown(md, onnx.Race, onnx.RaceNote);
        TrainBench.Markdown(md, training.Train);
        GradBench.Markdown(md, training.Grad, training.GradNote);
        return md.ToString();
    }

    private static void Json(Stream s, Options o, Dictionary<string, string> m, List<ScanRow> scan, List<RnnRow> rnn, string? torchNote, List<SweepRow> sweep,
        List<StructuredBench.Row> structured, List<ColdBench.Row> cold, OnnxSections onnx, TrainingSections training)
    {
        using var w = new Utf8JsonWriter(s, ReportJson.WriterOptions);
        w.WriteStartObject();
        w.WriteBoolean("quick", o.Quick);
        w.WriteNumber("repeats", o.Repeats);
        w.WriteStartObject("machine");
        foreach (var kv in m)
        {
            w.WriteString(kv.Key, kv.Value);
        }

        w.WriteEndObject();
        ReportJson.Rows(w, "scan", scan, r => (IEnumerable<(string, object?)>)[
            ("name", r.Name), ("elements", r.Elements), ("seconds", r.Seconds), ("bytes_moved", r.BytesMoved), ("gb_per_second", r.GigabytesPerSecond),
            .. r.Ceiling.Length > 0 ? [("ceiling", r.Ceiling), ("fraction_of_ceiling", r.Fraction)] : Array.Empty<(string, object?)>(),
        ]);
        ReportJson.Rows(w, "rnn", rnn, r => (IEnumerable<(string, object?)>)[
            ("case", r.Case), ("method", r.Method), ("seconds", r.Seconds),
            .. r.Timing is { } t
                ? [("runs", t.Runs), ("seconds_min", t.Min), ("seconds_lower_quartile", t.LowerQuartile), ("seconds_upper_quartile", t.UpperQuartile),
                    ("seconds_median_ci95_low", t.MedianCiLow), ("seconds_median_ci95_high", t.MedianCiHigh)]
                : Array.Empty<(string, object?)>(),
            ("iterations", r.Iterations), ("converged", r.Converged), ("max_abs_diff_vs_sequential", r.MaxDiff), ("speedup_vs_sequential", r.VsSequential),
            .. r.VsTorch is { } v ? [("speedup_vs_pytorch", v)] : Array.Empty<(string, object?)>(),
        ]);
        if (torchNote is not null)
        {
            w.WriteString("pytorch_note", torchNote);
        }

        ReportJson.Rows(w, "sweep", sweep, r => [("hidden", r.Hidden), ("length", r.Length), ("sequential_seconds", r.Sequential), ("deer_seconds", r.Deer),
            ("deer_iterations", r.DeerIterations), ("quasi_deer_seconds", r.QuasiDeer), ("quasi_deer_iterations", r.QuasiIterations), ("best_speedup", r.Speedup)]);
        StructuredBench.Json(w, structured);
        ColdBench.Json(w, cold);
        OnnxColdBench.Json(w, onnx.Cold);
        OrtRaceBench.Json(w, onnx.Race);
        TrainBench.Json(w, training.Train);
        GradBench.Json(w, training.Grad);
        w.WriteEndObject();
    }

    /// <summary>Speedup over the sequential loop against T, one line per method and hidden size, on log axes (CPU backend).</summary>
    private static ScottPlot.Plot Chart(Dictionary<string, string> m, List<SweepRow> sweep) =>
        Charts.LogLog("GRU on the CPU: speedup of DEER and quasi-DEER over the sequential loop", "sequence length T", "speedup (sequential / parallel)",
            [
                .. sweep.GroupBy(r => r.Hidden).Select(g => ($"DEER, n = {g.Key}", (IReadOnlyList<(double, double)>)[.. g.Select(r => ((double)r.Length, r.Sequential / r.Deer))])),
                .. sweep.GroupBy(r => r.Hidden).Select(g => ($"quasi-DEER, n = {g.Key}", (IReadOnlyList<(double, double)>)[.. g.Select(r => ((double)r.Length, r.Sequential / r.QuasiDeer))])),
            ],
            $"{m["cpu"]}, {m["cores"]} cores, float32, batch 1, {m["date"]}");
}
