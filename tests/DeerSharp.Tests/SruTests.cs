using System.Numerics;
using DeerSharp.Cells;

namespace DeerSharp.Tests;

/// <summary>SRU against its equations written out independently: every method, Jacobians, gradients.</summary>
public class SruTests
{
    private const int N = 5;

    /// <summary>x̃ = W x, f = σ(W_f x + b_f), r = σ(W_r x + b_r), c' = f c + (1 - f) x̃, h' = r tanh(c') + (1 - r) x; state [h; c].</summary>
    private readonly struct Reference(double[] w, double[] b) : IRecurrence
    {
        public int StateSize => 2 * N;

        public int InputSize => N;

        public void Apply<TNum>(ReadOnlySpan<TNum> s, ReadOnlySpan<TNum> x, Span<TNum> next)
            where TNum : IFloatingPointIeee754<TNum>
        {
            for (int j = 0; j < N; j++)
            {
                TNum xt = TNum.Zero, af = TNum.CreateTruncating(b[j]), ar = TNum.CreateTruncating(b[N + j]);
                for (int k = 0; k < N; k++)
                {
                    xt += TNum.CreateTruncating(w[j * N + k]) * x[k];
                    af += TNum.CreateTruncating(w[(N + j) * N + k]) * x[k];
                    ar += TNum.CreateTruncating(w[(2 * N + j) * N + k]) * x[k];
                }

                TNum f = TNum.One / (TNum.One + TNum.Exp(-af)), r = TNum.One / (TNum.One + TNum.Exp(-ar));
                TNum c = f * s[N + j] + (TNum.One - f) * xt;
                next[N + j] = c;
                next[j] = r * TNum.Tanh(c) + (TNum.One - r) * x[j];
            }
        }
    }

    [Fact]
    public void Every_method_jacobians_and_gradients_match_the_equations() => Seeded.Run(rnd =>
    {
        double[] w = Numbers.Uniform(rnd, 3 * N * N, 0.6), b = Numbers.Uniform(rnd, 2 * N, 0.6);
        var cell = new SruCell<double>(N, w, b);
        var reference = new AutoDiffCell<Reference, double>(new Reference(w, b));
        const int L = 800, B = 2;
        double[] x = Numbers.Uniform(rnd, B * L * N, 1.5), h0 = Numbers.Uniform(rnd, B * 2 * N, 0.5);
        double[] expected = Deer.Solve(reference, x, B, L, new SolveOptions { Method = SolveMethod.Sequential }, h0).States;
        foreach (SolveMethod m in new[] { SolveMethod.Scan, SolveMethod.Auto, SolveMethod.Sequential, SolveMethod.Deer, SolveMethod.QuasiDeer, SolveMethod.Picard })
        {
            SolveResult<double> r = Deer.Solve(cell, x, B, L, new SolveOptions { Method = m, Fallback = FallbackPolicy.None, AbsoluteTolerance = 1e-12, RelativeTolerance = 1e-12 }, h0);
            Assert.True(r.Converged, $"{m}: {r}");
            Assert.True(Numbers.MaxAbsDiff(expected, r.States) <= 1e-10, m.ToString());
        }

        double[] state = Numbers.Uniform(rnd, 2 * N), xs = Numbers.Uniform(rnd, N);
        var ad = new JacobianTests.Linearise<double>(state, xs).Invoke(reference);
        var analytic = new JacobianTests.Linearise<double>(state, xs).Invoke(cell);
        Assert.True(Numbers.MaxAbsDiff(ad.Next, analytic.Next) <= 1e-14);
        Assert.True(Numbers.MaxAbsDiff(ad.Jacobian, analytic.Jacobian) <= 1e-13);
        Assert.True(Numbers.MaxAbsDiff(ad.Diagonal, analytic.Diagonal) <= 1e-13);

        double[] c = Numbers.Uniform(rnd, B * L * N);
        GradientResult<double> g = Deer.Gradient(cell, x, B, L, c, new SolveOptions { Method = SolveMethod.Scan }, new GradientOptions { Adjoint = AdjointMethod.Scan }, h0);
        // The reference's output is its whole state [h; c]: the same cotangent on h, zero on c.
        double[] cState = [.. Enumerable.Range(0, B * L).SelectMany(t => c.AsSpan(t * N, N).ToArray().Concat(new double[N]))];
        GradientResult<double> refGrad = Deer.Gradient(reference, x, B, L, cState, new SolveOptions { Method = SolveMethod.Sequential }, new GradientOptions { Adjoint = AdjointMethod.Sequential }, h0);
        Assert.True(Numbers.MaxAbsDiff(refGrad.InputGradient, g.InputGradient) <= 1e-9, "inputs against the AD reference");
        Assert.True(Numbers.MaxAbsDiff(refGrad.InitialStateGradient, g.InitialStateGradient) <= 1e-9, "h0 against the AD reference");
        double Loss(double[] ww, double[] bb) =>
            Deer.Solve(new SruCell<double>(N, ww, bb), x, B, L, new SolveOptions { Method = SolveMethod.Sequential }, h0).Outputs().Zip(c).Sum(q => q.First * q.Second);
        for (int trial = 0; trial < 8; trial++)
        {
            const double H = 1e-6;
            bool bias = trial % 2 == 1;
            double[] target = bias ? b : w;
            int i = rnd.Next(target.Length);
            target[i] += H;
            double up = Loss(w, b);
            target[i] -= 2 * H;
            double down = Loss(w, b);
            target[i] += H;
            double numeric = (up - down) / (2 * H), analyticGrad = g.ParameterGradient[(bias ? w.Length : 0) + i];
            Assert.True(Math.Abs(analyticGrad - numeric) <= 1e-6 * Math.Max(1, Math.Abs(numeric)), $"{(bias ? "bias" : "weight")}[{i}]: {analyticGrad} vs {numeric}");
        }

        Assert.Equal("weight", Assert.Throws<ArgumentException>(() => new SruCell<double>(N, new double[3 * N * (N + 1)], b)).ParamName);
    });

    /// <summary>
    /// SRU's own BPTT loop (one diagonal chain, Cells/SruCell.Backpropagation.cs), across three adjoint windows, two
    /// sequences, against BPTT through the AD reference (dense, per step: no declaration) to 1e-9 of the largest entry, and
    /// against the scan adjoint over its declared 2×2 blocks for the parameters; each block must hold the full Jacobian's entries.
    /// </summary>
    [Fact]
    public void Its_BPTT_loop_matches_the_reference_across_windows_and_its_blocks_hold_the_full_Jacobian() => Seeded.Run(rnd =>
    {
        double[] w = Numbers.Uniform(rnd, 3 * N * N, 0.6), b = Numbers.Uniform(rnd, 2 * N, 0.6);
        var cell = new SruCell<double>(N, w, b);
        var reference = new AutoDiffCell<Reference, double>(new Reference(w, b));
        int length = (2 * Cpu.Adjoint.LoopWindowSteps) + 37;
        const int B = 2;
        double[] x = Numbers.Uniform(rnd, B * length * N, 1.5), h0 = Numbers.Uniform(rnd, B * 2 * N, 0.5), c = Numbers.Uniform(rnd, B * length * N);
        var sequential = new SolveOptions { Method = SolveMethod.Sequential };
        GradientResult<double> g = Deer.Gradient(cell, x, B, length, c, sequential, new GradientOptions { Adjoint = AdjointMethod.Sequential }, h0);
        double[] cState = [.. Enumerable.Range(0, B * length).SelectMany(t => c.AsSpan(t * N, N).ToArray().Concat(new double[N]))];
        GradientResult<double> expected = Deer.Gradient(reference, x, B, length, cState, sequential, new GradientOptions { Adjoint = AdjointMethod.Sequential }, h0);
        Assert.Equal(3, g.AdjointWindows);
        foreach ((double[] e, double[] a, string what) in new[] { (expected.InputGradient, g.InputGradient, "inputs"), (expected.InitialStateGradient, g.InitialStateGradient, "h0") })
        {
            double diff = Numbers.MaxAbsDiff(e, a), scale = e.Max(Math.Abs);
            Assert.True(diff <= 1e-9 * scale, $"{what}: {diff:G3} against a largest entry of {scale:G3}");
        }

        // The parameters through finite differences of the same loss would be slow at this length: the scan adjoint (its
        // own Jacobian blocks, the transposed recurrence by the scan) instead.
        GradientResult<double> scan = Deer.Gradient(cell, x, B, length, c, sequential, new GradientOptions { Adjoint = AdjointMethod.Scan }, h0);
        Assert.True(Numbers.MaxAbsDiff(scan.ParameterGradient, g.ParameterGradient) <= 1e-9 * scan.ParameterGradient.Max(Math.Abs), "parameters");

        double[] state = Numbers.Uniform(rnd, 2 * N), projection = new double[4 * N], next = new double[2 * N], full = new double[4 * N * N], blocks = new double[4 * N];
        cell.ProjectInputs(Numbers.Uniform(rnd, N), projection, 1);
        cell.EvaluateBlock(state, projection, next, full, JacobianMode.Full, default, 1);
        cell.EvaluateBlock(state, projection, next, blocks, JacobianMode.Block, default, 1);
        for (int j = 0; j < N; j++)
        {
            for (int r = 0; r < 2; r++)
            {
                for (int q = 0; q < 2; q++)
                {
                    Assert.Equal(full[(((r * N) + j) * 2 * N) + (q * N) + j], blocks[(4 * j) + (2 * r) + q]);
                }
            }
        }
    });
}
