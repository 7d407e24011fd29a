using DeerSharp.Cells;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace DeerSharp.Tests;

/// <summary>
/// The backward pass against central finite differences (float64) and against backpropagation through time, for every
/// cell, every forward method, batches, stacks and custom cells.
/// </summary>
public class GradientTests
{
    private const int T = 25, D = 3, N = 4, B = 2;

    private static readonly SolveOptions Tight = new() { AbsoluteTolerance = 1e-13, RelativeTolerance = 1e-13, Fallback = FallbackPolicy.None };

    /// <summary>L = Σ C ⊙ output for a cell built from <paramref name="w"/> (rebuilt for each perturbation).</summary>
    private static double Loss(string kind, RecurrentWeights<double> w, double[] x, double[] h0, double[] c)
    {
        double[] outputs = Cells.With(kind, w, new SolveOutputs(x, h0));
        return outputs.Zip(c).Sum(p => p.First * p.Second);
    }

    private readonly struct SolveOutputs(double[] x, double[] h0) : ICellFunc<double, double[]>
    {
        public double[] Invoke<TCell>(TCell cell)
            where TCell : IRecurrentCell<double> =>
            Deer.Solve(cell, x, B, T, new SolveOptions { Method = SolveMethod.Sequential }, h0).Outputs();
    }

    private readonly struct Differentiate(double[] x, double[] h0, double[] c, SolveOptions options, AdjointMethod adjoint) : ICellFunc<double, GradientResult<double>>
    {
        public GradientResult<double> Invoke<TCell>(TCell cell)
            where TCell : IRecurrentCell<double> => cell switch
        {
            GruCell<double> g => Deer.Gradient(g, x, B, T, c, options, new GradientOptions { Adjoint = adjoint }, h0),
            LstmCell<double> l => Deer.Gradient(l, x, B, T, c, options, new GradientOptions { Adjoint = adjoint }, h0),
            TanhRnnCell<double> r => Deer.Gradient(r, x, B, T, c, options, new GradientOptions { Adjoint = adjoint }, h0),
            _ => throw new InvalidOperationException(),
        };
    }

    /// <summary>A gradient problem: cell kind, hidden size, length, the method of the forward pass and the adjoint.</summary>
    public sealed record Case(int Seed, string Kind, int N, int Length, SolveMethod Method, AdjointMethod Adjoint)
    {
        public override string ToString() => $"{Kind} n={N} T={Length} {Method} {Adjoint} seed={Seed}";
    }

    internal static Gen<Case> Cases =>
        from seed in Gen.Choose(0, int.MaxValue)
        from kind in Gen.Elements(Cells.Kinds)
        from n in Gen.Choose(1, 5)
        from length in Gen.Choose(1, 60)
        from method in Gen.Elements(SolveMethod.Deer, SolveMethod.QuasiDeer, SolveMethod.Sequential)
        from adjoint in Gen.Elements(AdjointMethod.Scan, AdjointMethod.Sequential)
        select new Case(seed, kind, n, length, method, adjoint);

    /// <summary>
    /// ∂L/∂x and ∂L/∂h0 of L = Σ c·output, for any forward method and either adjoint, against central differences of the
    /// sequential loop (step 1e-6, tolerance 1e-6 relative).
    /// </summary>
    [Property(Arbitrary = new[] { typeof(DeerArbitraries) }, MaxTest = 40)]
    public void Input_and_initial_state_gradients_match_finite_differences(Case c)
    {
        const int Dx = 2;
        var rnd = new Random(c.Seed);
        RecurrentWeights<double> w = Cells.Weights(c.Kind, Dx, c.N, rnd, scale: 1.2);
        int s = c.Kind == "lstm" ? 2 * c.N : c.N;
        double[] x = Numbers.Uniform(rnd, c.Length * Dx), h0 = Numbers.Uniform(rnd, s, 0.5), cot = Numbers.Uniform(rnd, c.Length * c.N);
        var options = Tight with { Method = c.Method };
        GradientResult<double> g = Cells.With(c.Kind, w, new DifferentiateOne(x, h0, cot, c.Length, options, c.Adjoint));
        double Loss() => Cells.With(c.Kind, w, new SolverAgreementTests.SolveWith<double>(x, 1, c.Length, new SolveOptions { Method = SolveMethod.Sequential }, h0))
            .Outputs().Zip(cot).Sum(p => p.First * p.Second);
        const double H = 1e-6;
        double Central(double[] v, int i)
        {
            v[i] += H;
            double up = Loss();
            v[i] -= 2 * H;
            double down = Loss();
            v[i] += H;
            return (up - down) / (2 * H);
        }

        foreach (int i in new[] { 0, x.Length / 2, x.Length - 1 })
        {
            double numeric = Central(x, i);
            Assert.True(Math.Abs(g.InputGradient[i] - numeric) <= 1e-6 * Math.Max(1, Math.Abs(numeric)), $"{c}: ∂L/∂x[{i}] {g.InputGradient[i]} vs {numeric}");
        }

        for (int i = 0; i < s; i++)
        {
            double numeric = Central(h0, i);
            Assert.True(Math.Abs(g.InitialStateGradient[i] - numeric) <= 1e-6 * Math.Max(1, Math.Abs(numeric)), $"{c}: ∂L/∂h0[{i}] {g.InitialStateGradient[i]} vs {numeric}");
        }
    }

    private readonly struct DifferentiateOne(double[] x, double[] h0, double[] c, int length, SolveOptions options, AdjointMethod adjoint)
        : ICellFunc<double, GradientResult<double>>
    {
        public GradientResult<double> Invoke<TCell>(TCell cell)
            where TCell : IRecurrentCell<double> => cell switch
        {
            GruCell<double> g => Deer.Gradient(g, x, 1, length, c, options, new GradientOptions { Adjoint = adjoint }, h0),
            LstmCell<double> l => Deer.Gradient(l, x, 1, length, c, options, new GradientOptions { Adjoint = adjoint }, h0),
            TanhRnnCell<double> r => Deer.Gradient(r, x, 1, length, c, options, new GradientOptions { Adjoint = adjoint }, h0),
            _ => throw new InvalidOperationException(),
        };
    }

    /// <summary>Both adjoints: the scan, and BPTT (for the GRU and the LSTM their own loop, Cells/*.Backpropagation.cs).</summary>
    [Theory]
    [InlineData("rnn", AdjointMethod.Scan)]
    [InlineData("gru", AdjointMethod.Scan)]
    [InlineData("lstm", AdjointMethod.Scan)]
    [InlineData("rnn", AdjointMethod.Sequential)]
    [InlineData("gru", AdjointMethod.Sequential)]
    [InlineData("lstm", AdjointMethod.Sequential)]
    public void Gradients_match_central_finite_differences(string kind, AdjointMethod adjoint) => Seeded.Run(rnd =>
    {
        RecurrentWeights<double> w = Cells.Weights(kind, D, N, rnd, scale: 1.5);
        int s = kind == "lstm" ? 2 * N : N;
        double[] x = Numbers.Uniform(rnd, B * T * D), h0 = Numbers.Uniform(rnd, B * s, 0.5), c = Numbers.Uniform(rnd, B * T * N);
        GradientResult<double> g = Cells.With(kind, w, new Differentiate(x, h0, c, Tight, adjoint));
        Assert.Equal(adjoint, g.Adjoint);
        var (gih, ghh, gbi, gbh) = w.SplitGradient(g.ParameterGradient);
        const double H = 1e-6;
        double Central(Action<double> set) { set(H); double up = Loss(kind, w, x, h0, c); set(-2 * H); double down = Loss(kind, w, x, h0, c); set(H); return (up - down) / (2 * H); }
        void Check(double analytic, double numeric, string what) =>
            Assert.True(Math.Abs(analytic - numeric) <= 1e-6 * Math.Max(1, Math.Abs(numeric)), $"{kind} {what}: analytic {analytic}, central difference {numeric}");

        for (int trial = 0; trial < 12; trial++)
        {
            int i = rnd.Next(w.WeightIH.Length), j = rnd.Next(w.WeightHH.Length), k = rnd.Next(w.BiasIH.Length), m = rnd.Next(w.BiasHH.Length);
            Check(gih[i], Central(e => w.WeightIH[i] += e), $"weight_ih[{i}]");
            Check(ghh[j], Central(e => w.WeightHH[j] += e), $"weight_hh[{j}]");
            Check(gbi[k], Central(e => w.BiasIH[k] += e), $"bias_ih[{k}]");
            Check(gbh[m], Central(e => w.BiasHH[m] += e), $"bias_hh[{m}]");
            int xi = rnd.Next(x.Length), hi = rnd.Next(h0.Length);
            Check(g.InputGradient[xi], Central(e => x[xi] += e), $"x[{xi}]");
            Check(g.InitialStateGradient[hi], Central(e => h0[hi] += e), $"h0[{hi}]");
        }
    });

    [Theory]
    [InlineData("rnn")]
    [InlineData("gru")]
    [InlineData("lstm")]
    public void Every_forward_method_and_both_adjoints_give_the_BPTT_gradient(string kind) => Seeded.Run(rnd =>
    {
        RecurrentWeights<double> w = Cells.Weights(kind, D, N, rnd);
        int s = kind == "lstm" ? 2 * N : N;
        double[] x = Numbers.Uniform(rnd, B * T * D), h0 = Numbers.Uniform(rnd, B * s, 0.5), c = Numbers.Uniform(rnd, B * T * N);
        GradientResult<double> reference = Cells.With(kind, w, new Differentiate(x, h0, c, Tight with { Method = SolveMethod.Sequential }, AdjointMethod.Sequential));
        Assert.Equal(AdjointMethod.Sequential, reference.Adjoint);
        foreach (SolveMethod method in new[] { SolveMethod.Sequential, SolveMethod.Deer, SolveMethod.QuasiDeer, SolveMethod.Picard, SolveMethod.QuasiElk })
        {
            foreach (AdjointMethod adjoint in new[] { AdjointMethod.Scan, AdjointMethod.Sequential })
            {
                GradientResult<double> g = Cells.With(kind, w, new Differentiate(x, h0, c, Tight with { Method = method, MaxIterations = 200 }, adjoint));
                Assert.True(g.Forward.Converged);
                Relative(reference.ParameterGradient, g.ParameterGradient, $"{kind} {method} {adjoint}: parameters");
                Relative(reference.InputGradient, g.InputGradient, $"{kind} {method} {adjoint}: inputs");
                Relative(reference.InitialStateGradient, g.InitialStateGradient, $"{kind} {method} {adjoint}: h0");
            }
        }
    });

    private static void Relative(double[] expected, double[] actual, string what)
    {
        double scale = Math.Max(1e-300, expected.Max(Math.Abs));
        double diff = Numbers.MaxAbsDiff(expected, actual);
        Assert.True(diff <= 1e-8 * scale, $"{what}: max difference {diff:G3} against a scale of {scale:G3}");
    }

    [Theory]
    [InlineData("gru")]
    [InlineData("lstm")]
    public void Stacked_layers_have_finite_difference_gradients(string kind) => Seeded.Run(rnd =>
    {
        RecurrentWeights<double> w0 = Cells.Weights(kind, D, N, rnd), w1 = Cells.Weights(kind, N, N, rnd);
        int s = kind == "lstm" ? 2 * N : N;
        double[] x = Numbers.Uniform(rnd, B * T * D), h0 = Numbers.Uniform(rnd, 2 * B * s, 0.5), c = Numbers.Uniform(rnd, B * T * N);
        double Loss2()
        {
            SolveResult<double> r = kind == "gru"
                ? Deer.Solve(new StackedCells<GruCell<double>, double>(new(w0), new(w1)), x, B, T, new SolveOptions { Method = SolveMethod.Sequential }, h0)
                : Deer.Solve(new StackedCells<LstmCell<double>, double>(new(w0), new(w1)), x, B, T, new SolveOptions { Method = SolveMethod.Sequential }, h0);
            return r.Outputs().Zip(c).Sum(p => p.First * p.Second);
        }

        GradientResult<double> g = kind == "gru"
            ? Deer.Gradient(new StackedCells<GruCell<double>, double>(new(w0), new(w1)), x, B, T, c, Tight with { Method = SolveMethod.Deer }, null, h0)
            : Deer.Gradient(new StackedCells<LstmCell<double>, double>(new(w0), new(w1)), x, B, T, c, Tight with { Method = SolveMethod.Deer }, null, h0);
        Assert.Equal(2, g.LayerParameterGradients.Count);
        const double H = 1e-6;
        double Central(Action<double> set) { set(H); double up = Loss2(); set(-2 * H); double down = Loss2(); set(H); return (up - down) / (2 * H); }
        for (int trial = 0; trial < 8; trial++)
        {
            int i = rnd.Next(w0.WeightHH.Length), j = rnd.Next(w1.WeightIH.Length), xi = rnd.Next(x.Length), hi = rnd.Next(h0.Length);
            (double a, double n, string what)[] checks =
            [
                (w0.SplitGradient(g.LayerParameterGradients[0]).WeightHH[i], Central(e => w0.WeightHH[i] += e), "layer 0 weight_hh"),
                (w1.SplitGradient(g.LayerParameterGradients[1]).WeightIH[j], Central(e => w1.WeightIH[j] += e), "layer 1 weight_ih"),
                (g.InputGradient[xi], Central(e => x[xi] += e), "x"),
                (g.InitialStateGradient[hi], Central(e => h0[hi] += e), "h0"),
            ];
            foreach (var (a, n, what) in checks)
            {
                Assert.True(Math.Abs(a - n) <= 1e-6 * Math.Max(1, Math.Abs(n)), $"{kind} stack {what}: analytic {a}, central difference {n}");
            }
        }
    });

    [Fact]
    public void Custom_cells_are_differentiated_by_AD() => Seeded.Run(rnd =>
    {
        var cell = new AutoDiffCell<SolveApiTests.CoupledOscillators, double>(new SolveApiTests.CoupledOscillators());
        double[] x = Numbers.Uniform(rnd, B * 40), h0 = Numbers.Uniform(rnd, B * 2, 0.3), c = Numbers.Uniform(rnd, B * 40 * 2);
        double Loss3() => Deer.Solve(cell, x, B, 40, new SolveOptions { Method = SolveMethod.Sequential }, h0).States.Zip(c).Sum(p => p.First * p.Second);
        GradientResult<double> g = Deer.Gradient(cell, x, B, 40, c, Tight with { Method = SolveMethod.Deer }, new GradientOptions { Adjoint = AdjointMethod.Scan }, h0);
        GradientResult<double> bptt = Deer.Gradient(cell, x, B, 40, c, Tight with { Method = SolveMethod.Sequential }, new GradientOptions { Adjoint = AdjointMethod.Sequential }, h0);
        Relative(bptt.InputGradient, g.InputGradient, "custom: inputs");
        Relative(bptt.InitialStateGradient, g.InitialStateGradient, "custom: h0");
        const double H = 1e-6;
        for (int trial = 0; trial < 10; trial++)
        {
            int xi = rnd.Next(x.Length);
            x[xi] += H;
            double up = Loss3();
            x[xi] -= 2 * H;
            double down = Loss3();
            x[xi] += H;
            double n = (up - down) / (2 * H);
            Assert.True(Math.Abs(g.InputGradient[xi] - n) <= 1e-6 * Math.Max(1, Math.Abs(n)), $"custom x[{xi}]: {g.InputGradient[xi]} vs {n}");
        }
    });

    /// <summary>h' = tanh(a ⊙ h + B x + c), with θ = [a (2), B (2×1), c (2)].</summary>
    private readonly struct Leaky : IParameterizedRecurrence
    {
        public int StateSize => 2;

        public int InputSize => 1;

        public int ParameterCount => 6;

        public void Apply<TNum>(ReadOnlySpan<TNum> h, ReadOnlySpan<TNum> x, ReadOnlySpan<TNum> p, Span<TNum> next)
            where TNum : System.Numerics.IFloatingPointIeee754<TNum>
        {
            next[0] = TNum.Tanh(p[0] * h[0] + p[2] * x[0] + p[4] + h[1] * h[1] * TNum.CreateTruncating(0.1));
            next[1] = TNum.Tanh(p[1] * h[1] + p[3] * x[0] + p[5]);
        }
    }

    [Fact]
    public void Custom_cell_parameters_are_differentiated_by_AD() => Seeded.Run(rnd =>
    {
        double[] theta = Numbers.Uniform(rnd, 6, 1.2), x = Numbers.Uniform(rnd, B * 50), c = Numbers.Uniform(rnd, B * 50 * 2);
        double LossAt(double[] p) =>
            Deer.Solve(new ParameterizedCell<Leaky, double>(new Leaky(), p), x, B, 50, new SolveOptions { Method = SolveMethod.Sequential })
                .States.Zip(c).Sum(q => q.First * q.Second);
        var cell = new ParameterizedCell<Leaky, double>(new Leaky(), theta);
        GradientResult<double> g = Deer.Gradient(cell, x, B, 50, c, Tight with { Method = SolveMethod.Deer }, new GradientOptions { Adjoint = AdjointMethod.Scan });
        GradientResult<double> bptt = Deer.Gradient(cell, x, B, 50, c, Tight with { Method = SolveMethod.Sequential }, new GradientOptions { Adjoint = AdjointMethod.Sequential });
        Relative(bptt.ParameterGradient, g.ParameterGradient, "parameterized: parameters");
        Assert.Equal(6, g.ParameterGradient.Length);
        for (int j = 0; j < 6; j++)
        {
            const double H = 1e-6;
            double[] up = (double[])theta.Clone(), down = (double[])theta.Clone();
            up[j] += H;
            down[j] -= H;
            double n = (LossAt(up) - LossAt(down)) / (2 * H);
            Assert.True(Math.Abs(g.ParameterGradient[j] - n) <= 1e-6 * Math.Max(1, Math.Abs(n)), $"θ[{j}]: {g.ParameterGradient[j]} vs {n}");
        }

        Assert.Equal("parameters", Assert.Throws<ArgumentException>(() => new ParameterizedCell<Leaky, double>(new Leaky(), new double[5])).ParamName);
    });

    [Fact]
    public void A_mis_shaped_cotangent_is_refused_by_name()
    {
        var gru = GruCell<double>.Random(D, N, new Random(1));
        var ex = Assert.Throws<ArgumentException>(() => Deer.Gradient(gru, new double[T, D], new double[T, N + 1]));
        Assert.Equal("outputCotangent", ex.ParamName);
        Assert.Contains($"[1, {T}, {N}]", ex.Message, StringComparison.Ordinal);
    }
}
