using System.Globalization;
using System.Text;
using System.Text.Json;

namespace DeerSharp.Cli.Bench;

/// <summary>
/// `deer bench --only grad`: the gradient through a sequential solve (forward by the loop, backward by BPTT) of the ORT
/// race's cases, float32, warm: Deer's <see cref="Deer"/>.Gradient beside its forward solve alone, PyTorch's CPU autograd
/// (forward and backward of sum(C ⊙ output), the same weights, inputs and cotangent) when Python with torch is there, the
/// largest difference of the parameter gradients (at most 3 of its runs: it is slow), and an FMA floor (<see cref="Floor"/>).
/// Then the linear surrogates (GILR, GILR-LSTM, SRU), which PyTorch does not ship: Deer alone, against
/// <see cref="SurrogateFloor"/>.
/// </summary>
internal static class GradBench
{
    public sealed record Row(string Case, int Steps, Stopwatches.Timing Forward, Stopwatches.Timing Gradient, double? TorchSeconds, int TorchThreads,
        double? MaxRelativeDiff, double FloorSeconds)
    {
        /// <summary>The gradient's time over the floor.</summary>
        public double OverFloor => Gradient.Median / FloorSeconds;
    }

    private static readonly (string Cell, int D, int N, int T, int B)[] Cases =
    [
        ("gru", 32, 32, 65536, 1), ("lstm", 32, 32, 65536, 1), ("gru", 64, 128, 16384, 1), ("gru", 32, 32, 4096, 16), ("lstm", 32, 32, 4096, 16),
        ("gilr", 32, 32, 65536, 1), ("gilr-lstm", 32, 32, 65536, 1), ("sru", 32, 32, 65536, 1),
    ];

    public static List<Row> Run(bool quick, int repeats, TorchPeer? torch, TextWriter log, out string? note)
    {
        note = torch is null ? "peers skipped (--no-peers)" : null;
        Roofline.Peak peak = Roofline.Measure();
        int cores = Environment.ProcessorCount;
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"grad: the gradient through a sequential solve (BPTT), float32, warm, {cores} cores; Deer's runs before and after the peer's; this core {peak.FmaPerSecond / 1e9:F0} GFMA/s"));
        var rows = new List<Row>();
        foreach ((string cell, int d, int n, int fullLength, int batch) in Cases)
        {
            int length = quick ? Math.Max(256, fullLength / 64) : fullLength;
            var random = new Random(26 + rows.Count);
            var weights = RecurrentWeights<float>.Random(cell == "gru" ? 3 : 4, n, d, random);
            float[] x = [.. Enumerable.Range(0, batch * length * d).Select(_ => (float)((random.NextDouble() * 2) - 1))];
            float[] c = [.. Enumerable.Range(0, batch * length * n).Select(_ => (float)((random.NextDouble() * 2) - 1) * 1e-3f)];
            double floor = cell is "gru" or "lstm" ? Floor(cell == "gru" ? 3 : 4, n, d, batch, length, cores, peak) : SurrogateFloor(cell, n, d, batch, length, cores, peak);
            Row row = cell switch
            {
                "gru" => Case(new GruCell<float>(weights), cell, weights, x, c, d, n, batch, length, repeats, torch, floor, ref note),
                "lstm" => Case(new LstmCell<float>(weights), cell, weights, x, c, d, n, batch, length, repeats, torch, floor, ref note),
                "gilr" => Case(GilrCell<float>.Random(d, n, random), cell, null, x, c, d, n, batch, length, repeats, null, floor, ref note),
                "gilr-lstm" => Case(GilrLstmCell<float>.Random(d, n, random), cell, null, x, c, d, n, batch, length, repeats, null, floor, ref note),
                _ => Case(SruCell<float>.Random(n, random), cell, null, x, c, d, n, batch, length, repeats, null, floor, ref note),
            };
            rows.Add(row);
            string peer = row.TorchSeconds is { } t
                ? string.Create(CultureInfo.InvariantCulture, $"PyTorch {t * 1e3,8:F1} ms ({row.TorchThreads} threads), PyTorch/Deer x{t / row.Gradient.Median:F2}, max |Δ| {row.MaxRelativeDiff:G2} of the largest")
                : "PyTorch —";
            log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {row.Case,-28} forward {row.Forward.Median * 1e3,7:F1} ms  gradient {row.Gradient.Median * 1e3,7:F1} ms ({row.Gradient.Median * 1e9 / row.Steps:F0} ns/step; floor {row.FloorSeconds * 1e3:F1} ms, x{row.OverFloor:F1})  {peer}"));
        }

        return rows;
    }

    private static Row Case<TCell>(TCell cell, string kind, RecurrentWeights<float>? weights, float[] x, float[] c, int d, int n, int batch, int length,
        int repeats, TorchPeer? torch, double floor, ref string? note)
        where TCell : IDifferentiableCell<float>
    {
        var options = new SolveOptions { Method = SolveMethod.Sequential };
        var gradient = new GradientOptions { Adjoint = AdjointMethod.Sequential };
        float[] deer = [];
        Action[] runs = [() => Deer.Solve(cell, x, batch, length, options), () => deer = Deer.Gradient(cell, x, batch, length, c, options, gradient).ParameterGradient];
        var seconds = new List<double>[] { [], [] };
        void Rounds(int count)
        {
            for (int i = 0; i < count; i++)
            {
                for (int k = 0; k < runs.Length; k++)
                {
                    long start = System.Diagnostics.Stopwatch.GetTimestamp();
                    runs[k]();
                    seconds[k].Add(System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds);
                }
            }
        }

        // Thirty warm-up rounds (at most 15 s): the tiered JIT promotes a method after 30 calls. In a scratch program's
        // first nine calls a B = 16 LSTM's gradient took 35-111 ms, against 32-40 ms with tiering off (the background
        // recompiles are the likely cause, not verified). Then half of Deer's rounds, the peer's process, the other half.
        long warm = System.Diagnostics.Stopwatch.GetTimestamp();
        for (int i = 0; i < 30 && (i < 1 || System.Diagnostics.Stopwatch.GetElapsedTime(warm).TotalSeconds < 15); i++)
        {
            Array.ForEach(runs, run => run());
        }

        Rounds(Math.Max(1, repeats / 2));
        // At most 3 of the peer's runs: autograd took 33 s a run for T = 65,536 here (docs/benchmarks.md).
        TorchPeer.Result? peer = weights is null ? null : torch?.TimeBackward(kind, weights, x, c, batch, length, Math.Min(3, repeats));
        Rounds(Math.Max(1, repeats - (repeats / 2)));
        if (torch is not null && peer is null)
        {
            note ??= torch.Why;
        }

        double? diff = null;
        if (peer is not null)
        {
            double scale = Math.Max(1e-30, peer.Output.Max(v => Math.Abs((double)v)));
            diff = deer.Zip(peer.Output).Max(p => Math.Abs((double)p.First - p.Second)) / scale;
        }

        string label = string.Create(CultureInfo.InvariantCulture, $"{kind.ToUpperInvariant()} d={d} n={n} T={length} B={batch}");
        return new Row(label, batch * length, Stopwatches.Timing.Of([.. seconds[0]]), Stopwatches.Timing.Of([.. seconds[1]]), peer?.MedianSeconds, peer?.Threads ?? 0, diff,
            floor);
    }

    /// <summary>
    /// Seconds for a linear surrogate's whole gradient at this core's FMA peak on every core. Per sequence-step FMAs:
    /// GILR 6nd (the projection of [g; i], then ∂x and ∂W); SRU 9nd (the same for [x̃; f; r]); GILR-LSTM 18nd + 12n²
    /// (its 6n-row projection three times, W_hh h~, W_hhᵀ δ and ∂W_hh); and the forward's activations (2n, 3n, 6n).
    /// No product lies on the sequential chain (its recurrences are diagonal), so there is no chain term. Loads, stores
    /// and the elementwise arithmetic are not counted: the floor is below the truth.
    /// </summary>
    internal static double SurrogateFloor(string cell, int n, int d, int batch, int length, int cores, Roofline.Peak peak)
    {
        (double fmas, double activations) = cell switch
        {
            "gilr" => (6.0 * n * d, 2.0 * n),
            "sru" => (9.0 * n * d, 3.0 * n),
            _ => ((18.0 * n * d) + (12.0 * n * n), 6.0 * n),
        };
        return (double)batch * length * ((fmas / peak.FmaPerSecond) + (activations * peak.ActivationSeconds)) / cores;
    }

    /// <summary>
    /// Seconds for the whole gradient at this core's FMA peak: per sequence-step G(3nd + 4n²) FMAs (forward: the projection
    /// and W_hh h; backward: W_hh h again, W_hhᵀ δ, ∂x = δ W_ih, ∂W_ih and ∂W_hh) and twice the forward's activations, on
    /// every core; but at least the two recurrent products of the forward and backward loops, which one sequence runs
    /// step after step on one core. Loads, stores and the gates' elementwise arithmetic are not counted: the floor is
    /// below the truth.
    /// </summary>
    internal static double Floor(int gates, int n, int d, int batch, int length, int cores, Roofline.Peak peak)
    {
        double perStep = gates * ((3.0 * n * d) + (4.0 * n * n));
        double activations = 2.0 * (gates == 4 ? 5 : gates) * n * peak.ActivationSeconds;
        double all = (double)batch * length * ((perStep / peak.FmaPerSecond) + activations) / cores;
        double chain = length * Math.Ceiling((double)batch / cores) * 2.0 * gates * n * n / peak.FmaPerSecond;
        return Math.Max(all, chain);
    }

    public static void Markdown(StringBuilder md, List<Row> rows, string? note)
    {
        if (rows.Count == 0)
        {
            return;
        }

        var c = CultureInfo.InvariantCulture;
        md.Append("\n## The gradient through a sequential solve (BPTT), float32, warm\n\n");
        md.Append("| case | forward (ms) | gradient (ms) | ns per sequence-step | floor (ms) | / floor | PyTorch CPU autograd (ms) | PyTorch / Deer | max parameter-gradient difference |\n|---|---|---|---|---|---|---|---|---|\n");
        foreach (Row r in rows)
        {
            string peer = r.TorchSeconds is { } t ? string.Create(c, $"{t * 1e3:F1} | {t / r.Gradient.Median:F2}x | {r.MaxRelativeDiff:G2}") : "— | — | —";
            md.Append(c, $"| {r.Case} | {r.Forward.Median * 1e3:F1} | {r.Gradient.Median * 1e3:F1} | {r.Gradient.Median * 1e9 / r.Steps:F0} | {r.FloorSeconds * 1e3:F1} | {r.OverFloor:F1}x | {peer} |\n");
        }

        md.Append("\nThe gradient includes its forward solve. The difference is the largest |Δ| over the parameter gradient, relative to its largest entry; the floor is GradBench.Floor's.\n");
        if (note is not null)
        {
            md.Append(c, $"\nPeer: {note}.\n");
        }
    }

    public static void Json(Utf8JsonWriter w, List<Row> rows) =>
        ReportJson.Rows(w, "grad", rows, r => [
            ("case", r.Case), ("steps", r.Steps), ("forward_seconds_median", r.Forward.Median), ("gradient_seconds_median", r.Gradient.Median),
            ("gradient_runs", r.Gradient.Runs), ("floor_seconds", r.FloorSeconds), ("torch_seconds_median", r.TorchSeconds),
            ("torch_threads", r.TorchThreads), ("max_relative_diff", r.MaxRelativeDiff),
        ]);
}
