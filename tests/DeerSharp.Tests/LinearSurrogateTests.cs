using System.Numerics;
using DeerSharp.Cells;

namespace DeerSharp.Tests;

/// <summary>GILR and GILR-LSTM against their equations written out independently, through every method, with gradients.</summary>
public class LinearSurrogateTests
{
    /// <summary>Martin &amp; Cundy's equations, generic over TNum: state [h] for GILR, [h; h~; c] for GILR-LSTM.</summary>
    private readonly struct Reference(GilrLstmWeights<double>? lstm, GilrWeights<double> gilr) : IRecurrence
    {
        private int N => gilr.HiddenSize;

        public int StateSize => lstm is null ? N : 3 * N;

        public int InputSize => gilr.InputSize;

        public void Apply<TNum>(ReadOnlySpan<TNum> s, ReadOnlySpan<TNum> x, Span<TNum> next)
            where TNum : IFloatingPointIeee754<TNum>
        {
            int n = N, d = InputSize;
            int hs = lstm is null ? 0 : n;                                          // where h~ lives in the state
            for (int j = 0; j < n; j++)
            {
                TNum ug = TNum.CreateTruncating(gilr.GateBias[j]), vi = TNum.CreateTruncating(gilr.ImpulseBias[j]);
                for (int k = 0; k < d; k++)
                {
                    ug += TNum.CreateTruncating(gilr.GateWeight[j * d + k]) * x[k];
                    vi += TNum.CreateTruncating(gilr.ImpulseWeight[j * d + k]) * x[k];
                }

                TNum g = TNum.One / (TNum.One + TNum.Exp(-ug)), i = TNum.Tanh(vi);
                next[hs + j] = g * s[hs + j] + (TNum.One - g) * i;
            }

            if (lstm is null)
            {
                return;
            }

            for (int j = 0; j < n; j++)
            {
                var pre = new TNum[4];
                for (int q = 0; q < 4; q++)
                {
                    int r = q * n + j;
                    TNum a = TNum.CreateTruncating(lstm.Bias[r]);
                    for (int k = 0; k < d; k++)
                    {
                        a += TNum.CreateTruncating(lstm.WeightIH[r * d + k]) * x[k];
                    }

                    for (int k = 0; k < n; k++)
                    {
                        a += TNum.CreateTruncating(lstm.WeightHH[r * n + k]) * s[n + k];    // h~_{t-1}
                    }

                    pre[q] = a;
                }

                TNum ig = Sig(pre[0]), fg = Sig(pre[1]), zg = TNum.Tanh(pre[2]), og = Sig(pre[3]);
                TNum c = fg * s[2 * n + j] + ig * zg;
                next[2 * n + j] = c;
                next[j] = og * c;
            }
        }

        private static TNum Sig<TNum>(TNum v)
            where TNum : IFloatingPointIeee754<TNum> => TNum.One / (TNum.One + TNum.Exp(-v));
    }

    private static double[] Loop(Reference r, double[] x, int length, double[]? h0 = null)
    {
        int s = r.StateSize, d = r.InputSize;
        var states = new double[length * s];
        double[] previous = h0 ?? new double[s];
        for (int t = 0; t < length; t++)
        {
            r.Apply<double>(previous, x.AsSpan(t * d, d), states.AsSpan(t * s, s));
            previous = states[(t * s)..((t + 1) * s)];
        }

        return states;
    }

    public static TheoryData<bool, SolveMethod> Cases()
    {
        var data = new TheoryData<bool, SolveMethod>();
        foreach (bool lstm in new[] { false, true })
        {
            foreach (SolveMethod m in new[] { SolveMethod.Scan, SolveMethod.Auto, SolveMethod.Sequential, SolveMethod.Deer, SolveMethod.QuasiDeer, SolveMethod.Picard, SolveMethod.QuasiElk })
            {
                data.Add(lstm, m);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Every_method_reproduces_the_equations(bool lstm, SolveMethod method) => Seeded.Run(rnd =>
    {
        const int D = 5, N = 6, L = 1500, B = 2;
        var gl = GilrLstmWeights<double>.Random(N, D, rnd);
        GilrWeights<double> g = lstm ? gl.Surrogate : GilrWeights<double>.Random(N, D, rnd);
        var reference = new Reference(lstm ? gl : null, g);
        double[] x = Numbers.Uniform(rnd, B * L * D, 2.0);
        int s = reference.StateSize;
        double[] h0 = Numbers.Uniform(rnd, B * s, 0.5);
        var options = new SolveOptions { Method = method, Fallback = FallbackPolicy.None, AbsoluteTolerance = 1e-12, RelativeTolerance = 1e-12 };
        SolveResult<double> r = lstm
            ? Deer.Solve(new GilrLstmCell<double>(gl), x, B, L, options, h0)
            : Deer.Solve(new GilrCell<double>(g), x, B, L, options, h0);
        Assert.True(r.Converged, r.ToString());
        for (int b = 0; b < B; b++)
        {
            double[] expected = Loop(reference, x[(b * L * D)..((b + 1) * L * D)], L, h0[(b * s)..((b + 1) * s)]);
            Assert.True(Numbers.MaxAbsDiff(expected, r.States.AsSpan(b * L * s, L * s)) <= 1e-10, $"{(lstm ? "GILR-LSTM" : "GILR")} {method}, sequence {b}");
        }

        if (method is SolveMethod.Scan)
        {
            Assert.Equal(SolveMethod.Scan, r.Method);
            Assert.Equal(1, r.Iterations);
        }

        // On the CPU, Auto runs a surrogate's loop: its scans run in order there, which is the loop plus a residual check.
        if (method is SolveMethod.Auto)
        {
            Assert.Equal(SolveMethod.Sequential, r.Method);
        }
    });

    [Fact]
    public void Jacobians_match_automatic_differentiation() => Seeded.Run(rnd =>
    {
        foreach (bool lstm in new[] { false, true })
        {
            var gl = GilrLstmWeights<double>.Random(4, 3, rnd);
            GilrWeights<double> g = lstm ? gl.Surrogate : GilrWeights<double>.Random(4, 3, rnd);
            var reference = new AutoDiffCell<Reference, double>(new Reference(lstm ? gl : null, g));
            int s = reference.StateSize;
            double[] state = Numbers.Uniform(rnd, s), x = Numbers.Uniform(rnd, 3);
            var ad = new JacobianTests.Linearise<double>(state, x).Invoke(reference);
            var analytic = lstm ? new JacobianTests.Linearise<double>(state, x).Invoke(new GilrLstmCell<double>(gl))
                                : new JacobianTests.Linearise<double>(state, x).Invoke(new GilrCell<double>(g));
            Assert.True(Numbers.MaxAbsDiff(ad.Next, analytic.Next) <= 1e-14);
            Assert.True(Numbers.MaxAbsDiff(ad.Jacobian, analytic.Jacobian) <= 1e-13, lstm ? "GILR-LSTM J" : "GILR J");
            Assert.True(Numbers.MaxAbsDiff(ad.Diagonal, analytic.Diagonal) <= 1e-13, lstm ? "GILR-LSTM diag" : "GILR diag");
        }
    });

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Gradients_match_finite_differences_and_BPTT(bool lstm) => Seeded.Run(rnd =>
    {
        const int D = 3, N = 4, L = 40, B = 2;
        var gl = GilrLstmWeights<double>.Random(N, D, rnd);
        GilrWeights<double> g = lstm ? gl.Surrogate : GilrWeights<double>.Random(N, D, rnd);
        double[] x = Numbers.Uniform(rnd, B * L * D), c = Numbers.Uniform(rnd, B * L * N);
        int s = lstm ? 3 * N : N;
        double[] h0 = Numbers.Uniform(rnd, B * s, 0.3);
        var sequential = new SolveOptions { Method = SolveMethod.Sequential };
        double Loss() => (lstm ? Deer.Solve(new GilrLstmCell<double>(gl), x, B, L, sequential, h0) : Deer.Solve(new GilrCell<double>(g), x, B, L, sequential, h0))
            .Outputs().Zip(c).Sum(q => q.First * q.Second);
        GradientResult<double> Grad(AdjointMethod adjoint, SolveMethod method) => lstm
            ? Deer.Gradient(new GilrLstmCell<double>(gl), x, B, L, c, new SolveOptions { Method = method }, new GradientOptions { Adjoint = adjoint }, h0)
            : Deer.Gradient(new GilrCell<double>(g), x, B, L, c, new SolveOptions { Method = method }, new GradientOptions { Adjoint = adjoint }, h0);
        GradientResult<double> scan = Grad(AdjointMethod.Scan, SolveMethod.Scan), bptt = Grad(AdjointMethod.Sequential, SolveMethod.Sequential);
        double scale = bptt.ParameterGradient.Max(Math.Abs);
        Assert.True(Numbers.MaxAbsDiff(bptt.ParameterGradient, scan.ParameterGradient) <= 1e-10 * scale);
        Assert.True(Numbers.MaxAbsDiff(bptt.InputGradient, scan.InputGradient) <= 1e-10 * Math.Max(1e-12, bptt.InputGradient.Max(Math.Abs)));

        // Central differences: a few coordinates of every weight array, the inputs and h0.
        var arrays = lstm
            ? new[] { gl.Surrogate.GateWeight, gl.Surrogate.GateBias, gl.Surrogate.ImpulseWeight, gl.Surrogate.ImpulseBias, gl.WeightIH, gl.WeightHH, gl.Bias }
            : new[] { g.GateWeight, g.GateBias, g.ImpulseWeight, g.ImpulseBias };
        int offset = 0;
        foreach (double[] array in arrays)
        {
            for (int trial = 0; trial < 3; trial++)
            {
                int i = rnd.Next(array.Length);
                const double H = 1e-6;
                array[i] += H;
                double up = Loss();
                array[i] -= 2 * H;
                double down = Loss();
                array[i] += H;
                double numeric = (up - down) / (2 * H), analytic = scan.ParameterGradient[offset + i];
                Assert.True(Math.Abs(analytic - numeric) <= 1e-6 * Math.Max(1, Math.Abs(numeric)), $"parameter {offset + i}: {analytic} vs {numeric}");
            }

            offset += array.Length;
        }

        Assert.Equal(offset, scan.ParameterGradient.Length);
        foreach ((double[] target, double[] grad) in new[] { (x, scan.InputGradient), (h0, scan.InitialStateGradient) })
        {
            for (int trial = 0; trial < 4; trial++)
            {
                int i = rnd.Next(target.Length);
                const double H = 1e-6;
                target[i] += H;
                double up = Loss();
                target[i] -= 2 * H;
                double down = Loss();
                target[i] += H;
                double numeric = (up - down) / (2 * H);
                Assert.True(Math.Abs(grad[i] - numeric) <= 1e-6 * Math.Max(1, Math.Abs(numeric)), $"{grad[i]} vs {numeric}");
            }
        }
    });

    [Fact]
    public void Stacked_GILR_LSTM_layers_feed_outputs_upward_and_scan_needs_a_surrogate() => Seeded.Run(rnd =>
    {
        var w0 = GilrLstmWeights<double>.Random(5, 3, rnd);
        var w1 = GilrLstmWeights<double>.Random(5, 5, rnd);
        double[] x = Numbers.Uniform(rnd, 300 * 3);
        var stack = new StackedCells<GilrLstmCell<double>, double>(new(w0), new(w1));
        SolveResult<double> r = Deer.Solve(stack, x, 1, 300, new SolveOptions { Method = SolveMethod.Scan });
        double[] layer0 = Loop(new Reference(w0, w0.Surrogate), x, 300);
        double[] h = [.. Enumerable.Range(0, 300).SelectMany(t => layer0.Skip(t * 15).Take(5))];
        double[] expected = Loop(new Reference(w1, w1.Surrogate), h, 300);
        Assert.True(r.Converged);
        Assert.Equal(2, r.Iterations);
        Assert.True(Numbers.MaxAbsDiff(expected, r.States) <= 1e-10);

        var ex = Assert.Throws<ArgumentException>(() => Deer.Solve(GruCell<double>.Random(3, 4, rnd), new double[10, 3], new SolveOptions { Method = SolveMethod.Scan }));
        Assert.Contains("linear-surrogate", ex.Message, StringComparison.Ordinal);
    });
}
