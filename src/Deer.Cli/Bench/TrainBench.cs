using System.Globalization;
using System.Text;
using System.Text.Json;
using DeerSharp.Training;

namespace DeerSharp.Cli.Bench;

/// <summary>
/// `deer bench --only train`: one training step (forward, loss, gradient) of the memorisation task's models (issue #26,
/// docs/linear-surrogates.md): a 2-layer GILR-LSTM, hidden 16, batch 16, one-hot inputs of 128, by
/// <see cref="GilrLstmTrainer"/> and by the general path (<see cref="SequenceClassifier{TLayers, TCell, T}.Evaluate"/>
/// with <see cref="SolveMethod.Scan"/> and the BPTT adjoint), and the 2-layer LSTM on the sequential loop, with the
/// floor of a GILR-LSTM step at this core's measured FMA peak beside them.
/// </summary>
internal static class TrainBench
{
    public sealed record Row(string Model, string Path, int Length, int Batch, Stopwatches.Timing Timing, double FloorSeconds, double RecomputeFloorSeconds)
    {
        public double OverFloor => Timing.Median / FloorSeconds;
    }

    private const int Batch = 16, Hidden = 16, Layers = 2;

    /// <summary>Operations of the FMA pipes in one σ or tanh: the exp's range reduction and polynomial (11), the reciprocal's Newton step (2).</summary>
    private const int ActivationOps = 13;

    public static List<Row> Run(bool quick, int repeats, TextWriter log)
    {
        int length = quick ? 4096 : 32768;
        Roofline.Peak peak = Roofline.Measure();
        int cores = Environment.ProcessorCount;
        (double fma, double recompute) = Floor(Hidden, Memorisation.Dimension, Layers, peak, cores);
        double floor = fma * Batch * length, again = recompute * Batch * length;
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"train: one training step of the memorisation task, T = {length}, batch {Batch}, 2 layers of hidden {Hidden}, float32, {cores} cores; this core {peak.FmaPerSecond / 1e9:F0} GFMA/s"));
        var rows = new List<Row>();
        var (sparse, labels) = Memorisation.SparseBatch(new Random(26), Batch, length);

        var gilr = new SequenceClassifier<GilrLstmLayers<float>, GilrLstmCell<float>, float>(Memorisation.Dimension, Hidden, Layers, 2, new Random(1));
        gilr.ChronoInitialize(length, new Random(2));
        var trainer = new GilrLstmTrainer(gilr);
        Add(rows, log, "GILR-LSTM", "GilrLstmTrainer", length, floor, again,
            Stopwatches.Measure(() => trainer.Evaluate(sparse, labels, withGradient: true), repeats));

        // The general paths read the dense batch (512 bytes a step and sequence) and are tens of times slower: three runs.
        float[] dense = sparse.ToDense<float>();
        var gradient = new GradientOptions { Adjoint = AdjointMethod.Sequential };
        int few = Math.Min(3, repeats);
        Add(rows, log, "GILR-LSTM", "general (Scan + BPTT)", length, floor, again, Stopwatches.Measure(
            () => gilr.Evaluate(dense, Batch, length, labels, new SolveOptions { Method = SolveMethod.Scan }, withGradient: true, gradient), few));
        var lstm = new SequenceClassifier<LstmLayers<float>, LstmCell<float>, float>(Memorisation.Dimension, Hidden, Layers, 2, new Random(1));
        lstm.ChronoInitialize(length, new Random(2));
        Add(rows, log, "LSTM", "sequential loop + BPTT", length, double.NaN, double.NaN, Stopwatches.Measure(
            () => lstm.Evaluate(dense, Batch, length, labels, new SolveOptions { Method = SolveMethod.Sequential }, withGradient: true, gradient), few));
        return rows;
    }

    /// <summary>
    /// Seconds per step and sequence at the FMA peak of all cores, for one forward and one backward pass of a GILR-LSTM
    /// stack whose first layer reads one-hot inputs, and for the recomputing trainer (one more forward pass). Counted in
    /// lanes of FMA-pipe operations: the products (a one-hot layer's projection is a gather of 6n values; a dense one's
    /// 6n², W_hh's 4n²; backward, W_hhᵀδ and ∂W_hh 4n² each, ∂x and ∂W 6n² each for a dense layer, a scatter of 6n for the
    /// one-hot one) and the elementwise work (forward per unit: 6 activations of <see cref="ActivationOps"/> and 4
    /// products; backward per unit about 22: the δ of the four gates, the two carries, the surrogate's two derivatives).
    /// Loads, stores and additions on other pipes are not counted, so the floor is below what is possible.
    /// </summary>
    internal static (double Seconds, double RecomputeSeconds) Floor(int n, int d, int layers, Roofline.Peak peak, int cores)
    {
        double forward = 0, backward = 0;
        for (int l = 0; l < layers; l++)
        {
            double projection = l == 0 ? 6.0 * n : 6.0 * n * n;
            forward += projection + 4.0 * n * n + n * (6 * ActivationOps + 4);
            backward += 8.0 * n * n + (l == 0 ? 6.0 * n : 12.0 * n * n) + 22.0 * n;
        }

        double rate = peak.FmaPerSecond * cores;
        return ((forward + backward) / rate, (2 * forward + backward) / rate);
    }

    private static void Add(List<Row> rows, TextWriter log, string model, string path, int length, double floor, double recompute, Stopwatches.Timing timing)
    {
        var row = new Row(model, path, length, Batch, timing, floor, recompute);
        rows.Add(row);
        string against = double.IsNaN(floor) ? "" : string.Create(CultureInfo.InvariantCulture,
            $"; floor {floor * 1e3:F1} ms (x{row.OverFloor:F1}), with the recomputed forward {recompute * 1e3:F1} ms (x{timing.Median / recompute:F1})");
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  {model,-10} {path,-24} {timing.Median * 1e3,9:F1} ms per training step ({timing.Runs} runs){against}"));
    }

    public static void Markdown(StringBuilder md, List<Row> rows)
    {
        if (rows.Count == 0)
        {
            return;
        }

        var c = CultureInfo.InvariantCulture;
        md.Append(c, $"\n## One training step of the memorisation task (T = {rows[0].Length}, batch {rows[0].Batch}, 2 layers of hidden {Hidden}, float32)\n\n");
        md.Append("| model | path | time per step (ms) | runs | floor (ms) | / floor | floor with the recomputed forward (ms) | / that floor |\n|---|---|---|---|---|---|---|---|\n");
        foreach (Row r in rows)
        {
            string floors = double.IsNaN(r.FloorSeconds) ? "— | — | — | —"
                : string.Create(c, $"{r.FloorSeconds * 1e3:F1} | {r.OverFloor:F1}x | {r.RecomputeFloorSeconds * 1e3:F1} | {r.Timing.Median / r.RecomputeFloorSeconds:F1}x");
            md.Append(c, $"| {r.Model} | {r.Path} | {r.Timing.Median * 1e3:F1} | {r.Timing.Runs} | {floors} |\n");
        }

        md.Append("\nThe floor counts FMA-pipe operations of one forward and one backward pass at this core's measured peak on every core (docs/linear-surrogates.md).\n");
    }

    public static void Json(Utf8JsonWriter w, List<Row> rows) =>
        ReportJson.Rows(w, "train", rows, r => [
            ("model", r.Model), ("path", r.Path), ("length", r.Length), ("batch", r.Batch), ("seconds_median", r.Timing.Median), ("runs", r.Timing.Runs),
            ("floor_seconds", double.IsNaN(r.FloorSeconds) ? null : r.FloorSeconds),
            ("floor_with_recompute_seconds", double.IsNaN(r.RecomputeFloorSeconds) ? null : r.RecomputeFloorSeconds),
        ]);
}
