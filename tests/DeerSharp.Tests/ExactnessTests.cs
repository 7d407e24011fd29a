using System.Numerics;
using DeerSharp.Cells;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace DeerSharp.Tests;

/// <summary>
/// The lower-triangular structure of r(h) = 0 (reference §3-5): after k iterations the first k states are exact, so every
/// method needs at most T iterations; Picard needs exactly T on a recurrence with no contraction.
/// </summary>
public class ExactnessTests
{
    /// <summary>h_t = h_{t-1} + x_t: no contraction at all, so Picard fixes exactly one more state per iteration.</summary>
    internal readonly struct RunningSum(int n) : IRecurrence
    {
        public int StateSize => n;

        public int InputSize => n;

        public void Apply<TNum>(ReadOnlySpan<TNum> state, ReadOnlySpan<TNum> input, Span<TNum> next)
            where TNum : IFloatingPointIeee754<TNum>
        {
            for (int i = 0; i < n; i++)
            {
                next[i] = state[i] + input[i];
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(37)]
    [InlineData(300)]
    public void Picard_needs_exactly_T_iterations_in_the_worst_case(int length)
    {
        var cell = new AutoDiffCell<RunningSum, double>(new RunningSum(2));
        var x = new double[length, 2];
        var rnd = new Random(length);
        for (int t = 0; t < length; t++)
        {
            x[t, 0] = 1 + rnd.NextDouble();
            x[t, 1] = 1 + rnd.NextDouble();
        }

        SolveResult<double> picard = Deer.Solve(cell, x, new SolveOptions { Method = SolveMethod.Picard, MaxIterations = length + 5, Fallback = FallbackPolicy.None });
        Assert.True(picard.Converged, picard.ToString());
        Assert.Equal(length, picard.Iterations);

        // One fewer is not enough, and the result says so instead of claiming convergence.
        if (length > 1)
        {
            SolveResult<double> shortRun = Deer.Solve(cell, x, new SolveOptions { Method = SolveMethod.Picard, MaxIterations = length - 1, Fallback = FallbackPolicy.None });
            Assert.False(shortRun.Converged);
            Assert.Equal(SolveStatus.MaxIterationsReached, shortRun.Status);
            Assert.Contains("MaxIterations", shortRun.Message, StringComparison.Ordinal);
            Assert.True(shortRun.MaxResidual > 0.5);
        }

        // The recurrence is linear, so Newton is exact after one iteration.
        SolveResult<double> deer = Deer.Solve(cell, x, new SolveOptions { Method = SolveMethod.Deer, Fallback = FallbackPolicy.None });
        Assert.True(deer.Converged);
        Assert.Equal(Math.Min(1, length), deer.Iterations);
    }

    public sealed record HardCase(int Seed, int N, int Length, double Scale, SolveMethod Method);

    internal static Gen<HardCase> HardCases =>
        from seed in Gen.Choose(0, int.MaxValue)
        from n in Gen.Choose(1, 5)
        from length in Gen.Choose(1, 40)
        from scale in Gen.Elements(3.0, 6.0, 12.0)
        from method in Gen.Elements(SolveMethod.Deer, SolveMethod.QuasiDeer, SolveMethod.Picard)
        select new HardCase(seed, n, length, scale, method);

    [Property(Arbitrary = new[] { typeof(DeerArbitraries) }, MaxTest = 150)]
    public bool Every_method_is_exact_within_T_iterations_even_on_non_contractive_cells(HardCase c)
    {
        var rnd = new Random(c.Seed);
        RecurrentWeights<double> w = Cells.Weights("rnn", 2, c.N, rnd, scale: c.Scale);
        double[] xs = Numbers.Uniform(rnd, c.Length * 2, 2.0);
        var x = new double[c.Length, 2];
        Buffer.BlockCopy(xs, 0, x, 0, xs.Length * sizeof(double));
        var cell = new TanhRnnCell<double>(w);
        SolveResult<double> r = Deer.Solve(cell, x, new SolveOptions { Method = c.Method, MaxIterations = c.Length, Fallback = FallbackPolicy.None });
        Assert.True(r.Converged, $"{c}: {r}");
        Assert.True(r.Iterations <= c.Length, $"{c}: {r.Iterations} > T");
        double[] expected = Cells.ReferenceStates("rnn", w, xs, c.Length);
        double diff = Numbers.MaxAbsDiff(expected, r.States);
        Assert.True(diff <= 1e-8, $"{c}: differs from sequential by {diff}");
        return true;
    }

    [Theory]
    [InlineData(SolveMethod.Deer)]
    [InlineData(SolveMethod.QuasiDeer)]
    [InlineData(SolveMethod.Picard)]
    public void After_k_iterations_the_first_k_states_are_exact(SolveMethod method)
    {
        var rnd = new Random(5);
        const int Length = 30;
        RecurrentWeights<double> w = Cells.Weights("gru", 3, 4, rnd, scale: 8.0);
        double[] xs = Numbers.Uniform(rnd, Length * 3, 2.0);
        double[] expected = Cells.ReferenceStates("gru", w, xs, Length);
        var cell = new GruCell<double>(w);
        for (int k = 0; k <= 6; k++)
        {
            SolveResult<double> r = Deer.Solve(cell, xs, 1, Length, new SolveOptions { Method = method, MaxIterations = k, Fallback = FallbackPolicy.None });
            double diff = Numbers.MaxAbsDiff(expected.AsSpan(0, k * 4), r.States.AsSpan(0, k * 4));
            Assert.True(diff <= 1e-12, $"{method}, {k} iterations: the first {k} states differ by {diff}");
        }
    }
}
