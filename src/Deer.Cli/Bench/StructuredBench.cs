using System.Globalization;
using System.Text;
using System.Text.Json;

namespace DeerSharp.Cli.Bench;

/// <summary>
/// `deer bench`'s structured-cell section: DEER on <see cref="DiagonalGruCell{T}"/> (k = 1, 2) against DEER and
/// quasi-DEER on the dense <see cref="GruCell{T}"/> at the same hidden size, each beside its own sequential loop, float32,
/// d = n, B = 1, timed round by round (loop, then each method). Every solve allocates its output, whose first touch
/// a VM charges for (0.4-5 ms/MB on the days measured, docs/benchmarks.md "Cold start"): loop and DEER alike. The cost of one DEER iteration is the whole solve divided by its iterations (so it includes the input
/// projection and the final residual pass), expressed per step and against one step of the cell's loop.
/// </summary>
internal static class StructuredBench
{
    public sealed record Row(int Hidden, int Length, string Cell, string Method, double Seconds, int Iterations, bool Converged,
        double SequentialSeconds, double MaxDiff, string? Skipped = null)
    {
        /// <summary>Time of one iteration per step, in nanoseconds.</summary>
        public double IterationNanosecondsPerStep => Seconds / Math.Max(1, Iterations) / Length * 1e9;

        /// <summary>One iteration per step against one sequential step of the same cell.</summary>
        public double IterationOverSequentialStep => Seconds / Math.Max(1, Iterations) / SequentialSeconds;

        public double Speedup => SequentialSeconds / Seconds;
    }

    public static List<Row> Run(bool quick, int repeats, TextWriter log)
    {
        int[] hidden = quick ? [8, 64] : [8, 32, 64, 256];
        int length = quick ? 4096 : 65536;
        var rows = new List<Row>();
        log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"structured: DEER on the diagonal GRU (k = 1, 2) against DEER and quasi-DEER on the dense GRU, float32, d = n, B = 1, T = {length}"));
        foreach (int n in hidden)
        {
            var rnd = new Random(n * 31);
            var x = new float[length * n];
            for (int i = 0; i < x.Length; i++)
            {
                x[i] = (float)(rnd.NextDouble() * 2 - 1);
            }

            foreach (int k in new[] { 1, 2 })
            {
                var cell = DiagonalGruCell<float>.Random(n, n, k, rnd);
                Measure(rows, n, length, $"diag-gru k={k}", x, repeats, log,
                    o => Deer.Solve(cell, x, 1, length, o), [SolveMethod.Deer]);
            }

            var gru = new GruCell<float>(RecurrentWeights<float>.Random(3, n, n, rnd));
            long jacobianBytes = (long)length * n * n * sizeof(float);
            SolveMethod[] methods = jacobianBytes > 2L << 30 ? [SolveMethod.QuasiDeer] : [SolveMethod.Deer, SolveMethod.QuasiDeer];
            Measure(rows, n, length, "gru", x, n >= 256 ? 1 : repeats, log, o => Deer.Solve(gru, x, 1, length, o), methods);
            if (methods.Length == 1)
            {
                string why = string.Create(CultureInfo.InvariantCulture, $"not run: DEER's T·n² Jacobians take {jacobianBytes / 1e9:F1} GB");
                rows.Add(new Row(n, length, "gru", "deer", double.NaN, 0, false, double.NaN, double.NaN, why));
                log.WriteLine($"  gru deer: {why}");
            }
        }

        return rows;
    }

    /// <summary>The loop and each method, interleaved round by round so that the machine's drift falls on all of them alike.</summary>
    private static void Measure(List<Row> rows, int n, int length, string name, float[] x, int repeats, TextWriter log,
        Func<SolveOptions, SolveResult<float>> solve, SolveMethod[] methods)
    {
        var results = new SolveResult<float>?[methods.Length + 1];
        SolveMethod[] all = [SolveMethod.Sequential, .. methods];
        Action[] runs = [.. all.Select((m, k) => (Action)(() => results[k] = solve(new SolveOptions { Method = m })))];
        Stopwatches.Timing[] t = Stopwatches.MeasureInterleaved(runs, repeats);
        SolveResult<float> loop = results[0]!;
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  n={n,-4} {name,-12} sequential {t[0].Median * 1e3,9:F2} ms  {t[0].Median / length * 1e9,7:F0} ns/step"));
        for (int k = 1; k < all.Length; k++)
        {
            SolveResult<float> r = results[k]!;
            double diff = 0;
            for (int i = 0; i < r.States.Length; i++)
            {
                diff = Math.Max(diff, Math.Abs((double)r.States[i] - loop.States[i]));
            }

            var row = new Row(n, length, name, MethodNames.Name(all[k]), t[k].Median, r.Iterations, r.Converged, t[0].Median, diff);
            rows.Add(row);
            log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  n={n,-4} {name,-12} {row.Method,-10} {t[k].Median * 1e3,9:F2} ms  {row.Iterations,3} it  {row.IterationNanosecondsPerStep,7:F0} ns/step/iteration = {row.IterationOverSequentialStep:F2} sequential steps  x{row.Speedup:F2} vs its loop"));
        }
    }

    public static void Markdown(StringBuilder md, List<Row> rows)
    {
        if (rows.Count == 0)
        {
            return;
        }

        var c = CultureInfo.InvariantCulture;
        md.Append(c, $"\n## Structured cells: DEER on the diagonal GRU against the dense GRU (float32, d = n, B = 1, T = {rows[0].Length})\n\n");
        md.Append("One iteration = the whole solve divided by its iterations (input projection and final residual pass included), per step, and against one step of the same cell's loop.\n\n");
        md.Append("| n | cell | method | time (ms) | iterations | converged | ns/step/iteration | iteration / sequential step | sequential (ms) | speedup vs its loop | max \\|Δ\\| vs its loop |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
        foreach (Row r in rows)
        {
            if (r.Skipped is not null)
            {
                md.Append(c, $"| {r.Hidden} | {r.Cell} | {r.Method} | {r.Skipped} | | | | | | | |\n");
                continue;
            }

            md.Append(c, $"| {r.Hidden} | {r.Cell} | {r.Method} | {r.Seconds * 1e3:F2} | {r.Iterations} | {(r.Converged ? "yes" : "no")} | {r.IterationNanosecondsPerStep:F0} | {r.IterationOverSequentialStep:F2} | {r.SequentialSeconds * 1e3:F2} | {r.Speedup:F2}x | {r.MaxDiff:G2} |\n");
        }
    }

    public static void Json(Utf8JsonWriter w, List<Row> rows) =>
        ReportJson.Rows(w, "structured", rows, r => r.Skipped is not null
            ? [("hidden", r.Hidden), ("length", r.Length), ("cell", r.Cell), ("method", r.Method), ("skipped", r.Skipped)]
            : [("hidden", r.Hidden), ("length", r.Length), ("cell", r.Cell), ("method", r.Method), ("seconds", r.Seconds), ("iterations", r.Iterations),
                ("converged", r.Converged), ("sequential_seconds", r.SequentialSeconds), ("iteration_ns_per_step", r.IterationNanosecondsPerStep),
                ("iteration_over_sequential_step", r.IterationOverSequentialStep), ("speedup_vs_sequential", r.Speedup), ("max_abs_diff_vs_sequential", r.MaxDiff)]);
}
