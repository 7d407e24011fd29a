using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using DeerSharp.IO;

namespace DeerSharp.Cli.Bench;

/// <summary>
/// `deer bench --only cold`: the solve as a user meets it. For the GRU and the LSTM (float32, d = n = 32, T = 65,536, the
/// same weights and inputs throughout) it runs this very `deer` as a fresh process, `deer run --method auto --report`,
/// once per repeat, and reads <c>solve_seconds</c> from each report; beside it, in the same run, the warm figure
/// (`Deer.Solve` with Auto, in this process, after a warm-up) and PyTorch's warm
/// nn.GRU or nn.LSTM. One uncounted run first puts the executable in the page cache, as on any machine where it has
/// run before; the counted runs are each a new process with cold code, a cold thread pool and fresh memory.
/// </summary>
internal static class ColdBench
{
    public sealed record Row(string Case, string Build, string Method, Stopwatches.Timing Cold, Stopwatches.Timing Process, Stopwatches.Timing Warm,
        double MaxDiffColdVsWarm, TorchPeer.Result? Torch, double? MaxDiffTorch)
    {
        /// <summary>Cold solve over warm solve: the bar is 1.5.</summary>
        public double ColdOverWarm => Cold.Median / Warm.Median;

        /// <summary>PyTorch's warm time over Deer's cold solve.</summary>
        public double? TorchOverCold => Torch is null ? null : Torch.MedianSeconds / Cold.Median;
    }

    public static List<Row> Run(bool quick, int repeats, TorchPeer? peer, TextWriter log, out string? torchNote)
    {
        const int N = 32;
        int length = quick ? 4096 : 65536;
        string build = RuntimeFeature.IsDynamicCodeSupported ? "JIT" : "Native AOT";
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"cold: `deer run --method auto` as a fresh process ({build} build), against the warm solve and PyTorch's warm module, float32, d = n = {N}, T = {length}"));
        torchNote = peer is null ? "PyTorch peer skipped (--no-peers)" : null;
        var rows = new List<Row>();
        string dir = Path.Combine(Path.GetTempPath(), "deer-cold-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            foreach (string cell in new[] { "gru", "lstm" })
            {
                var rnd = new Random(cell == "gru" ? 32 : 33);
                var weights = RecurrentWeights<float>.Random(cell == "gru" ? 3 : 4, N, N, rnd);
                var x = new float[length * N];
                for (int i = 0; i < x.Length; i++)
                {
                    x[i] = (float)(rnd.NextDouble() * 2 - 1);
                }

                string name = string.Create(CultureInfo.InvariantCulture, $"{cell.ToUpperInvariant()} n={N} d={N} T={length} B=1 float32");
                string w = Path.Combine(dir, cell + ".safetensors"), xs = Path.Combine(dir, "x.npy");
                TorchPeer.WriteModule(w, weights);
                Npy.Write(xs, TensorData.FromSingle(x, 1, length, N));

                // Cold: a fresh process per run, timed by the report's solve_seconds and, around it, the whole process.
                string h = Path.Combine(dir, "h.npy"), report = Path.Combine(dir, "r.json");
                string[] args = ["run", "--cell", cell, "--weights", w, "--inputs", xs, "--method", "auto", "--out", h, "--report", report];
                Processes.RunSelf(args);
                var solve = new double[repeats];
                var process = new double[repeats];
                string method = "?";
                for (int i = 0; i < repeats; i++)
                {
                    process[i] = Processes.RunSelf(args);
                    using JsonDocument json = JsonDocument.Parse(File.ReadAllText(report));
                    solve[i] = json.RootElement.GetProperty("solve_seconds").GetDouble();
                    method = json.RootElement.GetProperty("method").GetString() ?? "?";
                }

                float[] cold = Npy.Read(h).ToArray<float>();

                // Warm: the same solve in this process, after a warm-up.
                SolveResult<float>? last = null;
                var options = new SolveOptions { Method = SolveMethod.Auto };
                Stopwatches.Timing warm = Stopwatches.Measure(() => last = cell == "gru"
                    ? Deer.Solve(new GruCell<float>(weights), x, 1, length, options)
                    : Deer.Solve(new LstmCell<float>(weights), x, 1, length, options), repeats);
                float[] reference = last!.Outputs();

                TorchPeer.Result? torch = peer?.Time(cell, weights, x, 1, length, repeats);
                if (peer is not null && torch is null)
                {
                    torchNote ??= peer.Why;
                }

                var row = new Row(name, build, method, Stopwatches.Timing.Of(solve), Stopwatches.Timing.Of(process), warm, BenchCommand.MaxDiff(cold, reference), torch,
                    torch is null ? null : BenchCommand.MaxDiff(torch.Output, reference));
                rows.Add(row);
                log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {cell,-4} cold solve {row.Cold.Median * 1e3,7:F1} ms (process {row.Process.Median * 1e3:F0} ms)  warm {row.Warm.Median * 1e3,6:F1} ms  cold/warm x{row.ColdOverWarm:F2}{(row.TorchOverCold is { } v ? $"  PyTorch {torch!.MedianSeconds * 1e3:F0} ms = x{v:F1} the cold solve" : "")}"));
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }

        return rows;
    }

    public static void Markdown(StringBuilder md, List<Row> rows, string? torchNote)
    {
        if (rows.Count == 0)
        {
            return;
        }

        var c = CultureInfo.InvariantCulture;
        md.Append(c, $"\n## Cold start: `deer run` as a fresh process ({rows[0].Build} build), against the warm solve and PyTorch\n\n");
        md.Append("| case | method | cold solve_seconds (ms) | cold process (ms) | warm solve (ms) | cold / warm | PyTorch warm (ms) | PyTorch / cold | max \\|Δ\\| cold vs warm | max \\|Δ\\| PyTorch vs Deer |\n|---|---|---|---|---|---|---|---|---|---|\n");
        foreach (Row r in rows)
        {
            md.Append(c, $"| {r.Case} | auto ({r.Method}) | {r.Cold.Median * 1e3:F1} ({r.Cold.Min * 1e3:F1}-{r.Cold.UpperQuartile * 1e3:F1}) | {r.Process.Median * 1e3:F0} | {r.Warm.Median * 1e3:F1} | {r.ColdOverWarm:F2}x | ");
            md.Append(c, $"{(r.Torch is { } t ? $"{t.MedianSeconds * 1e3:F0} ({t.Threads} thread(s), torch {t.TorchVersion})" : "—")} | {(r.TorchOverCold is { } v ? $"{v:F1}x" : "—")} | {r.MaxDiffColdVsWarm:G2} | {(r.MaxDiffTorch is { } d ? d.ToString("G2", c) : "—")} |\n");
        }

        md.Append("\nCold: the median over fresh processes of the report's solve_seconds (min-upper quartile in brackets), and of the whole process's wall time. Warm: the same solve in the bench's own process after a warm-up.\n");
        if (torchNote is not null)
        {
            md.Append(c, $"PyTorch peer not measured: {torchNote}.\n");
        }
    }

    public static void Json(Utf8JsonWriter w, List<Row> rows) =>
        ReportJson.Rows(w, "cold", rows, r => (IEnumerable<(string, object?)>)[
            ("case", r.Case), ("build", r.Build), ("method", r.Method), ("cold_solve_seconds_median", r.Cold.Median), ("cold_solve_seconds_min", r.Cold.Min),
            ("cold_process_seconds_median", r.Process.Median), ("warm_solve_seconds_median", r.Warm.Median), ("cold_over_warm", r.ColdOverWarm),
            ("max_abs_diff_cold_vs_warm", r.MaxDiffColdVsWarm),
            .. r.Torch is { } t
                ? [("pytorch_seconds_median", t.MedianSeconds), ("pytorch_threads", t.Threads), ("pytorch_over_cold", r.TorchOverCold), ("max_abs_diff_pytorch_vs_deer", r.MaxDiffTorch)]
                : Array.Empty<(string, object?)>(),
        ]);
}
