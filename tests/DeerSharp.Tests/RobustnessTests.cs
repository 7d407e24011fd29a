using System.Numerics;
using DeerSharp.Cells;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace DeerSharp.Tests;

/// <summary>
/// No silent wrong answers, on easy and hard cells alike: weights scaled up to 100×, lengths up to thousands (30,000 in
/// the sweep), both element types, every method. Invariant: a solve either converges, in which case its residual holds
/// when recomputed independently and (outside chaos) it equals the sequential loop, or it says it did not; with the
/// default fallback, and with auto, the answer is always the loop's.
/// </summary>
public class RobustnessTests
{
    public sealed record Case(int Seed, string Kind, int D, int N, int Length, double Scale, SolveMethod Method, bool Double)
    {
        public override string ToString() => $"{Kind} d={D} n={N} T={Length} x{Scale} {Method} {(Double ? "double" : "float")} seed={Seed}";
    }

    internal static Gen<Case> Cases(int[] lengths) =>
        from seed in Gen.Choose(0, int.MaxValue)
        from kind in Gen.Elements(Cells.Kinds)
        from d in Gen.Choose(1, 4)
        from n in Gen.Choose(1, 8)
        from length in Gen.Elements(lengths)
        from scale in Gen.Elements(1.0, 3.0, 10.0, 30.0, 100.0)
        from method in Gen.Elements(SolveMethod.Deer, SolveMethod.QuasiDeer, SolveMethod.Picard, SolveMethod.QuasiElk, SolveMethod.Auto)
        from dbl in Gen.Elements(true, false)
        select new Case(seed, kind, d, n, length, scale, method, dbl);

    [Property(Arbitrary = new[] { typeof(DeerArbitraries) }, MaxTest = 80)]
    public bool Every_method_converges_to_the_loop_or_says_it_did_not(Case c) => c.Double ? Check<double>(c) : Check<float>(c);

    /// <summary>The same invariant over many more cases and up to 30,000 steps; run with <c>--filter Category=Sweep</c>.</summary>
    [Property(Arbitrary = new[] { typeof(SweepArbitraries) }, MaxTest = 600)]
    [Trait("Category", "Sweep")]
    public bool Every_method_converges_to_the_loop_or_says_it_did_not_long_sweep(Case c) => c.Double ? Check<double>(c) : Check<float>(c);

    private static SolveResult<T> Run<T>(Case c, RecurrentWeights<double> w, double[] x, SolveOptions options)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        Cells.With(c.Kind, w, new SolverAgreementTests.SolveWith<T>(Numbers.As<T>(x), 1, c.Length, options, null));

    private static bool Check<T>(Case c)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var rnd = new Random(c.Seed);
        RecurrentWeights<double> w = Cells.Weights(c.Kind, c.D, c.N, rnd, scale: c.Scale);
        double[] x = Numbers.Uniform(rnd, c.Length * c.D, 2.0);
        var loop = new SolveOptions { Method = SolveMethod.Sequential };

        // How strongly the recurrence amplifies rounding: its float and double trajectories, compared. Above 1e-2 it is
        // chaotic in float (no two orderings of the arithmetic agree), and only the residual can be checked.
        double[] sequentialDouble = Run<double>(c, w, x, loop).States;
        double probe = Numbers.MaxAbsDiff(sequentialDouble, Numbers.ToDouble(Run<float>(c, w, x, loop).States));
        bool single = typeof(T) == typeof(float);
        bool chaotic = !(probe <= 1e-2);
        double amplification = probe / 1.2e-7;
        T[] sequential = Run<T>(c, w, x, loop).States;

        // How far a trajectory whose every step is off by the full allowed residual, atol + rtol·|f|, all pushed the same
        // way, drifts from the loop's: what "converged to tolerance" can mean for this cell. Near-neutral cells (a GRU
        // whose update gate saturates at 1) add such errors up over many steps; rounding errors, random in sign, do not,
        // so the chaos probe alone underestimates it.
        double drift = Cells.With(c.Kind, w, new SystematicDrift<T>(Numbers.As<T>(x), c.Length));
        double tolerance = single ? Math.Max(2e-4, Math.Max(10 * probe, 2 * drift)) : Math.Max(1e-8, Math.Max(amplification * 1e-14, 2 * drift));

        // 1. The method on its own: converged and right, or honest about failing.
        SolveResult<T> alone = Run<T>(c, w, x, new SolveOptions { Method = c.Method, Fallback = FallbackPolicy.None, MaxIterations = 200 });
        if (alone.Converged)
        {
            double residual = Cells.With(c.Kind, w, new IndependentResidual<T>(Numbers.As<T>(x), alone.States, c.Length));
            Assert.True(residual <= 0, $"{c}: claimed convergence, but the recomputed residual exceeds tolerance by {residual:G3}");
            if (!chaotic)
            {
                double diff = Numbers.MaxAbsDiff(Numbers.ToDouble(sequential), Numbers.ToDouble(alone.States));
                Assert.True(diff <= tolerance, $"{c}: converged but differs from the loop by {diff:G3} (tolerance {tolerance:G3}, chaos probe {probe:G3}); {alone}");
            }
        }
        else
        {
            Assert.NotEqual(SolveStatus.Converged, alone.Status);
            Assert.False(string.IsNullOrWhiteSpace(alone.Message));
        }

        // 2. With the default fallback: always converged, and wherever the loop took over, exactly the loop's states.
        SolveResult<T> safe = Run<T>(c, w, x, new SolveOptions { Method = c.Method, MaxIterations = 200 });
        Assert.True(safe.Converged, $"{c}: {safe}");
        if (safe.FallbackSequences > 0)
        {
            Assert.Equal(sequential, safe.States);
            Assert.Contains("did not converge", safe.Message, StringComparison.Ordinal);
        }
        else if (!chaotic)
        {
            Assert.True(Numbers.MaxAbsDiff(Numbers.ToDouble(sequential), Numbers.ToDouble(safe.States)) <= tolerance, $"{c}: {safe}");
        }

        // 3. Auto: the loop's answer, whatever it chose (many cores make it try quasi-DEER on long sequences).
        foreach (int cores in new[] { 2, 256 })
        {
            SolveResult<T> auto = Run<T>(c, w, x, new SolveOptions { Method = SolveMethod.Auto, MaxDegreeOfParallelism = cores });
            Assert.True(auto.Converged, $"{c}, auto on {cores} cores: {auto}");
            if (auto.Method == SolveMethod.Sequential || auto.FallbackSequences > 0)
            {
                Assert.Equal(sequential, auto.States);
            }
            else if (!chaotic)
            {
                Assert.True(Numbers.MaxAbsDiff(Numbers.ToDouble(sequential), Numbers.ToDouble(auto.States)) <= tolerance, $"{c}, auto on {cores} cores: {auto}");
            }
        }

        return true;
    }

    /// <summary>
    /// The largest distance from the loop of a trajectory pushed at every step by the full allowed residual
    /// atol + rtol·|f|, upward in one run and downward in another.
    /// </summary>
    private readonly struct SystematicDrift<T>(T[] x, int length) : ICellFunc<T, double>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        public double Invoke<TCell>(TCell cell)
            where TCell : IRecurrentCell<T>
        {
            int s = cell.StateSize, d = cell.InputSize;
            double tol = typeof(T) == typeof(float) ? 1e-5 : 1e-10;
            var projection = new T[cell.ProjectionSize];
            var scratch = new T[cell.WorkspaceSize];
            double worst = 0;
            foreach (int sign in new[] { 1, -1 })
            {
                T[] exact = new T[s], pushed = new T[s], fe = new T[s], fp = new T[s];
                for (int t = 0; t < length; t++)
                {
                    cell.ProjectInputs(x.AsSpan(t * d, d), projection, 1);
                    cell.Evaluate(exact, projection, fe, scratch);
                    cell.Evaluate(pushed, projection, fp, scratch);
                    for (int i = 0; i < s; i++)
                    {
                        exact[i] = fe[i];
                        pushed[i] = fp[i] + T.CreateTruncating(sign * tol * (1 + Math.Abs(double.CreateTruncating(fp[i]))));
                        worst = Math.Max(worst, Math.Abs(double.CreateTruncating(pushed[i] - exact[i])));
                    }
                }
            }

            return worst;
        }
    }

    /// <summary>
    /// The residual test recomputed outside the solver, through the cell's one-step Evaluate (a different code path from
    /// the block evaluation the solver uses). Returns how far the worst element exceeds atol + rtol·|f| (≤ 0: within),
    /// allowing a few ulps for the two paths' different rounding.
    /// </summary>
    private readonly struct IndependentResidual<T>(T[] x, T[] states, int length) : ICellFunc<T, double>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        public double Invoke<TCell>(TCell cell)
            where TCell : IRecurrentCell<T>
        {
            int s = cell.StateSize, d = cell.InputSize;
            bool single = typeof(T) == typeof(float);
            double atol = single ? 1e-5 : 1e-10, rtol = atol, ulps = single ? 4e-7 : 1e-15;
            var projection = new T[cell.ProjectionSize];
            var scratch = new T[cell.WorkspaceSize];
            var f = new T[s];
            var previous = new T[s];
            double worst = double.NegativeInfinity;
            for (int t = 0; t < length; t++)
            {
                cell.ProjectInputs(x.AsSpan(t * d, d), projection, 1);
                cell.Evaluate(previous, projection, f, scratch);
                for (int i = 0; i < s; i++)
                {
                    double h = double.CreateTruncating(states[t * s + i]), fi = double.CreateTruncating(f[i]);
                    worst = Math.Max(worst, Math.Abs(h - fi) - (atol + rtol * Math.Abs(fi) + ulps * (1 + Math.Abs(fi))));
                }

                states.AsSpan(t * s, s).CopyTo(previous);
            }

            return length == 0 ? 0 : worst;
        }
    }
}
