using DeerSharp.Training;

namespace DeerSharp.Tests;

/// <summary>The training toolkit: a run whose loss falls, DEER and BPTT training in lockstep, determinism, Adam, clipping, warm starts.</summary>
public class TrainingTests
{
    private const int T = 60, B = 16, N = 8;

    /// <summary>Noisy sines of a low or a high frequency band (class 0 or 1), one channel.</summary>
    private static (double[] X, int[] Labels) Batch(Random rnd)
    {
        var x = new double[B * T];
        var labels = new int[B];
        for (int b = 0; b < B; b++)
        {
            labels[b] = rnd.Next(2);
            double f = labels[b] == 0 ? 0.02 + 0.03 * rnd.NextDouble() : 0.15 + 0.1 * rnd.NextDouble(), phase = rnd.NextDouble() * 6.28;
            for (int t = 0; t < T; t++)
            {
                x[b * T + t] = Math.Sin(2 * Math.PI * f * t + phase) + 0.2 * (rnd.NextDouble() - 0.5);
            }
        }

        return (x, labels);
    }

    private static List<double> Train(SolveMethod method, AdjointMethod adjoint, int seed, int steps, WarmStarts<double>? warm = null, List<int>? iterations = null)
    {
        var model = new GruClassifier<double>(1, N, 2, new Random(seed));
        var adam = new Adam<double>(model.Parameters.Arrays, learningRate: 0.05);
        var data = new Random(seed + 1);
        var options = new SolveOptions { Method = method, AbsoluteTolerance = 1e-12, RelativeTolerance = 1e-12 };
        var losses = new List<double>();
        int[] ids = [.. Enumerable.Range(0, B)];
        for (int step = 0; step < steps; step++)
        {
            var batch = Batch(data);
            double[]? start = warm?.Batch(ids, T * N);
            BatchResult<double> r = model.Evaluate(batch.X, B, T, batch.Labels, options, withGradient: true,
                new GradientOptions { Adjoint = adjoint }, start);
            warm?.Store(ids, r.Forward.States);
            iterations?.Add(r.Forward.Iterations);
            GradientClipping.ClipByGlobalNorm(r.Gradients!.Arrays, 1.0);
            adam.Step(r.Gradients.Arrays);
            losses.Add(r.Loss);
        }

        return losses;
    }

    /// <summary>
    /// One training run, evaluated at every step by DEER (Newton forward, adjoint scan) and by the loop with BPTT at the
    /// same parameters: equal losses and gradients (1e-8 relative). Two separate runs would not do: Adam divides by √v, so
    /// a coordinate whose gradient is near zero moves by about ±lr with the sign that rounding picks, and two exact
    /// gradient runs drift apart however precise each gradient is.
    /// </summary>
    [Fact]
    public void DEER_and_BPTT_give_the_same_loss_and_gradient_at_every_training_step()
    {
        int seed = Random.Shared.Next();
        Lockstep(new GruClassifier<double>(1, N, 2, new Random(seed)), seed, steps: 20, maxDeerIterations: int.MaxValue);
    }

    /// <summary>
    /// The structured layer kinds in <see cref="SequenceClassifier{TLayers, TCell, T}"/>: DEER (exact Newton by the block
    /// scan) with the adjoint scan against the loop with BPTT, same parameters, at every step of a short run (1e-8 relative).
    /// </summary>
    [Theory]
    [InlineData("indrnn", 2)]
    [InlineData("diag-gru", 1)]
    [InlineData("diag-gru", 2)]
    [InlineData("diag-lstm", 2)]
    public void Structured_layers_train_with_DEER_and_BPTT_in_lockstep(string kind, int k)
    {
        int seed = Random.Shared.Next();
        switch (kind)
        {
            case "indrnn":
                Lockstep(new SequenceClassifier<IndRnnLayers<double>, DeerSharp.Cells.IndRnnCell<double>, double>(new IndRnnLayers<double>(k), 1, N, 1, 2, new Random(seed)), seed, 5, 8);
                break;
            case "diag-gru":
                Lockstep(new SequenceClassifier<DiagonalGruLayers<double>, DeerSharp.Cells.DiagonalGruCell<double>, double>(new DiagonalGruLayers<double>(k), 1, N, 1, 2, new Random(seed)), seed, 5, 8);
                break;
            default:
                Lockstep(new SequenceClassifier<DiagonalLstmLayers<double>, DeerSharp.Cells.DiagonalLstmCell<double>, double>(new DiagonalLstmLayers<double>(k), 1, N, 1, 2, new Random(seed)), seed, 5, 8);
                break;
        }
    }

    /// <summary>
    /// <paramref name="steps"/> training steps evaluated by DEER (adjoint scan) and by the loop (BPTT) at the same
    /// parameters: equal losses (1e-10) and gradients (1e-8 of each tensor's largest entry); Adam steps on BPTT's.
    /// </summary>
    private static void Lockstep<TLayers, TCell>(SequenceClassifier<TLayers, TCell, double> model, int seed, int steps, int maxDeerIterations)
        where TLayers : struct, ILayerKind<TCell, double>
        where TCell : DeerSharp.Cells.IDifferentiableCell<double>
    {
        var adam = new Adam<double>(model.Parameters.Arrays, learningRate: 0.05);
        var data = new Random(seed + 1);
        var deerOptions = new SolveOptions { Method = SolveMethod.Deer, AbsoluteTolerance = 1e-12, RelativeTolerance = 1e-12 };
        var loopOptions = new SolveOptions { Method = SolveMethod.Sequential };
        for (int step = 0; step < steps; step++)
        {
            var (x, labels) = Batch(data);
            BatchResult<double> deer = model.Evaluate(x, B, T, labels, deerOptions, true, new GradientOptions { Adjoint = AdjointMethod.Scan });
            BatchResult<double> bptt = model.Evaluate(x, B, T, labels, loopOptions, true, new GradientOptions { Adjoint = AdjointMethod.Sequential });
            Assert.True(deer.Forward.Method == SolveMethod.Deer && deer.Forward.Iterations <= maxDeerIterations, $"seed {seed}: {deer.Forward}");
            Assert.True(Math.Abs(deer.Loss - bptt.Loss) <= 1e-10 * Math.Max(1, bptt.Loss), $"seed {seed}, step {step}: losses {deer.Loss} and {bptt.Loss}");
            foreach (string name in model.Parameters.Names)
            {
                double[] a = deer.Gradients![name], e = bptt.Gradients![name];
                double scale = Math.Max(1e-12, e.Max(Math.Abs));
                Assert.True(Numbers.MaxAbsDiff(e, a) <= 1e-8 * scale, $"seed {seed}, step {step}, {name}: DEER and BPTT gradients differ");
            }

            GradientClipping.ClipByGlobalNorm(bptt.Gradients!.Arrays, 1.0);
            adam.Step(bptt.Gradients.Arrays);
        }
    }

    /// <summary>
    /// A small training run lowers the loss. A fixed seed: how fast a small GRU leaves the ln 2 plateau depends on its
    /// initialisation, and a test of "it learns" should not depend on a lucky draw.
    /// </summary>
    [Fact]
    public void A_small_training_run_lowers_the_loss()
    {
        List<double> losses = Train(SolveMethod.Deer, AdjointMethod.Scan, 2024, 60);
        double first = losses.Take(5).Average(), last = losses.TakeLast(5).Average();
        Assert.True(last < 0.5 * first, $"the mean loss of the first five steps was {first}, of the last five {last}");
    }

    [Fact]
    public void Training_is_deterministic_for_a_seed()
    {
        Assert.Equal(Train(SolveMethod.QuasiDeer, AdjointMethod.Scan, 7, 5), Train(SolveMethod.QuasiDeer, AdjointMethod.Scan, 7, 5));
    }

    [Fact]
    public void Warm_starts_cut_the_iterations_after_a_small_update() => Seeded.Run(rnd =>
    {
        var model = new GruClassifier<double>(1, N, 2, rnd);
        var (x, labels) = Batch(rnd);
        int[] ids = [.. Enumerable.Range(0, B)];
        var options = new SolveOptions { Method = SolveMethod.QuasiDeer, Fallback = FallbackPolicy.None };
        var warm = new WarmStarts<double>();
        BatchResult<double> cold = model.Evaluate(x, B, T, labels, options, withGradient: true);
        warm.Store(ids, cold.Forward.States);
        Assert.Equal(0, model.Evaluate(x, B, T, labels, options, withGradient: false, warmStart: warm.Batch(ids, T * N)).Forward.Iterations);

        // A small optimiser step, as between epochs: last epoch's trajectory is then a good starting point.
        new Adam<double>(model.Parameters.Arrays, learningRate: 1e-3).Step(cold.Gradients!.Arrays);
        int fromCold = model.Evaluate(x, B, T, labels, options, withGradient: false).Forward.Iterations;
        int fromWarm = model.Evaluate(x, B, T, labels, options, withGradient: false, warmStart: warm.Batch(ids, T * N)).Forward.Iterations;
        Assert.True(fromWarm < fromCold, $"{fromWarm} iterations from the warm start, {fromCold} from zeros");
        Assert.Null(warm.Batch([99], T * N));
    });

    /// <summary>
    /// The memorisation task at a short dependency (T = 48): a 2-layer GILR-LSTM, solved by its scans and trained with the
    /// exact adjoint, reaches 5 consecutive perfect minibatches. A fixed seed, as for any "it learns" test.
    /// </summary>
    [Fact]
    public void A_GILR_LSTM_solves_the_memorisation_task_at_a_short_length()
    {
        const int Length = 48, Batch = 16, Hidden = 8;
        var model = new SequenceClassifier<GilrLstmLayers<double>, DeerSharp.Cells.GilrLstmCell<double>, double>(Memorisation.Dimension, Hidden, 2, 2, new Random(11));
        model.ChronoInitialize(Length, new Random(12));
        var adam = new Adam<double>(model.Parameters.Arrays, learningRate: 0.01);
        var data = new Random(13);
        var options = new SolveOptions { Method = SolveMethod.Scan };
        int streak = 0, step = 0;
        for (; step < 600 && streak < Memorisation.PerfectBatchesToConverge; step++)
        {
            var (x, labels) = Memorisation.Batch<double>(data, Batch, Length);
            BatchResult<double> r = model.Evaluate(x, Batch, Length, labels, options, withGradient: true, new GradientOptions { Adjoint = AdjointMethod.Sequential });
            Assert.Equal(SolveMethod.Scan, r.Forward.Method);
            GradientClipping.ClipByGlobalNorm(r.Gradients!.Arrays, 1.0);
            adam.Step(r.Gradients.Arrays);
            streak = r.Accuracy == 1 ? streak + 1 : 0;
        }

        Assert.True(streak >= Memorisation.PerfectBatchesToConverge, $"not solved in {step} steps");
    }

    [Fact]
    public void Adam_minimises_a_quadratic_and_clipping_caps_the_norm()
    {
        double[] p = [3.0, -2.0];
        var adam = new Adam<double>([p], learningRate: 0.1);
        for (int i = 0; i < 500; i++)
        {
            adam.Step([[2 * (p[0] - 1), 2 * (p[1] + 0.5)]]);
        }

        Assert.Equal(1.0, p[0], 3);
        Assert.Equal(-0.5, p[1], 3);

        double[] g1 = [3, 0], g2 = [0, 4];
        Assert.Equal(5.0, GradientClipping.ClipByGlobalNorm<double>([g1, g2], 1.0), 12);
        Assert.Equal(1.0, Math.Sqrt(g1[0] * g1[0] + g2[1] * g2[1]), 12);
        Assert.Throws<ArgumentException>(() => adam.Step([[1.0]]));
    }

    /// <summary>An Adam restored from another's moments and step count takes the same next step, bit for bit.</summary>
    [Fact]
    public void Adam_restored_from_a_saved_state_continues_the_same_run() => Seeded.Run(rnd =>
    {
        float[] Draw(int count) => [.. Enumerable.Range(0, count).Select(_ => (float)(rnd.NextDouble() * 2 - 1))];
        float[][] parameters = [Draw(5), Draw(3)];
        var first = new Adam<float>(parameters, learningRate: 0.05);
        for (int k = 0; k < 3; k++)
        {
            first.Step([Draw(5), Draw(3)]);
        }

        float[][] copy = [.. parameters.Select(p => (float[])p.Clone())];
        var second = new Adam<float>(copy, learningRate: 0.05);
        second.Restore(first.Steps, [.. first.FirstMoments.Select(m => (float[])m.Clone())], [.. first.SecondMoments.Select(v => (float[])v.Clone())]);
        float[][] gradient = [Draw(5), Draw(3)];
        first.Step(gradient);
        second.Step(gradient);
        Assert.Equal(4, second.Steps);
        Assert.Equal(parameters.SelectMany(p => p), copy.SelectMany(p => p));
        Assert.Contains("firstMoments", Assert.Throws<ArgumentException>(() => second.Restore(1, [new float[4], new float[3]], [new float[5], new float[3]])).Message);
    });
}
