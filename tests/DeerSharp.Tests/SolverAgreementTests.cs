using System.Numerics;
using DeerSharp.Cells;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace DeerSharp.Tests;

/// <summary>
/// The central property: for random cells, weights, inputs, lengths, batch sizes, element types and methods, every
/// iterative method converges (with a checked residual) to the sequential result, and the sequential method equals the
/// independent reference equations.
/// </summary>
public class SolverAgreementTests
{
    public sealed record Case(int Seed, string Kind, int D, int N, int Batch, int Length, SolveMethod Method, bool Double, bool WithH0, int Cores)
    {
        public override string ToString() =>
            $"{Kind} d={D} n={N} B={Batch} T={Length} {Method} {(Double ? "double" : "float")} h0={WithH0} cores={Cores} seed={Seed}";
    }

    // Lengths: the edge cases, lengths around the evaluation chunk (256) and scan chunk (512) sizes, and thousands.
    private static readonly int[] EdgeLengths = [0, 1, 2, 3, 255, 256, 257, 511, 512, 513, 1023, 1024, 1025];

    internal static Gen<Case> Cases =>
        from seed in Gen.Choose(0, int.MaxValue)
        from kind in Gen.Elements(Cells.Kinds)
        from d in Gen.Choose(1, 4)
        from n in Gen.Choose(1, 6)
        from batch in Gen.Frequency((3, Gen.Constant(1)), (1, Gen.Choose(2, 3)))
        from length in Gen.Frequency((3, Gen.Elements(EdgeLengths)), (1, Gen.Choose(4, 3000)))
        from method in Gen.Elements(SolveMethod.Deer, SolveMethod.QuasiDeer, SolveMethod.Picard, SolveMethod.Sequential)
        from dbl in Gen.Elements(true, false)
        from withH0 in Gen.Elements(true, false)
        from cores in Gen.Elements(1, 2, 4)
        select new Case(seed, kind, d, n, batch, length, method, dbl, withH0, cores);

    [Property(Arbitrary = new[] { typeof(DeerArbitraries) }, MaxTest = 150)]
    public bool Every_method_reaches_the_sequential_result(Case c) => c.Double ? Check<double>(c) : Check<float>(c);

    /// <summary>The same property over many more cases; run with <c>--filter Category=Sweep</c>.</summary>
    [Property(Arbitrary = new[] { typeof(SweepArbitraries) }, MaxTest = 3000)]
    [Trait("Category", "Sweep")]
    public bool Every_method_reaches_the_sequential_result_long_sweep(Case c) => c.Double ? Check<double>(c) : Check<float>(c);

    private static bool Check<T>(Case c)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var rnd = new Random(c.Seed);
        RecurrentWeights<double> w = Cells.Weights(c.Kind, c.D, c.N, rnd);
        int s = c.Kind == "lstm" ? 2 * c.N : c.N;
        double[] x = Numbers.Uniform(rnd, c.Batch * c.Length * c.D, 2.0);
        double[]? h0 = c.WithH0 ? Numbers.Uniform(rnd, c.Batch * s) : null;

        // Every undamped method is exact after T iterations (reference §3, §5), so the property allows T; the defaults
        // (100 for DEER, 500 otherwise) are below T for the longer cases, and a slowly contracting cell under Picard
        // then reports MaxIterationsReached, correctly (seed 411641819: LSTM d=1 n=1 T=501 stopped at 2.4e-6).
        var options = new SolveOptions
        {
            Method = c.Method, MaxDegreeOfParallelism = c.Cores, Fallback = FallbackPolicy.None,
            MaxIterations = c.Method == SolveMethod.Sequential ? null : c.Length,
        };
        SolveResult<T> r = Cells.With(c.Kind, w, new SolveWith<T>(Numbers.As<T>(x), c.Batch, c.Length, options, h0 is null ? null : Numbers.As<T>(h0)));

        Assert.True(r.Converged, $"{c}: {r}");
        Assert.Equal(c.Method, r.Method);
        Assert.Equal([c.Batch, c.Length, s], new[] { r.BatchSize, r.Length, r.StateSize });
        Assert.Equal(c.Batch * c.Length * s, r.States.Length);

        // Against the independent reference equations, in double, sequence by sequence.
        double tolerance = Numbers.AgreementTolerance<T>();
        for (int b = 0; b < c.Batch; b++)
        {
            double[] expected = Cells.ReferenceStates(c.Kind, w, x[(b * c.Length * c.D)..((b + 1) * c.Length * c.D)], c.Length,
                h0?[(b * s)..((b + 1) * s)]);
            double[] actual = Numbers.ToDouble(r.States[(b * c.Length * s)..((b + 1) * c.Length * s)]);
            double diff = Numbers.MaxAbsDiff(expected, actual);
            Assert.True(diff <= tolerance, $"{c}: sequence {b} differs from the reference by {diff} (tolerance {tolerance}); {r}");
        }

        if (c.Method != SolveMethod.Sequential && c.Length > 0)
        {
            Assert.Equal(r.Iterations + 1, r.ResidualHistory.Count);
            Assert.Equal(r.MaxResidual, r.ResidualHistory[^1]);
            Assert.True(r.Iterations <= c.Length, $"{c}: {r.Iterations} iterations for T = {c.Length}");
        }

        return true;
    }

    internal readonly struct SolveWith<T>(T[] x, int batch, int length, SolveOptions options, T[]? h0) : ICellFunc<T, SolveResult<T>>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        public SolveResult<T> Invoke<TCell>(TCell cell)
            where TCell : IRecurrentCell<T> =>
            Deer.Solve(cell, x, batch, length, options, h0);
    }
}
