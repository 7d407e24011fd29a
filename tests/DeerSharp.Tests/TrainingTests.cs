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

    [Fact]
    public void DEER_and_BPTT_training_follow_the_same_loss_curve_and_it_falls()
    {
        int seed = Random.Shared.Next();
        List<double> deer = Train(SolveMethod.Deer, AdjointMethod.Scan, seed, 60);
        List<double> bptt = Train(SolveMethod.Sequential, AdjointMethod.Sequential, seed, 60);
        for (int i = 0; i < deer.Count; i++)
        {
            // Both gradients are exact (tested to 1e-8 elsewhere); what separates the runs is the forward solve's rounding,
            // which Adam carries forward, so the curves drift apart slowly over the steps.
            Assert.True(Math.Abs(deer[i] - bptt[i]) <= 1e-6 * Math.Max(1, bptt[i]), $"seed {seed}, step {i}: DEER loss {deer[i]}, BPTT loss {bptt[i]}");
        }

        double first = bptt.Take(5).Average(), last = bptt.TakeLast(5).Average();
        Assert.True(last < 0.8 * first, $"seed {seed}: the mean loss of the first five steps was {first}, of the last five {last}");
    }

    [Fact]
    public void Training_is_deterministic_for_a_seed()
    {
        Assert.Equal(Train(SolveMethod.QuasiDeer, AdjointMethod.Scan, 7, 5), Train(SolveMethod.QuasiDeer, AdjointMethod.Scan, 7, 5));
    }

    [Fact]
    public void Warm_starts_cut_the_iterations_after_a_small_update()
    {
        var model = new GruClassifier<double>(1, N, 2, new Random());
        var (x, labels) = Batch(new Random());
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
}
