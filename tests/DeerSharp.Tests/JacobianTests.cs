using System.Numerics;
using DeerSharp.Cells;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace DeerSharp.Tests;

/// <summary>Analytic Jacobians of the built-in cells, AD Jacobians of the independent reference, and central finite differences agree.</summary>
public class JacobianTests
{
    public sealed record Case(int Seed, string Kind, int D, int N, bool Bias);

    internal static Gen<Case> Cases =>
        from seed in Gen.Choose(0, int.MaxValue)
        from kind in Gen.Elements(Cells.Kinds)
        from d in Gen.Choose(1, 5)
        from n in Gen.Choose(1, 6)
        from bias in Gen.Elements(true, false)
        select new Case(seed, kind, d, n, bias);

    [Property(Arbitrary = new[] { typeof(DeerArbitraries) }, MaxTest = 150)]
    public bool Analytic_AD_and_finite_difference_Jacobians_agree(Case c)
    {
        var rnd = new Random(c.Seed);
        RecurrentWeights<double> w = Cells.Weights(c.Kind, c.D, c.N, rnd, scale: 1.5, bias: c.Bias);
        var reference = new AutoDiffCell<ReferenceCell, double>(new ReferenceCell(c.Kind, w));
        int s = reference.StateSize;
        double[] state = Numbers.Uniform(rnd, s, 1.5), x = Numbers.Uniform(rnd, c.D);

        var analytic = Cells.With(c.Kind, w, new Linearise<double>(state, x));
        var ad = new Linearise<double>(state, x).Invoke(reference);
        double[] fd = FiniteDifference(new ReferenceCell(c.Kind, w), state, x);

        Assert.True(Numbers.MaxAbsDiff(analytic.Next, ad.Next) <= 1e-14, "f: built-in cell vs independent reference");
        Assert.True(Numbers.MaxAbsDiff(analytic.Jacobian, ad.Jacobian) <= 1e-13, "J: analytic vs AD");
        Assert.True(Numbers.MaxAbsDiff(ad.Jacobian, fd) <= 1e-7, "J: AD vs central differences");
        Assert.True(Numbers.MaxAbsDiff(analytic.Diagonal, Diagonal(analytic.Jacobian, s)) <= 1e-14, "closed-form diagonal vs diag(J)");
        Assert.True(Numbers.MaxAbsDiff(ad.Diagonal, Diagonal(ad.Jacobian, s)) <= 1e-14, "AD diagonal vs diag(AD J)");
        return true;
    }

    [Fact]
    public void Float_cells_match_the_double_reference()
    {
        var rnd = new Random(11);
        foreach (string kind in Cells.Kinds)
        {
            RecurrentWeights<double> w = Cells.Weights(kind, 3, 5, rnd);
            int s = kind == "lstm" ? 10 : 5;
            double[] state = Numbers.Uniform(rnd, s), x = Numbers.Uniform(rnd, 3);
            var d = Cells.With(kind, w, new Linearise<double>(state, x));
            var f = Cells.With(kind, w, new Linearise<float>(Numbers.As<float>(state), Numbers.As<float>(x)));
            Assert.True(Numbers.MaxAbsDiff(d.Next, f.Next) <= 1e-6, kind);
            Assert.True(Numbers.MaxAbsDiff(d.Jacobian, f.Jacobian) <= 1e-6, kind);
            Assert.True(Numbers.MaxAbsDiff(d.Diagonal, f.Diagonal) <= 1e-6, kind);
        }
    }

    [Fact]
    public void Block_evaluation_equals_step_by_step_evaluation() => Seeded.Run(rnd =>
    {
        foreach (string kind in Cells.Kinds)
        {
            foreach (int count in new[] { 1, 2, 3, 4, 5, 7, 8, 9, 17, 64 })
            {
                int d = 1 + rnd.Next(6), n = 1 + rnd.Next(12);
                RecurrentWeights<double> w = Cells.Weights(kind, d, n, rnd);
                int s = kind == "lstm" ? 2 * n : n;
                double[] states = Numbers.Uniform(rnd, count * s), xs = Numbers.Uniform(rnd, count * d);
                var block = Cells.With(kind, w, new LineariseBlock(states, xs, count));
                for (int i = 0; i < count; i++)
                {
                    var one = Cells.With(kind, w, new Linearise<double>(states[(i * s)..((i + 1) * s)], xs[(i * d)..((i + 1) * d)]));
                    Assert.True(Numbers.MaxAbsDiff(one.Next, block.Next.AsSpan(i * s, s)) <= 1e-14, $"{kind} count {count} step {i}: f");
                    Assert.True(Numbers.MaxAbsDiff(one.Jacobian, block.Jacobian.AsSpan(i * s * s, s * s)) <= 1e-14, $"{kind}: J");
                    Assert.True(Numbers.MaxAbsDiff(one.Diagonal, block.Diagonal.AsSpan(i * s, s)) <= 1e-14, $"{kind}: diag");
                }
            }
        }
    });

    /// <summary>EvaluateBlock over many steps at once (the GEMM path), with projections from one ProjectInputs call.</summary>
    internal readonly struct LineariseBlock(double[] states, double[] x, int count) : ICellFunc<double, Linearised>
    {
        public Linearised Invoke<TCell>(TCell cell)
            where TCell : IRecurrentCell<double>
        {
            int s = cell.StateSize;
            var projections = new double[count * cell.ProjectionSize];
            var scratch = new double[cell.BlockWorkspaceSize(count)];
            cell.ProjectInputs(x, projections, count);
            double[] next = new double[count * s], jac = new double[count * s * s], diag = new double[count * s], next2 = new double[count * s];
            cell.EvaluateBlock(states, projections, next, jac, JacobianMode.Full, scratch, count);
            cell.EvaluateBlock(states, projections, next2, diag, JacobianMode.Diagonal, scratch, count);
            Assert.Equal(next, next2);
            return new Linearised(next, jac, diag);
        }
    }

    private static double[] Diagonal(double[] j, int s) => [.. Enumerable.Range(0, s).Select(i => j[i * s + i])];

    private static double[] FiniteDifference(ReferenceCell cell, double[] state, double[] x)
    {
        int s = state.Length;
        var j = new double[s * s];
        double[] plus = new double[s], minus = new double[s];
        for (int col = 0; col < s; col++)
        {
            const double H = 1e-5;
            double[] sp = (double[])state.Clone(), sm = (double[])state.Clone();
            sp[col] += H;
            sm[col] -= H;
            cell.Apply<double>(sp, x, plus);
            cell.Apply<double>(sm, x, minus);
            for (int i = 0; i < s; i++)
            {
                j[i * s + col] = (plus[i] - minus[i]) / (2 * H);
            }
        }

        return j;
    }

    internal sealed record Linearised(double[] Next, double[] Jacobian, double[] Diagonal);

    /// <summary>Evaluates f, J and diag(J) of a cell at (state, x), returned in double.</summary>
    internal readonly struct Linearise<T>(T[] state, T[] x) : ICellFunc<T, Linearised>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        public Linearise(double[] state, double[] x)
            : this(Numbers.As<T>(state), Numbers.As<T>(x))
        {
        }

        public Linearised Invoke<TCell>(TCell cell)
            where TCell : IRecurrentCell<T>
        {
            int s = cell.StateSize;
            var projection = new T[cell.ProjectionSize];
            var scratch = new T[Math.Max(cell.WorkspaceSize, cell.BlockWorkspaceSize(1))];
            cell.ProjectInputs(x, projection, 1);
            T[] next = new T[s], next2 = new T[s], next3 = new T[s], next4 = new T[s], jac = new T[s * s], diag = new T[s];
            cell.EvaluateBlock(state, projection, next, jac, JacobianMode.Full, scratch, 1);
            cell.EvaluateBlock(state, projection, next2, diag, JacobianMode.Diagonal, scratch, 1);
            cell.EvaluateBlock(state, projection, next4, default, JacobianMode.None, scratch, 1);
            cell.Evaluate(state, projection, next3, scratch);
            Assert.Equal(next, next2);
            Assert.Equal(next, next4);
            Assert.True(Numbers.MaxAbsDiff(Numbers.ToDouble(next), Numbers.ToDouble(next3)) <= (typeof(T) == typeof(float) ? 1e-6 : 1e-14));
            return new Linearised(Numbers.ToDouble(next), Numbers.ToDouble(jac), Numbers.ToDouble(diag));
        }
    }
}
