using System.Runtime.CompilerServices;
using DeerSharp.Cells;

namespace DeerSharp.Tests;

/// <summary>Runs alone: it counts every byte the process allocates, so no other test may allocate meanwhile.</summary>
[CollectionDefinition(nameof(AllocationCounting), DisableParallelization = true)]
public sealed class AllocationCounting;

/// <summary>
/// <see cref="SolveOptions.MemoryBudgetBytes"/> bounds the whole solve (every worker together) and the gradient: the bytes
/// the process allocates during the call, less the arrays the call returns, stay within the budget plus a small fixed
/// allowance for result objects and bookkeeping. Case 6 of the contract issue: 77 MiB were allocated under 32 MiB with
/// B = 2, and a gradient allocated 377 MiB under 1 MiB.
/// </summary>
[Collection(nameof(AllocationCounting))]
public class MemoryBudgetTests
{
    /// <summary>Result objects, residual histories, per-window outcomes: not working buffers.</summary>
    private const long Allowance = 256 << 10;

    /// <summary>
    /// Each iteration's Parallel.For leaves a few hundred bytes of short-lived garbage (its options, closure and task
    /// state); it is collected, not held, so it does not count against the budget.
    /// </summary>
    private const long PerIteration = 2 << 10;

    public static TheoryData<SolveMethod, int, int, long> Shapes => new()
    {
        { SolveMethod.Deer, 2, 8, 1L << 20 },
        { SolveMethod.QuasiDeer, 2, 16, 1L << 20 },
        { SolveMethod.QuasiElk, 3, 8, 2L << 20 },
        { SolveMethod.Picard, 1, 4, 512L << 10 },
        { SolveMethod.Sequential, 4, 32, 1L << 20 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Solve_stays_within_its_budget(SolveMethod method, int batch, int n, long budget) => Seeded.Run(random =>
    {
        const int Length = 20_000, D = 4;
        var cell = GruCell<double>.Random(D, n, random, scale: 0.5);
        double[] x = Numbers.Uniform(random, batch * Length * D);
        var options = new SolveOptions { Method = method, MemoryBudgetBytes = budget, MaxDegreeOfParallelism = 2, MaxIterations = Length };
        Deer.Solve(cell, x.AsSpan(0, batch * 64 * D), batch, 64, options);   // JIT and type loading, outside the count

        long before = GC.GetTotalAllocatedBytes(precise: true);
        SolveResult<double> r = Deer.Solve(cell, x, batch, Length, options);
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.True(r.Converged, r.Message);
        long returned = Bytes(r.States);
        Assert.True(allocated - returned <= budget + Allowance + (PerIteration * r.Iterations * batch),
            $"{method}, B = {batch}, n = {n}: {allocated - returned:N0} bytes of working memory under a budget of {budget:N0} ({r.Windows} windows)");
    });

    [Theory]
    [InlineData(AdjointMethod.Scan, 1)]
    [InlineData(AdjointMethod.Scan, 2)]
    [InlineData(AdjointMethod.Sequential, 2)]
    public void Gradient_stays_within_its_budget(AdjointMethod adjoint, int batch) => Seeded.Run(random =>
    {
        const int Length = 20_000, D = 3, N = 8;
        const long Budget = 1L << 20;
        var cell = GruCell<double>.Random(D, N, random, scale: 0.5);
        double[] x = Numbers.Uniform(random, batch * Length * D), cotangent = Numbers.Uniform(random, batch * Length * N);
        var options = new SolveOptions { Method = SolveMethod.QuasiDeer, MemoryBudgetBytes = Budget, MaxDegreeOfParallelism = 2, MaxIterations = Length };
        var gradient = new GradientOptions { Adjoint = adjoint };
        Deer.Gradient(cell, x.AsSpan(0, batch * 64 * D), batch, 64, cotangent.AsSpan(0, batch * 64 * N), options, gradient);

        long before = GC.GetTotalAllocatedBytes(precise: true);
        GradientResult<double> g = Deer.Gradient(cell, x, batch, Length, cotangent, options, gradient);
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        long returned = Bytes(g.Forward.States) + Bytes(g.InputGradient) + Bytes(g.InitialStateGradient) + g.LayerParameterGradients.Sum(Bytes);
        long garbage = PerIteration * ((g.Forward.Iterations * batch) + (g.AdjointWindows * batch));
        Assert.True(g.AdjointWindows > 1, $"{g.AdjointWindows} adjoint window(s)");
        Assert.True(allocated - returned <= Budget + Allowance + garbage,
            $"{adjoint} adjoint, B = {batch}: {allocated - returned:N0} bytes of working memory under a budget of {Budget:N0}");

        // The windowed adjoint is the same gradient: compare with an unconstrained one.
        GradientResult<double> free = Deer.Gradient(cell, x, batch, Length, cotangent, options with { MemoryBudgetBytes = null }, gradient);
        AssertClose(g.InputGradient, free.InputGradient, 1e-9);
        AssertClose(g.ParameterGradient, free.ParameterGradient, 1e-9);
    });

    /// <summary>Relative to the largest entry: a window boundary changes the order of a few sums.</summary>
    private static void AssertClose(double[] actual, double[] expected, double tolerance)
    {
        double scale = Math.Max(1, expected.Max(Math.Abs)), diff = Numbers.MaxAbsDiff(actual, expected);
        Assert.True(diff <= tolerance * scale, $"max |Δ| = {diff:G3} against a largest entry of {scale:G3}");
    }

    private static long Bytes<T>(T[] values) => (long)values.Length * Unsafe.SizeOf<T>();
}
