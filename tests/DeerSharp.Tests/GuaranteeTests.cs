using System.Collections.Concurrent;
using System.Numerics;
using DeerSharp.Cells;

namespace DeerSharp.Tests;

/// <summary>Bounded memory, cancellation, progress, thread safety and size validation.</summary>
public class GuaranteeTests
{
    private static double[,] Inputs(int length, int d, int seed)
    {
        var rnd = new Random(seed);
        var x = new double[length, d];
        for (int t = 0; t < length; t++)
        {
            for (int i = 0; i < d; i++)
            {
                x[t, i] = rnd.NextDouble() * 2 - 1;
            }
        }

        return x;
    }

    [Theory]
    [InlineData(SolveMethod.Sequential)]
    [InlineData(SolveMethod.Deer)]
    [InlineData(SolveMethod.QuasiDeer)]
    [InlineData(SolveMethod.Picard)]
    [InlineData(SolveMethod.QuasiElk)]
    public void Over_budget_sequences_are_solved_in_windows_with_the_same_answer(SolveMethod method)
    {
        var gru = GruCell<double>.Random(3, 6, new Random(2));
        double[,] x = Inputs(5000, 3, 3);
        SolveResult<double> whole = Deer.Solve(gru, x, new SolveOptions { Method = SolveMethod.Sequential });
        // 64 KiB holds a few hundred steps of DEER's Jacobians: the 5,000 steps need many windows.
        SolveResult<double> windowed = Deer.Solve(gru, x, new SolveOptions { Method = method, MemoryBudgetBytes = 64 << 10, Fallback = FallbackPolicy.None });
        Assert.True(windowed.Converged, windowed.ToString());
        Assert.True(method == SolveMethod.Sequential || windowed.Windows > 1, $"{windowed.Windows} window(s)");
        Assert.True(Numbers.MaxAbsDiff(whole.States, windowed.States) <= 1e-8, windowed.ToString());
    }

    [Fact]
    public void A_budget_smaller_than_one_step_is_refused_by_name()
    {
        var lstm = LstmCell<double>.Random(3, 16, new Random(2));
        var ex = Assert.Throws<InsufficientMemoryException>(() =>
            Deer.Solve(lstm, Inputs(100, 3, 1), new SolveOptions { Method = SolveMethod.Deer, MemoryBudgetBytes = 1000 }));
        Assert.Contains("MemoryBudgetBytes", ex.Message, StringComparison.Ordinal);
        Assert.Equal("MemoryBudgetBytes", Assert.Throws<ArgumentOutOfRangeException>(() =>
            Deer.Solve(lstm, Inputs(10, 3, 1), new SolveOptions { MemoryBudgetBytes = 0 })).ParamName);
    }

    [Theory]
    [InlineData(SolveMethod.Sequential)]
    [InlineData(SolveMethod.QuasiDeer)]
    [InlineData(SolveMethod.QuasiElk)]
    public void Cancellation_stops_a_solve(SolveMethod method)
    {
        var gru = GruCell<double>.Random(3, 6, new Random(2));
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() =>
            Deer.Solve(gru, Inputs(10_000, 3, 1), new SolveOptions { Method = method, CancellationToken = cancelled.Token }));

        // Cancelled from inside, at the first progress report.
        using var midway = new CancellationTokenSource();
        var progress = new Inline(_ => midway.Cancel());
        if (method != SolveMethod.Sequential)
        {
            Assert.ThrowsAny<OperationCanceledException>(() => Deer.Solve(gru, Inputs(10_000, 3, 1),
                new SolveOptions { Method = method, CancellationToken = midway.Token, Progress = progress }));
        }
    }

    /// <summary>IProgress that runs its handler on the reporting thread (Progress&lt;T&gt; would post it elsewhere).</summary>
    private sealed class Inline(Action<SolveProgress> handler) : IProgress<SolveProgress>
    {
        public void Report(SolveProgress value) => handler(value);
    }

    [Fact]
    public void Progress_reports_every_checked_iterate_of_every_sequence()
    {
        var lstm = LstmCell<double>.Random(2, 4, new Random(5));
        var reports = new ConcurrentBag<SolveProgress>();
        var x = new double[3, 800, 2];
        var rnd = new Random(6);
        for (int b = 0; b < 3; b++)
        {
            for (int t = 0; t < 800; t++)
            {
                x[b, t, 0] = rnd.NextDouble();
                x[b, t, 1] = rnd.NextDouble();
            }
        }

        SolveResult<double> r = Deer.Solve(lstm, x, new SolveOptions { Method = SolveMethod.QuasiDeer, Progress = new Inline(reports.Add) });
        Assert.True(r.Converged);
        for (int b = 0; b < 3; b++)
        {
            var mine = reports.Where(p => p.Sequence == b).OrderBy(p => p.Iteration).ToList();
            Assert.Equal(Enumerable.Range(0, mine.Count), mine.Select(p => p.Iteration));
            Assert.All(mine, p => Assert.Equal(SolveMethod.QuasiDeer, p.Method));
            Assert.True(mine[^1].Residual <= 1e-8);
        }

        Assert.Equal(r.Iterations + 1, reports.GroupBy(p => p.Sequence).Max(g => g.Count()));
    }

    [Fact]
    public void Cells_and_solvers_serve_many_threads_at_once()
    {
        var gru = GruCell<float>.Random(4, 8, new Random(1));
        var lstm = new AutoDiffCell<SolveApiTests.CoupledOscillators, double>(new SolveApiTests.CoupledOscillators());
        SolveMethod[] methods = [SolveMethod.Sequential, SolveMethod.Deer, SolveMethod.QuasiDeer, SolveMethod.Picard, SolveMethod.QuasiElk];
        var inputs = Enumerable.Range(0, 24).Select(k =>
        {
            var rnd = new Random(k);
            var x = new float[700, 4];
            for (int t = 0; t < 700; t++)
            {
                for (int i = 0; i < 4; i++)
                {
                    x[t, i] = (float)(rnd.NextDouble() * 2 - 1);
                }
            }

            return x;
        }).ToArray();
        float[][] expected = [.. inputs.Select(x => Deer.Solve(gru, x, new SolveOptions { Method = SolveMethod.Sequential }).States)];
        var custom = Inputs(600, 1, 9);
        double[] customExpected = Deer.Solve(lstm, custom, new SolveOptions { Method = SolveMethod.Sequential }).States;

        // 48 solves on 8 threads, sharing the same two cell instances, mixing methods.
        var failures = new ConcurrentBag<string>();
        Parallel.For(0, 48, new ParallelOptions { MaxDegreeOfParallelism = 8 }, k =>
        {
            SolveMethod m = methods[k % methods.Length];
            if (k % 2 == 0)
            {
                SolveResult<float> r = Deer.Solve(gru, inputs[k % 24], new SolveOptions { Method = m, Fallback = FallbackPolicy.None });
                double diff = Numbers.MaxAbsDiff(Numbers.ToDouble(expected[k % 24]), Numbers.ToDouble(r.States));
                if (!r.Converged || diff > 2e-4)
                {
                    failures.Add($"gru solve {k} ({m}): converged {r.Converged}, diff {diff}");
                }
            }
            else
            {
                SolveResult<double> r = Deer.Solve(lstm, custom, new SolveOptions { Method = m, Fallback = FallbackPolicy.None });
                double diff = Numbers.MaxAbsDiff(customExpected, r.States);
                if (!r.Converged || diff > 1e-8)
                {
                    failures.Add($"custom solve {k} ({m}): converged {r.Converged}, diff {diff}");
                }
            }
        });
        Assert.Empty(failures);
    }

    /// <summary>A recurrence with no input: h_t = h_{t-1} / 2.</summary>
    private readonly struct Halving : IRecurrence
    {
        public int StateSize => 1;

        public int InputSize => 0;

        public void Apply<TNum>(ReadOnlySpan<TNum> state, ReadOnlySpan<TNum> input, Span<TNum> next)
            where TNum : IFloatingPointIeee754<TNum> => next[0] = state[0] / (TNum.One + TNum.One);
    }

    [Fact]
    public void Sizes_past_what_an_array_can_index_are_refused_before_allocating()
    {
        var cell = new AutoDiffCell<Halving, double>(new Halving());
        var ex = Assert.Throws<ArgumentException>(() => Deer.Solve(cell, ReadOnlySpan<double>.Empty, batchSize: 4, length: 1_000_000_000));
        Assert.Contains("more than one .NET array can hold", ex.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => Deer.Solve(cell, ReadOnlySpan<double>.Empty, batchSize: -1, length: 3));
    }
}
