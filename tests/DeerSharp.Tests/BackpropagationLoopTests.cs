using System.Numerics;
using DeerSharp.Cells;

namespace DeerSharp.Tests;

/// <summary>
/// The tanh RNN's, the GRU's and the LSTM's own backpropagation-through-time loop (Cells/*.Backpropagation.cs, Cpu/Adjoint.Loop.cs) on
/// sequences long enough to cross its windows, against the scan adjoint (an independent algorithm: every Jacobian formed,
/// the transposed recurrence solved by the scan), and in float32 against the same loop in float64. Finite differences
/// check both adjoints on short sequences (GradientTests).
/// </summary>
public class BackpropagationLoopTests
{
    private readonly struct Differentiate<T>(T[] x, T[] h0, T[] c, int batch, int length, AdjointMethod adjoint) : ICellFunc<T, GradientResult<T>>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        public GradientResult<T> Invoke<TCell>(TCell cell)
            where TCell : IRecurrentCell<T>
        {
            var options = new SolveOptions { Method = SolveMethod.Sequential };
            var gradient = new GradientOptions { Adjoint = adjoint };
            return cell switch
            {
                GruCell<T> g => Deer.Gradient(g, x, batch, length, c, options, gradient, h0),
                LstmCell<T> l => Deer.Gradient(l, x, batch, length, c, options, gradient, h0),
                TanhRnnCell<T> r => Deer.Gradient(r, x, batch, length, c, options, gradient, h0),
                _ => throw new InvalidOperationException(),
            };
        }
    }

    /// <summary>
    /// Two whole windows and part of a third, two sequences, widths with and without a scalar tail past the last vector
    /// (Vector&lt;double&gt; has 4 or 8 lanes): parameter, input and h0 gradients within 1e-9 of the largest entry.
    /// </summary>
    [Theory]
    [InlineData("rnn", 5)]
    [InlineData("rnn", 12)]
    [InlineData("gru", 5)]
    [InlineData("gru", 12)]
    [InlineData("lstm", 5)]
    [InlineData("lstm", 12)]
    public void The_loop_across_its_windows_gives_the_scan_adjoints_gradient(string kind, int n) => Seeded.Run(rnd =>
    {
        const int D = 3, Batch = 2;
        int length = (2 * Cpu.Adjoint.LoopWindowSteps) + 37, s = kind == "lstm" ? 2 * n : n;
        RecurrentWeights<double> w = Cells.Weights(kind, D, n, rnd);
        double[] x = Numbers.Uniform(rnd, Batch * length * D), h0 = Numbers.Uniform(rnd, Batch * s, 0.5), c = Numbers.Uniform(rnd, Batch * length * n);
        GradientResult<double> loop = Cells.With(kind, w, new Differentiate<double>(x, h0, c, Batch, length, AdjointMethod.Sequential));
        GradientResult<double> scan = Cells.With(kind, w, new Differentiate<double>(x, h0, c, Batch, length, AdjointMethod.Scan));
        Assert.Equal(3, loop.AdjointWindows);
        Close(scan.ParameterGradient, loop.ParameterGradient, 1e-9, $"{kind} n = {n}: parameters");
        Close(scan.InputGradient, loop.InputGradient, 1e-9, $"{kind} n = {n}: inputs");
        Close(scan.InitialStateGradient, loop.InitialStateGradient, 1e-9, $"{kind} n = {n}: h0");
    });

    /// <summary>
    /// float32 against float64 on the same (float-rounded) weights and data, one sequence (the cores split each window's
    /// blocks) and three (one sequence per core), widths of 2 and 2.5 float vectors: within 1e-4 of the largest entry.
    /// </summary>
    [Theory]
    [InlineData("rnn", 20, 3)]
    [InlineData("gru", 16, 1)]
    [InlineData("gru", 20, 3)]
    [InlineData("lstm", 16, 3)]
    [InlineData("lstm", 20, 1)]
    public void The_float32_loop_agrees_with_the_float64_loop(string kind, int n, int batch) => Seeded.Run(rnd =>
    {
        const int D = 7, Length = 3000;
        int s = kind == "lstm" ? 2 * n : n;
        static double[] Round(double[] v) => Numbers.ToDouble(Numbers.As<float>(v));
        RecurrentWeights<double> drawn = Cells.Weights(kind, D, n, rnd);
        var w = new RecurrentWeights<double>(drawn.Gates, n, D, Round(drawn.WeightIH), Round(drawn.WeightHH), Round(drawn.BiasIH), Round(drawn.BiasHH));
        double[] x = Round(Numbers.Uniform(rnd, batch * Length * D)), h0 = Round(Numbers.Uniform(rnd, batch * s, 0.5)), c = Round(Numbers.Uniform(rnd, batch * Length * n));
        GradientResult<double> wide = Cells.With(kind, w, new Differentiate<double>(x, h0, c, batch, Length, AdjointMethod.Sequential));
        GradientResult<float> narrow = Cells.With(kind, w,
            new Differentiate<float>(Numbers.As<float>(x), Numbers.As<float>(h0), Numbers.As<float>(c), batch, Length, AdjointMethod.Sequential));
        Assert.Equal(AdjointMethod.Sequential, narrow.Adjoint);
        Close(wide.ParameterGradient, Numbers.ToDouble(narrow.ParameterGradient), 1e-4, $"{kind} n = {n}, B = {batch}: parameters");
        Close(wide.InputGradient, Numbers.ToDouble(narrow.InputGradient), 1e-4, $"{kind} n = {n}, B = {batch}: inputs");
        Close(wide.InitialStateGradient, Numbers.ToDouble(narrow.InitialStateGradient), 1e-4, $"{kind} n = {n}, B = {batch}: h0");
    });

    /// <summary>
    /// The structured cells' own BPTT loops (Cells/{IndRnn,DiagonalGru,DiagonalLstm}Cell.Backpropagation.cs): blocks of 1
    /// and 2, across windows, two sequences, against the scan adjoint over their declared blocks, to 1e-9 of the largest
    /// entry. BPTT over declared blocks (for custom cells) is checked in StructuredCellTests.
    /// </summary>
    [Theory]
    [InlineData("indrnn", 1)]
    [InlineData("indrnn", 2)]
    [InlineData("diag-gru", 1)]
    [InlineData("diag-gru", 2)]
    [InlineData("diag-lstm", 1)]
    [InlineData("diag-lstm", 2)]
    public void The_structured_loops_across_their_windows_give_the_scan_adjoints_gradient(string kind, int k) => Seeded.Run(rnd =>
    {
        const int D = 3, N = 6, Batch = 2;
        int length = (2 * Cpu.Adjoint.LoopWindowSteps) + 37, s = kind == "diag-lstm" ? 2 * N : N;
        StructuredWeights<double> w = StructuredWeights<double>.Random(kind == "indrnn" ? 1 : kind == "diag-gru" ? 3 : 4, N, D, k, rnd);
        double[] x = Numbers.Uniform(rnd, Batch * length * D), h0 = Numbers.Uniform(rnd, Batch * s, 0.5), c = Numbers.Uniform(rnd, Batch * length * N);
        var options = new SolveOptions { Method = SolveMethod.Sequential };
        GradientResult<double> Run(AdjointMethod adjoint)
        {
            var gradient = new GradientOptions { Adjoint = adjoint };
            return kind switch
            {
                "indrnn" => Deer.Gradient(new IndRnnCell<double>(w), x, Batch, length, c, options, gradient, h0),
                "diag-gru" => Deer.Gradient(new DiagonalGruCell<double>(w), x, Batch, length, c, options, gradient, h0),
                _ => Deer.Gradient(new DiagonalLstmCell<double>(w), x, Batch, length, c, options, gradient, h0),
            };
        }

        GradientResult<double> blocks = Run(AdjointMethod.Sequential), scan = Run(AdjointMethod.Scan);
        Assert.Equal(3, blocks.AdjointWindows);
        Close(scan.ParameterGradient, blocks.ParameterGradient, 1e-9, $"{kind} k = {k}: parameters");
        Close(scan.InputGradient, blocks.InputGradient, 1e-9, $"{kind} k = {k}: inputs");
        Close(scan.InitialStateGradient, blocks.InitialStateGradient, 1e-9, $"{kind} k = {k}: h0");
    });

    /// <summary>
    /// GILR's BPTT (one diagonal chain, Cells/GilrCell.Backpropagation.cs) and GILR-LSTM's (two diagonal chains and one
    /// W_hhᵀ δ product per run of steps, Cells/GilrLstmCell.Backpropagation.cs) across three windows and many runs, two
    /// sequences, widths with and without a scalar tail, against the scan adjoint (GILR's over its diagonal, GILR-LSTM's
    /// over its full [3n, 3n] Jacobians), to 1e-9 of the largest entry.
    /// </summary>
    [Theory]
    [InlineData("gilr", 5)]
    [InlineData("gilr", 12)]
    [InlineData("gilr-lstm", 5)]
    [InlineData("gilr-lstm", 12)]
    public void The_GILR_loops_across_their_windows_give_the_scan_adjoints_gradient(string kind, int n) => Seeded.Run(rnd =>
    {
        const int D = 3, Batch = 2;
        int length = (2 * Cpu.Adjoint.LoopWindowSteps) + 37, s = kind == "gilr" ? n : 3 * n;
        var w = GilrLstmWeights<double>.Random(n, D, rnd);
        double[] x = Numbers.Uniform(rnd, Batch * length * D), h0 = Numbers.Uniform(rnd, Batch * s, 0.5), c = Numbers.Uniform(rnd, Batch * length * n);
        var options = new SolveOptions { Method = SolveMethod.Sequential };
        GradientResult<double> Run(AdjointMethod adjoint) => kind == "gilr"
            ? Deer.Gradient(new GilrCell<double>(w.Surrogate), x, Batch, length, c, options, new GradientOptions { Adjoint = adjoint }, h0)
            : Deer.Gradient(new GilrLstmCell<double>(w), x, Batch, length, c, options, new GradientOptions { Adjoint = adjoint }, h0);
        GradientResult<double> loop = Run(AdjointMethod.Sequential), scan = Run(AdjointMethod.Scan);
        Assert.Equal(3, loop.AdjointWindows);
        Close(scan.ParameterGradient, loop.ParameterGradient, 1e-9, $"{kind} n = {n}: parameters");
        Close(scan.InputGradient, loop.InputGradient, 1e-9, $"{kind} n = {n}: inputs");
        Close(scan.InitialStateGradient, loop.InitialStateGradient, 1e-9, $"{kind} n = {n}: h0");
    });

    /// <summary>The linear surrogates in float32 (vectors of 8 or 16 lanes, a tail at n = 20) against float64 on the same rounded weights and data, to 1e-4.</summary>
    [Theory]
    [InlineData("gilr", 20, 3)]
    [InlineData("gilr-lstm", 20, 1)]
    [InlineData("gilr-lstm", 16, 3)]
    [InlineData("sru", 20, 3)]
    [InlineData("sru", 16, 1)]
    public void The_float32_surrogate_loops_agree_with_float64(string kind, int n, int batch) => Seeded.Run(rnd =>
    {
        const int Length = 3000;
        int d = kind == "sru" ? n : 7, s = kind switch { "sru" => 2 * n, "gilr" => n, _ => 3 * n };
        static double[] Round(double[] v) => Numbers.ToDouble(Numbers.As<float>(v));
        double[] x = Round(Numbers.Uniform(rnd, batch * Length * d)), h0 = Round(Numbers.Uniform(rnd, batch * s, 0.5)), c = Round(Numbers.Uniform(rnd, batch * Length * n));
        var options = new SolveOptions { Method = SolveMethod.Sequential };
        var gradient = new GradientOptions { Adjoint = AdjointMethod.Sequential };
        (GradientResult<double> wide, GradientResult<float> narrow) = kind == "sru" ? Sru() : GilrLstm(kind == "gilr");
        Close(wide.Forward.States, Numbers.ToDouble(narrow.Forward.States), 1e-5, $"{kind} n = {n}, B = {batch}: states");
        Close(wide.ParameterGradient, Numbers.ToDouble(narrow.ParameterGradient), 1e-4, $"{kind} n = {n}, B = {batch}: parameters");
        Close(wide.InputGradient, Numbers.ToDouble(narrow.InputGradient), 1e-4, $"{kind} n = {n}, B = {batch}: inputs");
        Close(wide.InitialStateGradient, Numbers.ToDouble(narrow.InitialStateGradient), 1e-4, $"{kind} n = {n}, B = {batch}: h0");

        (GradientResult<double>, GradientResult<float>) Sru()
        {
            double[] w = Round(Numbers.Uniform(rnd, 3 * n * n, 1.0 / Math.Sqrt(n))), b = Round(Numbers.Uniform(rnd, 2 * n, 0.5));
            return (Deer.Gradient(new SruCell<double>(n, w, b), x, batch, Length, c, options, gradient, h0),
                Deer.Gradient(new SruCell<float>(n, Numbers.As<float>(w), Numbers.As<float>(b)), Numbers.As<float>(x), batch, Length, Numbers.As<float>(c), options, gradient,
                    Numbers.As<float>(h0)));
        }

        (GradientResult<double>, GradientResult<float>) GilrLstm(bool surrogateOnly)
        {
            var drawn = GilrLstmWeights<double>.Random(n, d, rnd);
            var w = new GilrLstmWeights<double>(
                new GilrWeights<double>(n, d, Round(drawn.Surrogate.GateWeight), Round(drawn.Surrogate.GateBias), Round(drawn.Surrogate.ImpulseWeight), Round(drawn.Surrogate.ImpulseBias)),
                Round(drawn.WeightIH), Round(drawn.WeightHH), Round(drawn.Bias));
            var f = new GilrLstmWeights<float>(
                new GilrWeights<float>(n, d, Numbers.As<float>(w.Surrogate.GateWeight), Numbers.As<float>(w.Surrogate.GateBias), Numbers.As<float>(w.Surrogate.ImpulseWeight),
                    Numbers.As<float>(w.Surrogate.ImpulseBias)),
                Numbers.As<float>(w.WeightIH), Numbers.As<float>(w.WeightHH), Numbers.As<float>(w.Bias));
            return surrogateOnly
                ? (Deer.Gradient(new GilrCell<double>(w.Surrogate), x, batch, Length, c, options, gradient, h0),
                    Deer.Gradient(new GilrCell<float>(f.Surrogate), Numbers.As<float>(x), batch, Length, Numbers.As<float>(c), options, gradient, Numbers.As<float>(h0)))
                : (Deer.Gradient(new GilrLstmCell<double>(w), x, batch, Length, c, options, gradient, h0),
                    Deer.Gradient(new GilrLstmCell<float>(f), Numbers.As<float>(x), batch, Length, Numbers.As<float>(c), options, gradient, Numbers.As<float>(h0)));
        }
    });

    private static void Close(double[] expected, double[] actual, double tolerance, string what)
    {
        double scale = Math.Max(1e-300, expected.Max(Math.Abs)), diff = Numbers.MaxAbsDiff(expected, actual);
        Assert.True(diff <= tolerance * scale, $"{what}: max difference {diff:G3} against a largest entry of {scale:G3} (tolerance {tolerance:G2} of it)");
    }
}
