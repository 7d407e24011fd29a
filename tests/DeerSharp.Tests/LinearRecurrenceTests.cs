using System.Numerics;
using DeerSharp.Scan;

namespace DeerSharp.Tests;

/// <summary>The scans against a plain double-precision loop, over lengths around every chunk boundary.</summary>
public class LinearRecurrenceTests
{
    public static TheoryData<int, int, bool> Shapes()
    {
        var data = new TheoryData<int, int, bool>();
        foreach (int length in new[] { 0, 1, 2, 3, 255, 256, 257, 511, 512, 513, 1023, 1024, 1025, 2049, 4099 })
        {
            foreach (int n in new[] { 1, 3, 8 })
            {
                data.Add(length, n, false);
                if (length <= 2049)
                {
                    data.Add(length, n, true);
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Sequential_and_blocked_scans_match_a_plain_loop(int length, int n, bool dense)
    {
        Check<double>(length, n, dense, seed: length * 31 + n, tolerance: 1e-12);
        Check<float>(length, n, dense, seed: length * 17 + n, tolerance: 2e-5);
    }

    private static void Check<T>(int length, int n, bool dense, int seed, double tolerance)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var rnd = new Random(seed);
        int m = dense ? n * n : n;
        // Contractive maps (|a| < 1, dense rows scaled by 1/n) keep the states O(1) over thousands of steps.
        double[] a = Numbers.Uniform(rnd, length * m, dense ? 0.9 / n : 0.95), b = Numbers.Uniform(rnd, length * n), h0 = Numbers.Uniform(rnd, n);
        double[] expected = PlainLoop(a, b, h0, length, n, dense);

        T[] at = Numbers.As<T>(a), bt = Numbers.As<T>(b), h0t = Numbers.As<T>(h0);
        var sequential = new T[length * n];
        if (dense)
        {
            LinearRecurrence.SolveDenseSequential<T>(at, bt, h0t, sequential, n);
        }
        else
        {
            LinearRecurrence.SolveDiagonalSequential<T>(at, bt, h0t, sequential, n);
        }

        Assert.True(Numbers.MaxAbsDiff(expected, Numbers.ToDouble(sequential)) <= tolerance, "sequential loop");

        foreach (int chunks in new[] { 1, 2, 3, 7 })
        {
            var blocked = new T[length * n];
            LinearRecurrence.SolveBlocked(at, bt, h0t, blocked, length, n, dense, chunks, maxDegreeOfParallelism: 2);
            double diff = Numbers.MaxAbsDiff(expected, Numbers.ToDouble(blocked));
            Assert.True(diff <= tolerance, $"blocked scan, {chunks} chunks, length {length}, n {n}, dense {dense}: max diff {diff}");
        }

        // In place: the destination may be b itself.
        T[] inPlace = (T[])bt.Clone();
        LinearRecurrence.Solve(at, inPlace, h0t, inPlace, length, n, dense, maxDegreeOfParallelism: 4);
        Assert.True(Numbers.MaxAbsDiff(expected, Numbers.ToDouble(inPlace)) <= tolerance, "in place");
    }

    private static double[] PlainLoop(double[] a, double[] b, double[] h0, int length, int n, bool dense)
    {
        var h = new double[length * n];
        double[] prev = h0;
        for (int t = 0; t < length; t++)
        {
            var cur = new double[n];
            for (int i = 0; i < n; i++)
            {
                double v = b[t * n + i];
                if (dense)
                {
                    for (int j = 0; j < n; j++)
                    {
                        v += a[t * n * n + i * n + j] * prev[j];
                    }
                }
                else
                {
                    v += a[t * n + i] * prev[i];
                }

                cur[i] = v;
            }

            cur.CopyTo(h, t * n);
            prev = cur;
        }

        return h;
    }

    [Theory]
    [InlineData(false, 1)]
    [InlineData(false, 2)]
    [InlineData(false, 8)]
    [InlineData(true, 2)]
    [InlineData(true, 8)]
    public void Batched_scans_match_each_sequence_alone(bool dense, int cores) => Seeded.Run(rnd =>
    {
        const int B = 3, L = 1500, N = 3;
        int m = dense ? N * N : N;
        double[] a = Numbers.Uniform(rnd, B * L * m, dense ? 0.3 : 0.95), b = Numbers.Uniform(rnd, B * L * N), h0 = Numbers.Uniform(rnd, B * N);
        var h = new double[B * L * N];
        LinearRecurrence.SolveBatch(a, b, h0, h, B, L, N, dense, cores);
        for (int k = 0; k < B; k++)
        {
            double[] expected = PlainLoop(a[(k * L * m)..((k + 1) * L * m)], b[(k * L * N)..((k + 1) * L * N)], h0[(k * N)..((k + 1) * N)], L, N, dense);
            Assert.True(Numbers.MaxAbsDiff(expected, h.AsSpan(k * L * N, L * N)) <= 1e-12, $"sequence {k}");
        }

        Assert.Equal("h0", Assert.Throws<ArgumentException>(() => LinearRecurrence.SolveBatch(a, b, new double[2], h, B, L, N, dense, cores)).ParamName);
    });

    [Fact]
    public void The_blocked_scan_is_chosen_only_where_it_can_win()
    {
        // Dense: only when n is below the core count.
        Assert.Equal(1, LinearRecurrence.ChooseChunks(100_000, 16, dense: true, maxDegreeOfParallelism: 8));
        Assert.True(LinearRecurrence.ChooseChunks(100_000, 1, dense: true, maxDegreeOfParallelism: 8) > 1);
        // Two cores: never (the loop measured faster in and out of cache).
        Assert.Equal(1, LinearRecurrence.ChooseChunks(100_000, 16, dense: false, maxDegreeOfParallelism: 2));
        Assert.Equal(1, LinearRecurrence.ChooseChunks(1 << 20, 64, dense: false, maxDegreeOfParallelism: 2));
        // Four cores and more: whenever there are enough steps.
        Assert.True(LinearRecurrence.ChooseChunks(100_000, 16, dense: false, maxDegreeOfParallelism: 4) > 1);
        Assert.Equal(1, LinearRecurrence.ChooseChunks(100_000, 16, dense: false, maxDegreeOfParallelism: 1));
        Assert.Equal(1, LinearRecurrence.ChooseChunks(1000, 16, dense: false, maxDegreeOfParallelism: 8));
    }

    [Fact]
    public void Mis_shaped_arguments_are_rejected_with_the_shape()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            LinearRecurrence.SolveDiagonalSequential<double>(new double[5], new double[6], new double[3], new double[6], 3));
        Assert.Equal("a", ex.ParamName);
        Assert.Contains("[2, 3]", ex.Message, StringComparison.Ordinal);
        Assert.Contains("holds 5", ex.Message, StringComparison.Ordinal);
    }
}
