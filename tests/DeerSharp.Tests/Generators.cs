using FsCheck;
using FsCheck.Fluent;

namespace DeerSharp.Tests;

/// <summary>
/// FsCheck generators and shrinkers for the property tests, registered with <c>[Property(Arbitrary = ...)]</c>. Every case
/// carries the seed of its weights and inputs, so a shrunk case is still a whole, reproducible problem; shrinking makes
/// it smaller (shorter sequences, fewer units, one sequence, milder weights) and FsCheck reports the smallest failing one
/// with the replay seed ("Replay: (…)") to rerun it through <c>[Property(Replay = "…")]</c>.
/// </summary>
public static class DeerArbitraries
{
    public static Arbitrary<SolverAgreementTests.Case> SolverCases() => Arb.From(SolverAgreementTests.Cases, ShrinkSolver);

    public static Arbitrary<RobustnessTests.Case> RobustnessCases() => Arb.From(RobustnessTests.Cases([1, 2, 17, 300, 1000, 2500]), ShrinkRobustness);

    public static Arbitrary<ExactnessTests.HardCase> HardCases() => Arb.From(ExactnessTests.HardCases, ShrinkHard);

    public static Arbitrary<JacobianTests.Case> JacobianCases() => Arb.From(JacobianTests.Cases, c =>
        from d in Smaller(c.D, 1) select c with { D = d });

    public static Arbitrary<AffineMapLawTests.Case> ScanLawCases() => Arb.From(AffineMapLawTests.Cases, c =>
        from n in Smaller(c.N, 1) select c with { N = n });

    public static Arbitrary<TensorFileTests.RoundTripCase> RoundTripCases() => Arb.From(TensorFileTests.RoundTripCases, c =>
        Smaller(c.Shape.Length, 1).Select(rank => c with { Shape = c.Shape[..rank] })
            .Concat(Enumerable.Range(0, c.Shape.Length).Where(k => c.Shape[k] > 0).Select(k => c with { Shape = [.. c.Shape.Select((v, i) => i == k ? v / 2 : v)] })));

    public static Arbitrary<GradientTests.Case> GradientCases() => Arb.From(GradientTests.Cases, c =>
        (from t in Smaller(c.Length, 1) select c with { Length = t }).Concat(from n in Smaller(c.N, 1) select c with { N = n }));

    internal static IEnumerable<SolverAgreementTests.Case> ShrinkSolver(SolverAgreementTests.Case c) =>
        (from t in Smaller(c.Length, 0) select c with { Length = t })
            .Concat(from n in Smaller(c.N, 1) select c with { N = n })
            .Concat(from d in Smaller(c.D, 1) select c with { D = d })
            .Concat(c.Batch > 1 ? [c with { Batch = 1 }] : [])
            .Concat(c.Cores > 1 ? [c with { Cores = 1 }] : []);

    internal static IEnumerable<RobustnessTests.Case> ShrinkRobustness(RobustnessTests.Case c) =>
        (from t in Smaller(c.Length, 1) select c with { Length = t })
            .Concat(from n in Smaller(c.N, 1) select c with { N = n })
            .Concat(c.Scale > 1 ? [c with { Scale = 1 }] : []);

    internal static IEnumerable<ExactnessTests.HardCase> ShrinkHard(ExactnessTests.HardCase c) =>
        (from t in Smaller(c.Length, 1) select c with { Length = t }).Concat(from n in Smaller(c.N, 1) select c with { N = n });

    /// <summary>Candidates below <paramref name="value"/>, smallest first: the minimum, half, and one less.</summary>
    internal static IEnumerable<int> Smaller(int value, int minimum) =>
        new[] { minimum, minimum + ((value - minimum) / 2), value - 1 }.Where(v => v >= minimum && v < value).Distinct();
}

/// <summary>The long sweeps' generators: the same cases over longer sequences (<c>--filter Category=Sweep</c>).</summary>
public static class SweepArbitraries
{
    public static Arbitrary<RobustnessTests.Case> RobustnessCases() =>
        Arb.From(RobustnessTests.Cases([1, 2, 17, 300, 2500, 10_000, 30_000]), DeerArbitraries.ShrinkRobustness);

    public static Arbitrary<SolverAgreementTests.Case> SolverCases() => Arb.From(SolverAgreementTests.Cases, DeerArbitraries.ShrinkSolver);
}
