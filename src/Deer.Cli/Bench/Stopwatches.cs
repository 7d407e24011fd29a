using System.Diagnostics;
using MathNet.Numerics.Distributions;
using MathNet.Numerics.Statistics;

namespace DeerSharp.Cli.Bench;

/// <summary>Wall-clock timing: one warm-up run, then the median (and minimum) of repeated runs.</summary>
internal static class Stopwatches
{
    /// <summary>
    /// The statistics of repeated runs, from MathNet.Numerics: median, quartiles, and a distribution-free 95% confidence
    /// interval for the median (the order statistics whose binomial(n, ½) coverage is ≥ 95%; with fewer than 6 runs no
    /// such pair exists and the interval is the whole range).
    /// </summary>
    public readonly record struct Timing(double Median, double Min, int Runs, double LowerQuartile, double UpperQuartile, double MedianCiLow, double MedianCiHigh)
    {
        public static Timing Of(double[] seconds)
        {
            double[] sorted = [.. seconds.Order()];
            int n = sorted.Length;
            // The largest j with P(j ≤ Binomial(n, ½) ≤ n − j − 1) ≥ 0.95 gives the interval [x_(j), x_(n−j−1)] (0-based).
            int j = 0;
            for (int k = 1; k < n / 2; k++)
            {
                double coverage = Binomial.CDF(0.5, n, n - k - 1) - Binomial.CDF(0.5, n, k - 1);
                if (coverage >= 0.95)
                {
                    j = k;
                }
            }

            return new Timing(sorted.Median(), sorted[0], n, sorted.LowerQuartile(), sorted.UpperQuartile(), sorted[j], sorted[n - 1 - j]);
        }
    }

    public static Timing Measure(Action run, int repeats)
    {
        run();
        var seconds = new double[Math.Max(1, repeats)];
        for (int i = 0; i < seconds.Length; i++)
        {
            long start = Stopwatch.GetTimestamp();
            run();
            seconds[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
        }

        return Timing.Of(seconds);
    }

    /// <summary>
    /// Times several contenders in rounds, one run of each per round, so drift in the machine (a shared VM's memory
    /// bandwidth moves by tens of percent) falls on all of them alike. One warm-up round first.
    /// </summary>
    public static Timing[] MeasureInterleaved(Action[] runs, int repeats)
    {
        foreach (Action run in runs)
        {
            run();
        }

        var seconds = new double[runs.Length][];
        for (int k = 0; k < runs.Length; k++)
        {
            seconds[k] = new double[Math.Max(1, repeats)];
        }

        for (int i = 0; i < Math.Max(1, repeats); i++)
        {
            for (int k = 0; k < runs.Length; k++)
            {
                long start = Stopwatch.GetTimestamp();
                runs[k]();
                seconds[k][i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
            }
        }

        return [.. seconds.Select(Timing.Of)];
    }
}
