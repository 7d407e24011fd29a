using DeerSharp.Scan;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace DeerSharp.Tests;

/// <summary>The scan operator's laws (reference §2): associativity and a two-sided identity, diagonal and dense.</summary>
public class AffineMapLawTests
{
    public sealed record Case(int Seed, int N);

    internal static Gen<Case> Cases => from seed in Gen.Choose(0, int.MaxValue) from n in Gen.Choose(1, 7) select new Case(seed, n);

    [Property(Arbitrary = new[] { typeof(DeerArbitraries) }, MaxTest = 200)]
    public bool Diagonal_composition_is_associative_and_has_an_identity(Case c)
    {
        var rnd = new Random(c.Seed);
        int n = c.N;
        double[][] m = [.. Enumerable.Range(0, 6).Select(_ => Numbers.Uniform(rnd, n, 2.0))];
        var (xa, xb, ya, yb, za, zb) = (m[0], m[1], m[2], m[3], m[4], m[5]);
        double[] la = new double[n], lb = new double[n], ra = new double[n], rb = new double[n];
        AffineMap.ComposeDiagonal<double>(xa, xb, ya, yb, la, lb);
        AffineMap.ComposeDiagonal<double>(la, lb, za, zb, la, lb);     // (x∘y)∘z, outputs aliasing the first operand
        AffineMap.ComposeDiagonal<double>(ya, yb, za, zb, ra, rb);
        AffineMap.ComposeDiagonal<double>(xa, xb, ra, rb, ra, rb);     // x∘(y∘z), outputs aliasing the second operand
        double assoc = Math.Max(Numbers.MaxAbsDiff(la, ra), Numbers.MaxAbsDiff(lb, rb));

        double[] ia = new double[n], ib = new double[n], oa = new double[n], ob = new double[n];
        AffineMap.DiagonalIdentity<double>(ia, ib);
        AffineMap.ComposeDiagonal<double>(ia, ib, xa, xb, oa, ob);
        double left = Math.Max(Numbers.MaxAbsDiff(oa, xa), Numbers.MaxAbsDiff(ob, xb));
        AffineMap.ComposeDiagonal<double>(xa, xb, ia, ib, oa, ob);
        double right = Math.Max(Numbers.MaxAbsDiff(oa, xa), Numbers.MaxAbsDiff(ob, xb));
        return assoc <= 1e-12 && left == 0 && right == 0;
    }

    [Property(Arbitrary = new[] { typeof(DeerArbitraries) }, MaxTest = 200)]
    public bool Dense_composition_is_associative_and_has_an_identity(Case c)
    {
        var rnd = new Random(c.Seed);
        int n = c.N, nn = n * n;
        double[] xa = Numbers.Uniform(rnd, nn), xb = Numbers.Uniform(rnd, n), ya = Numbers.Uniform(rnd, nn), yb = Numbers.Uniform(rnd, n);
        double[] za = Numbers.Uniform(rnd, nn), zb = Numbers.Uniform(rnd, n);
        var scratch = new double[nn + n];
        double[] la = new double[nn], lb = new double[n], ra = new double[nn], rb = new double[n];
        AffineMap.ComposeDense<double>(xa, xb, ya, yb, la, lb, n, scratch);
        AffineMap.ComposeDense<double>(la, lb, za, zb, la, lb, n, scratch);
        AffineMap.ComposeDense<double>(ya, yb, za, zb, ra, rb, n, scratch);
        AffineMap.ComposeDense<double>(xa, xb, ra, rb, ra, rb, n, scratch);
        double assoc = Math.Max(Numbers.MaxAbsDiff(la, ra), Numbers.MaxAbsDiff(lb, rb));

        double[] ia = new double[nn], ib = new double[n], oa = new double[nn], ob = new double[n];
        AffineMap.DenseIdentity<double>(ia, ib, n);
        AffineMap.ComposeDense<double>(ia, ib, xa, xb, oa, ob, n, scratch);
        double left = Math.Max(Numbers.MaxAbsDiff(oa, xa), Numbers.MaxAbsDiff(ob, xb));
        AffineMap.ComposeDense<double>(xa, xb, ia, ib, oa, ob, n, scratch);
        double right = Math.Max(Numbers.MaxAbsDiff(oa, xa), Numbers.MaxAbsDiff(ob, xb));
        return assoc <= 1e-12 && left <= 1e-15 && right <= 1e-15;
    }

    [Fact]
    public void Composition_applies_first_map_then_second()
    {
        // Not commutative: applying the composed map to h equals applying first then second.
        var rnd = new Random(7);
        const int n = 3;
        double[] a1 = Numbers.Uniform(rnd, n * n), b1 = Numbers.Uniform(rnd, n), a2 = Numbers.Uniform(rnd, n * n), b2 = Numbers.Uniform(rnd, n);
        double[] h = Numbers.Uniform(rnd, n);
        double[] a = new double[n * n], b = new double[n];
        AffineMap.ComposeDense<double>(a1, b1, a2, b2, a, b, n, new double[n * n + n]);
        double[] step1 = Apply(a1, b1, h), expected = Apply(a2, b2, step1), actual = Apply(a, b, h);
        Assert.True(Numbers.MaxAbsDiff(expected, actual) <= 1e-14);

        static double[] Apply(double[] a, double[] b, double[] h)
        {
            var r = new double[b.Length];
            for (int i = 0; i < b.Length; i++)
            {
                r[i] = b[i];
                for (int j = 0; j < b.Length; j++)
                {
                    r[i] += a[i * b.Length + j] * h[j];
                }
            }

            return r;
        }
    }
}
