using System.Numerics;
using DeerSharp.Cells;

namespace DeerSharp.Tests;

/// <summary>
/// The GRU with the reset gate before the product (ONNX's linear_before_reset = 0): f against the equations written here
/// independently, its hand-written Jacobian (full and diagonal, one step and in blocks) against forward-mode AD of that
/// independent form (1e-13) and central differences (1e-7), and every method against the loop, on fresh random weights.
/// </summary>
public class ResetBeforeGruTests
{
    [Fact]
    public void Jacobians_match_AD_and_finite_differences() => Seeded.Run(rnd =>
    {
        foreach ((int d, int n) in new[] { (1, 1), (3, 2), (2, 5), (4, 7) })
        {
            RecurrentWeights<double> w = RecurrentWeights<double>.Random(3, n, d, rnd, scale: 1.5);
            var cell = new ResetBeforeGruCell<double>(w);
            var reference = new AutoDiffCell<Reference, double>(new Reference(w));
            double[] h = Numbers.Uniform(rnd, n, 1.5), x = Numbers.Uniform(rnd, d);
            var analytic = new JacobianTests.Linearise<double>(h, x).Invoke(cell);
            var ad = new JacobianTests.Linearise<double>(h, x).Invoke(reference);
            Assert.True(Numbers.MaxAbsDiff(analytic.Next, ad.Next) <= 1e-14, $"n={n}: f against the independent equations");
            Assert.True(Numbers.MaxAbsDiff(analytic.Jacobian, ad.Jacobian) <= 1e-13, $"n={n}: J against AD");
            Assert.True(Numbers.MaxAbsDiff(analytic.Diagonal, [.. Enumerable.Range(0, n).Select(i => ad.Jacobian[(i * n) + i])]) <= 1e-13, $"n={n}: diag");

            var finite = new double[n * n];
            for (int col = 0; col < n; col++)
            {
                double[] plus = (double[])h.Clone(), minus = (double[])h.Clone();
                plus[col] += 1e-5;
                minus[col] -= 1e-5;
                double[] fp = new JacobianTests.Linearise<double>(plus, x).Invoke(cell).Next, fm = new JacobianTests.Linearise<double>(minus, x).Invoke(cell).Next;
                for (int i = 0; i < n; i++)
                {
                    finite[(i * n) + col] = (fp[i] - fm[i]) / 2e-5;
                }
            }

            Assert.True(Numbers.MaxAbsDiff(analytic.Jacobian, finite) <= 1e-7, $"n={n}: J against central differences");

            // Many steps at once equal one at a time.
            const int Count = 9;
            double[] states = Numbers.Uniform(rnd, Count * n), xs = Numbers.Uniform(rnd, Count * d);
            var block = new JacobianTests.LineariseBlock(states, xs, Count).Invoke(cell);
            for (int k = 0; k < Count; k++)
            {
                var one = new JacobianTests.Linearise<double>(states[(k * n)..((k + 1) * n)], xs[(k * d)..((k + 1) * d)]).Invoke(cell);
                Assert.True(Numbers.MaxAbsDiff(one.Jacobian, block.Jacobian.AsSpan(k * n * n, n * n)) <= 1e-14, $"n={n}: block step {k}");
            }
        }
    });

    [Fact]
    public void Every_method_reaches_the_loop() => Seeded.Run(rnd =>
    {
        const int T = 700, D = 3, N = 6;
        var cell = new ResetBeforeGruCell<double>(RecurrentWeights<double>.Random(3, N, D, rnd));
        double[] x = Numbers.Uniform(rnd, 2 * T * D, 2), h0 = Numbers.Uniform(rnd, 2 * N);
        SolveResult<double> loop = Deer.Solve(cell, x, 2, T, new SolveOptions { Method = SolveMethod.Sequential }, h0);
        double[] reference = Independent(cell.Weights, x, h0, 2, T);
        Assert.True(Numbers.MaxAbsDiff(loop.States, reference) <= 1e-12, "the loop against the equations");
        foreach (SolveMethod method in new[] { SolveMethod.Deer, SolveMethod.QuasiDeer, SolveMethod.QuasiElk, SolveMethod.Picard })
        {
            SolveResult<double> r = Deer.Solve(cell, x, 2, T, new SolveOptions { Method = method, Fallback = FallbackPolicy.None, MaxIterations = T,
                AbsoluteTolerance = 1e-11, RelativeTolerance = 1e-11 }, h0);
            Assert.True(r.Converged, $"{method}: {r}");
            Assert.True(Numbers.MaxAbsDiff(r.States, loop.States) <= 1e-8, $"{method}: states");
        }
    });

    /// <summary>h' = (1 − z) tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn) + z h, step by step in plain loops.</summary>
    internal static double[] Independent(RecurrentWeights<double> w, double[] x, double[] h0, int batch, int length)
    {
        int n = w.HiddenSize, d = w.InputSize;
        var states = new double[batch * length * n];
        for (int b = 0; b < batch; b++)
        {
            double[] h = h0[(b * n)..((b + 1) * n)];
            for (int t = 0; t < length; t++)
            {
                double[] next = Step(w, h, x.AsSpan(((b * length) + t) * d, d));
                next.CopyTo(states, ((b * length) + t) * n);
                h = next;
            }
        }

        return states;
    }

    private static double[] Step(RecurrentWeights<double> w, double[] h, ReadOnlySpan<double> x)
    {
        int n = w.HiddenSize, d = w.InputSize;
        double Input(int row, ReadOnlySpan<double> xs)
        {
            double sum = w.BiasIH[row] + w.BiasHH[row];
            for (int j = 0; j < d; j++)
            {
                sum += w.WeightIH[(row * d) + j] * xs[j];
            }

            return sum;
        }

        double Hidden(int row, double[] v)
        {
            double sum = 0;
            for (int j = 0; j < n; j++)
            {
                sum += w.WeightHH[(row * n) + j] * v[j];
            }

            return sum;
        }

        var r = new double[n];
        var z = new double[n];
        for (int i = 0; i < n; i++)
        {
            r[i] = 1 / (1 + Math.Exp(-(Input(i, x) + Hidden(i, h))));
            z[i] = 1 / (1 + Math.Exp(-(Input(n + i, x) + Hidden(n + i, h))));
        }

        double[] gated = [.. r.Zip(h, (a, b) => a * b)];
        var next = new double[n];
        for (int i = 0; i < n; i++)
        {
            next[i] = ((1 - z[i]) * Math.Tanh(Input((2 * n) + i, x) + Hidden((2 * n) + i, gated))) + (z[i] * h[i]);
        }

        return next;
    }

    /// <summary>The same equations generic over the number type, so AD differentiates an independent form.</summary>
    private readonly struct Reference(RecurrentWeights<double> w) : IRecurrence
    {
        public int StateSize => w.HiddenSize;

        public int InputSize => w.InputSize;

        public void Apply<TNum>(ReadOnlySpan<TNum> h, ReadOnlySpan<TNum> x, Span<TNum> next)
            where TNum : IFloatingPointIeee754<TNum>
        {
            int n = w.HiddenSize, d = w.InputSize;
            TNum Row(int row, ReadOnlySpan<TNum> v, double[] weights, int width)
            {
                TNum sum = TNum.Zero;
                for (int j = 0; j < width; j++)
                {
                    sum += TNum.CreateTruncating(weights[(row * width) + j]) * v[j];
                }

                return sum;
            }

            Span<TNum> gated = new TNum[n];
            Span<TNum> z = new TNum[n];
            for (int i = 0; i < n; i++)
            {
                TNum r = TNum.One / (TNum.One + TNum.Exp(-(Row(i, x, w.WeightIH, d) + TNum.CreateTruncating(w.BiasIH[i] + w.BiasHH[i]) + Row(i, h, w.WeightHH, n))));
                z[i] = TNum.One / (TNum.One + TNum.Exp(-(Row(n + i, x, w.WeightIH, d) + TNum.CreateTruncating(w.BiasIH[n + i] + w.BiasHH[n + i]) + Row(n + i, h, w.WeightHH, n))));
                gated[i] = r * h[i];
            }

            for (int i = 0; i < n; i++)
            {
                TNum candidate = TNum.Tanh(Row((2 * n) + i, x, w.WeightIH, d) + TNum.CreateTruncating(w.BiasIH[(2 * n) + i] + w.BiasHH[(2 * n) + i])
                    + Row((2 * n) + i, gated, w.WeightHH, n));
                next[i] = ((TNum.One - z[i]) * candidate) + (z[i] * h[i]);
            }
        }
    }
}
