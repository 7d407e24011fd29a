using System.Diagnostics;

namespace DeerSharp.Cli.Bench;

/// <summary>Wall-clock timing: one warm-up run, then the median (and minimum) of repeated runs.</summary>
internal static class Stopwatches
{
    public readonly record struct Timing(double Median, double Min, int Runs);

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

        Array.Sort(seconds);
        return new Timing(seconds[seconds.Length / 2], seconds[0], seconds.Length);
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

        return [.. seconds.Select(s =>
        {
            Array.Sort(s);
            return new Timing(s[s.Length / 2], s[0], s.Length);
        })];
    }
}
