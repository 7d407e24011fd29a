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

    /// <summary>
    /// quasi-DEER's fused pass (each block scanned right after it is evaluated, by whichever worker finds the frontier
    /// ready) takes the same Newton steps as a whole evaluation pass followed by a whole scan: the two write the step
    /// differently (h'_t = f_t + d_t(h'_{t-1} - h_{t-1}) against d_t h'_{t-1} + (f_t - d_t h_{t-1})), so they agree to
    /// rounding. Lengths cross the 64-step blocks; 1, 2 and 4 workers; float64, then float32.
    /// </summary>
    [Fact]
    public void Fused_quasi_deer_takes_the_same_steps_as_a_separate_scan() => Seeded.Run(rnd =>
    {
        foreach (string kind in Cells.Kinds)
        {
            foreach (int length in new[] { 1, 2, 3, 63, 64, 65, 66, 129, 700, 3001 })
            {
                foreach (int cores in new[] { 1, 2, 4 })
                {
                    int d = 1 + rnd.Next(4), n = 1 + rnd.Next(12);
                    RecurrentWeights<double> w = Cells.Weights(kind, d, n, rnd);
                    double[] x = Numbers.Uniform(rnd, length * d, 2.0);
                    var fusedOptions = new SolveOptions { Method = SolveMethod.QuasiDeer, MaxDegreeOfParallelism = cores, Fallback = FallbackPolicy.None, MaxIterations = length + 1 };
                    var fused = Cells.With(kind, w, new SolveWith<double>(x, 1, length, fusedOptions, null));
                    var separate = Cells.With(kind, w, new SolveWith<double>(x, 1, length, fusedOptions, null, separateScan: true));
                    string what = $"{kind} d={d} n={n} T={length} cores={cores}";
                    Assert.True(fused.Converged && separate.Converged, $"{what}: {fused.Status} / {separate.Status}");
                    Assert.True(Math.Abs(fused.Iterations - separate.Iterations) <= 1, $"{what}: {fused.Iterations} against {separate.Iterations} iterations");
                    for (int k = 0; k < Math.Min(fused.ResidualHistory.Count, separate.ResidualHistory.Count); k++)
                    {
                        double a = fused.ResidualHistory[k], b = separate.ResidualHistory[k];
                        Assert.True(Math.Abs(a - b) <= 1e-12 + 1e-6 * Math.Abs(b), $"{what}: residual {k}: {a:G6} against {b:G6}");
                    }

                    Assert.True(Numbers.MaxAbsDiff(fused.Outputs(), separate.Outputs()) <= 1e-9, $"{what}: states");
                    double[] reference = Cells.ReferenceStates(kind, w, x, length);
                    Assert.True(Numbers.MaxAbsDiff(fused.States, reference) <= 1e-8, $"{what}: against the reference equations");
                }
            }

            // float32, two workers, a long sequence: against the float64 reference.
            {
                int length = 5000, d = 3, n = 32;
                RecurrentWeights<double> w = Cells.Weights(kind, d, n, rnd);
                double[] x = Numbers.Uniform(rnd, length * d, 2.0);
                var options = new SolveOptions { Method = SolveMethod.QuasiDeer, MaxDegreeOfParallelism = 2, Fallback = FallbackPolicy.None };
                var fused = Cells.With(kind, w, new SolveWith<float>(Numbers.As<float>(x), 1, length, options, null));
                Assert.True(fused.Converged, $"{kind} float32: {fused.Status} after {fused.Iterations}");
                Assert.True(Numbers.MaxAbsDiff(Cells.ReferenceStates(kind, w, x, length), Numbers.ToDouble(fused.States)) <= 1e-4, $"{kind} float32 against the reference");
            }
        }
    });

    /// <summary>
    /// The sequential loop on two cores faults its output's pages in beside the loop (Prefault, madvise on Linux); the
    /// states must be bit for bit those of the one-core loop, which does not. 5 MB of float states, above the threshold.
    /// </summary>
    [Fact]
    public void The_loop_with_its_output_prefaulted_gives_the_same_bits() => Seeded.Run(rnd =>
    {
        const int N = 16, D = 4;
        int length = (int)(Cpu.Prefault.MinimumBytes / (N * sizeof(float))) + 1 + rnd.Next(10_000);
        RecurrentWeights<double> w = Cells.Weights("gru", D, N, rnd);
        float[] x = Numbers.As<float>(Numbers.Uniform(rnd, length * D, 2.0));
        var two = Cells.With("gru", w, new SolveWith<float>(x, 1, length, new SolveOptions { Method = SolveMethod.Sequential, MaxDegreeOfParallelism = 2 }, null));
        var one = Cells.With("gru", w, new SolveWith<float>(x, 1, length, new SolveOptions { Method = SolveMethod.Sequential, MaxDegreeOfParallelism = 1 }, null));
        Assert.True(two.Converged && one.Converged);
        Assert.True(two.States.AsSpan().SequenceEqual(one.States), $"T={length}: the states differ");
        Assert.Contains(two.States, v => v != 0);
    });

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

    /// <summary>Solves with the given cell; <paramref name="separateScan"/> (tests only) runs a diagonal update as a whole evaluation pass, then a whole scan.</summary>
    internal readonly struct SolveWith<T>(T[] x, int batch, int length, SolveOptions options, T[]? h0, bool separateScan = false) : ICellFunc<T, SolveResult<T>>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        public SolveResult<T> Invoke<TCell>(TCell cell)
            where TCell : IRecurrentCell<T> =>
            Driver.SolveDriver.Solve(cell, x, batch, length, h0, default, options, separateScan: separateScan);
    }
}
