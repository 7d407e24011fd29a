using System.Numerics;

namespace DeerSharp.Tests;

/// <summary>Random data and comparisons shared by the tests.</summary>
internal static class Numbers
{
    public static double[] Uniform(Random random, int count, double scale = 1.0)
    {
        var v = new double[count];
        for (int i = 0; i < count; i++)
        {
            v[i] = (random.NextDouble() * 2 - 1) * scale;
        }

        return v;
    }

    public static T[] As<T>(double[] v)
        where T : INumberBase<T> => [.. v.Select(T.CreateTruncating)];

    public static double[] ToDouble<T>(T[] v)
        where T : INumberBase<T> => [.. v.Select(double.CreateTruncating)];

    public static double MaxAbsDiff(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        Assert.Equal(a.Length, b.Length);
        double max = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = Math.Abs(a[i] - b[i]);
            if (double.IsNaN(d))
            {
                return double.NaN;
            }

            max = Math.Max(max, d);
        }

        return max;
    }

    /// <summary>Agreement with the sequential loop expected of a converged solve, per element type.</summary>
    public static double AgreementTolerance<T>() => typeof(T) == typeof(float) ? 2e-4 : 1e-8;
}
