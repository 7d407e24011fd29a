using System.Numerics;
using DeerSharp.Cells;
using DeerSharp.Scan;

namespace DeerSharp.Tests;

/// <summary>
/// The structured cells (IndRNN, diagonal GRU, diagonal LSTM with k×k blocks) against reference equations written
/// here from PyTorch's definitions (dense loops in double, not the cells' code); their block Jacobians against central
/// differences; their gradients against central differences of the loop; and the block scan against a dense loop.
/// </summary>
public class StructuredCellTests
{
    public static TheoryData<string, int> Kinds()
    {
        var data = new TheoryData<string, int>();
        foreach (string kind in new[] { "indrnn", "diag-gru", "diag-lstm" })
        {
            foreach (int k in new[] { 1, 2, 4 })
            {
                data.Add(kind, k);
            }
        }

        return data;
    }

    private static int GatesOf(string kind) => kind switch { "indrnn" => 1, "diag-gru" => 3, _ => 4 };

    private static int StateOf(string kind, int n) => kind == "diag-lstm" ? 2 * n : n;

    /// <summary>Runs <paramref name="f"/> on the cell of <paramref name="kind"/> built from <paramref name="w"/>.</summary>
    internal static TResult With<T, TResult>(string kind, StructuredWeights<T> w, ICellFunc<T, TResult> f)
        where T : unmanaged, IFloatingPointIeee754<T> => kind switch
    {
        "indrnn" => f.Invoke(new IndRnnCell<T>(w)),
        "diag-gru" => f.Invoke(new DiagonalGruCell<T>(w)),
        "diag-lstm" => f.Invoke(new DiagonalLstmCell<T>(w)),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    private static StructuredWeights<T> Convert<T>(StructuredWeights<double> w)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        new(w.Gates, w.HiddenSize, w.InputSize, w.BlockSize, Numbers.As<T>(w.WeightIH), Numbers.As<T>(w.WeightHH), Numbers.As<T>(w.BiasIH), Numbers.As<T>(w.BiasHH));

    /// <summary>The equations of the issue, step by step in double: each gate's pre-activation summed term by term.</summary>
    internal static double[] Reference(string kind, StructuredWeights<double> w, double[] x, int length, double[]? h0)
    {
        int n = w.HiddenSize, d = w.InputSize, k = w.BlockSize, s = StateOf(kind, n);
        var h = h0 is null ? new double[s] : (double[])h0.Clone();
        var result = new double[length * s];
        double Pre(int gate, int i, int t, bool withRecurrent = true)
        {
            int row = gate * n + i;
            double sum = w.BiasIH[row];
            for (int j = 0; j < d; j++)
            {
                sum += w.WeightIH[row * d + j] * x[t * d + j];
            }

            return withRecurrent ? sum + Recurrent(gate, i) : sum;
        }

        double Recurrent(int gate, int i)
        {
            int row = gate * n + i;
            double sum = w.BiasHH[row];
            for (int c = 0; c < k; c++)
            {
                sum += w.WeightHH[row * k + c] * h[i / k * k + c];
            }

            return sum;
        }

        static double Sigmoid(double v) => 1 / (1 + Math.Exp(-v));
        var next = new double[s];
        for (int t = 0; t < length; t++)
        {
            for (int i = 0; i < n; i++)
            {
                switch (kind)
                {
                    case "indrnn":
                        next[i] = Math.Tanh(Pre(0, i, t));
                        break;
                    case "diag-gru":
                        double r = Sigmoid(Pre(0, i, t)), z = Sigmoid(Pre(1, i, t));
                        double g = Math.Tanh(Pre(2, i, t, withRecurrent: false) + r * Recurrent(2, i));
                        next[i] = (1 - z) * g + z * h[i];
                        break;
                    default:
                        double ig = Sigmoid(Pre(0, i, t)), fg = Sigmoid(Pre(1, i, t)), gg = Math.Tanh(Pre(2, i, t)), og = Sigmoid(Pre(3, i, t));
                        double c = fg * h[n + i] + ig * gg;
                        next[n + i] = c;
                        next[i] = og * Math.Tanh(c);
                        break;
                }
            }

            next.CopyTo(h, 0);
            next.CopyTo(result, t * s);
        }

        return result;
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void The_loop_and_DEER_match_the_reference_equations(string kind, int k) => Seeded.Run(rnd =>
    {
        Check<double>(kind, k, rnd, 1e-10);
        Check<float>(kind, k, rnd, 1e-5);
    });

    private static void Check<T>(string kind, int k, Random rnd, double tolerance)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = 4 * k, d = 3, length = 700, s = StateOf(kind, n);
        StructuredWeights<double> w = StructuredWeights<double>.Random(GatesOf(kind), n, d, k, rnd, scale: 1.5);
        double[] x = Numbers.Uniform(rnd, length * d, 2.0), h0 = Numbers.Uniform(rnd, s, 0.5);
        double[] expected = Reference(kind, w, x, length, h0);
        StructuredWeights<T> wt = Convert<T>(w);
        foreach (SolveMethod method in new[] { SolveMethod.Sequential, SolveMethod.Deer, SolveMethod.QuasiDeer })
        {
            // The solver's tolerance is a tenth of the bar, so that a converged iterate is within the bar of the solution.
            var options = new SolveOptions
            {
                Method = method, Fallback = FallbackPolicy.None, MaxIterations = length, AbsoluteTolerance = tolerance / 10, RelativeTolerance = tolerance / 10,
            };
            SolveResult<T> r = With(kind, wt, new SolverAgreementTests.SolveWith<T>(Numbers.As<T>(x), 1, length, options, Numbers.As<T>(h0)));
            Assert.True(r.Converged, $"{kind} k={k} {typeof(T).Name} {method}: {r}");
            // The loop and exact Newton meet the bar; quasi-DEER stops at a residual of atol = the bar itself, and its
            // states can then sit a few residuals away (error ≤ residual / (1 - contraction)), so it gets 10×.
            double bar = method == SolveMethod.QuasiDeer ? 10 * tolerance : tolerance;
            double diff = Numbers.MaxAbsDiff(expected, Numbers.ToDouble(r.States));
            Assert.True(diff <= bar, $"{kind} k={k} {typeof(T).Name} {method}: {diff:G3} from the reference equations (tolerance {bar:G1}); {r}");
        }
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Block_diagonal_and_full_Jacobians_match_central_differences(string kind, int k) => Seeded.Run(rnd =>
    {
        int n = 2 * k + (k == 1 ? 1 : 0), d = 2, s = StateOf(kind, n);
        if (n % k != 0)
        {
            n = 2 * k;
            s = StateOf(kind, n);
        }

        StructuredWeights<double> w = StructuredWeights<double>.Random(GatesOf(kind), n, d, k, rnd, scale: 2.0);
        With(kind, w, new JacobianCheck(Numbers.Uniform(rnd, s, 0.8), Numbers.Uniform(rnd, d, 2.0)));
    });

    private readonly struct JacobianCheck(double[] state, double[] x) : ICellFunc<double, bool>
    {
        public bool Invoke<TCell>(TCell cell)
            where TCell : IRecurrentCell<double>
        {
            int s = cell.StateSize, p = cell.ProjectionSize;
            JacobianStructure structure = JacobianStructures.Of<TCell, double>(cell) ?? throw new InvalidOperationException("no structure");
            var projection = new double[p];
            cell.ProjectInputs(x, projection, 1);
            var work = new double[Math.Max(cell.WorkspaceSize, cell.BlockWorkspaceSize(1))];
            var numeric = new double[s * s];
            var up = new double[s];
            var down = new double[s];
            const double H = 1e-6;
            for (int j = 0; j < s; j++)
            {
                double[] shifted = (double[])state.Clone();
                shifted[j] += H;
                cell.Evaluate(shifted, projection, up, work);
                shifted[j] -= 2 * H;
                cell.Evaluate(shifted, projection, down, work);
                for (int i = 0; i < s; i++)
                {
                    numeric[i * s + j] = (up[i] - down[i]) / (2 * H);
                }
            }

            var f = new double[s];
            var full = new double[s * s];
            var diagonal = new double[s];
            var blocks = new double[structure.EntriesPerStep(s)];
            cell.EvaluateBlock(state, projection, f, full, JacobianMode.Full, work, 1);
            cell.EvaluateBlock(state, projection, f, diagonal, JacobianMode.Diagonal, work, 1);
            cell.EvaluateBlock(state, projection, f, blocks, JacobianMode.Block, work, 1);
            var fromBlocks = new double[s * s];
            int side = structure.Side, units = s / structure.Parts;
            for (int b = 0; b < s / side; b++)
            {
                for (int r = 0; r < side; r++)
                {
                    for (int c = 0; c < side; c++)
                    {
                        fromBlocks[structure.Index(b, r, units) * s + structure.Index(b, c, units)] = blocks[(b * side + r) * side + c];
                    }
                }
            }

            Assert.True(Numbers.MaxAbsDiff(numeric, full) <= 1e-8, $"{typeof(TCell).Name}: full Jacobian vs central differences {Numbers.MaxAbsDiff(numeric, full):G3}");
            // The numeric Jacobian is zero outside the declared blocks: the structure holds.
            Assert.True(Numbers.MaxAbsDiff(numeric, fromBlocks) <= 1e-8, $"{typeof(TCell).Name}: block Jacobian vs central differences {Numbers.MaxAbsDiff(numeric, fromBlocks):G3}");
            for (int i = 0; i < s; i++)
            {
                Assert.True(Math.Abs(diagonal[i] - numeric[i * s + i]) <= 1e-8, $"{typeof(TCell).Name}: diagonal[{i}]");
            }

            return true;
        }
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Gradients_match_central_finite_differences(string kind, int k) => Seeded.Run(rnd => CheckGradients(kind, k, 2 * k, rnd));

    /// <summary>
    /// Blocks of one unit at n = 13: three Vector&lt;double&gt; widths of 4 (or one of 8) and a scalar tail, so the block
    /// products' vector lanes (BlockCellWeights.DiagonalStep) are checked against central differences too.
    /// </summary>
    [Theory]
    [InlineData("indrnn")]
    [InlineData("diag-gru")]
    [InlineData("diag-lstm")]
    public void Gradients_across_vector_lanes_match_central_finite_differences(string kind) => Seeded.Run(rnd => CheckGradients(kind, 1, 13, rnd));

    private static void CheckGradients(string kind, int k, int n, Random rnd)
    {
        int d = 2, length = 9, s = StateOf(kind, n);
        StructuredWeights<double> w = StructuredWeights<double>.Random(GatesOf(kind), n, d, k, rnd, scale: 1.5);
        double[] x = Numbers.Uniform(rnd, length * d), h0 = Numbers.Uniform(rnd, s, 0.5), cot = Numbers.Uniform(rnd, length * n);
        var tight = new SolveOptions { Method = SolveMethod.Deer, AbsoluteTolerance = 1e-13, RelativeTolerance = 1e-13 };
        GradientResult<double> g = With(kind, w, new Differentiate(x, h0, cot, length, tight, AdjointMethod.Scan));
        Assert.True(g.Forward.Converged, g.Forward.ToString());
        Assert.Equal(AdjointMethod.Scan, g.Adjoint);
        // The block adjoint scan and backpropagation through time agree.
        GradientResult<double> bptt = With(kind, w, new Differentiate(x, h0, cot, length, tight, AdjointMethod.Sequential));
        Assert.True(Numbers.MaxAbsDiff(bptt.ParameterGradient, g.ParameterGradient) <= 1e-9 * Math.Max(1, bptt.ParameterGradient.Max(Math.Abs)), $"{kind} k={k}: scan and BPTT adjoints differ");
        var (gih, ghh, gbi, gbh) = w.SplitGradient(g.ParameterGradient);
        double Loss() => Reference(kind, w, x, length, h0).Chunk(s).SelectMany(step => step.Take(n)).Zip(cot).Sum(p => p.First * p.Second);
        const double H = 1e-6;
        double Central(Action<double> nudge) { nudge(H); double up = Loss(); nudge(-2 * H); double down = Loss(); nudge(H); return (up - down) / (2 * H); }
        void Near(double analytic, double numeric, string what) =>
            Assert.True(Math.Abs(analytic - numeric) <= 1e-6 * Math.Max(1, Math.Abs(numeric)), $"{kind} k={k} {what}: analytic {analytic}, central difference {numeric}");

        for (int trial = 0; trial < 8; trial++)
        {
            int i = rnd.Next(w.WeightIH.Length), j = rnd.Next(w.WeightHH.Length), bi = rnd.Next(w.BiasIH.Length), bh = rnd.Next(w.BiasHH.Length);
            Near(gih[i], Central(e => w.WeightIH[i] += e), $"weight_ih[{i}]");
            Near(ghh[j], Central(e => w.WeightHH[j] += e), $"weight_hh[{j}]");
            Near(gbi[bi], Central(e => w.BiasIH[bi] += e), $"bias_ih[{bi}]");
            Near(gbh[bh], Central(e => w.BiasHH[bh] += e), $"bias_hh[{bh}]");
            int xi = rnd.Next(x.Length), hi = rnd.Next(h0.Length);
            Near(g.InputGradient[xi], Central(e => x[xi] += e), $"x[{xi}]");
            Near(g.InitialStateGradient[hi], Central(e => h0[hi] += e), $"h0[{hi}]");
        }
    }

    private readonly struct Differentiate(double[] x, double[] h0, double[] cot, int length, SolveOptions options, AdjointMethod adjoint)
        : ICellFunc<double, GradientResult<double>>
    {
        public GradientResult<double> Invoke<TCell>(TCell cell)
            where TCell : IRecurrentCell<double> => cell switch
        {
            IndRnnCell<double> c => Deer.Gradient(c, x, 1, length, cot, options, new GradientOptions { Adjoint = adjoint }, h0),
            DiagonalGruCell<double> c => Deer.Gradient(c, x, 1, length, cot, options, new GradientOptions { Adjoint = adjoint }, h0),
            DiagonalLstmCell<double> c => Deer.Gradient(c, x, 1, length, cot, options, new GradientOptions { Adjoint = adjoint }, h0),
            _ => throw new InvalidOperationException(),
        };
    }

    /// <summary>The bar: exact Newton with PyTorch's initialisation converges within 4 iterations at T = 65,536.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Deer_on_the_diagonal_GRU_converges_within_4_iterations_at_T_65536(int k) => Seeded.Run(rnd =>
    {
        const int N = 32, D = 8, Length = 65_536;
        var cell = DiagonalGruCell<float>.Random(D, N, k, rnd);
        float[] x = Numbers.As<float>(Numbers.Uniform(rnd, Length * D, 1.0));
        SolveResult<float> deer = Deer.Solve(cell, x, 1, Length, new SolveOptions { Method = SolveMethod.Deer, Fallback = FallbackPolicy.None });
        SolveResult<float> loop = Deer.Solve(cell, x, 1, Length, new SolveOptions { Method = SolveMethod.Sequential });
        Assert.True(deer.Converged, deer.ToString());
        Assert.True(deer.Iterations <= 4, $"k={k}: {deer.Iterations} iterations; {deer}");
        // At the default float tolerance (atol = rtol = 1e-5 on the residual) the states may sit a little more than
        // 1e-5 from the loop's over 65,536 steps (1.7e-5 seen); the 1e-5 agreement bar is tested at T = 700 above.
        double diff = Numbers.MaxAbsDiff(Numbers.ToDouble(loop.States), Numbers.ToDouble(deer.States));
        Assert.True(diff <= 1e-4, $"k={k}: DEER differs from the loop by {diff:G3}");
    });

    [Fact]
    public void Auto_picks_exact_Newton_for_structured_cells_when_the_cores_pay_for_it() => Seeded.Run(rnd =>
    {
        var diagonal = new JacobianStructure(1);
        Assert.Equal(SolveMethod.Sequential, Engines.CostModel.Choose(1, 1 << 16, 64, cores: 2, diagonal));
        Assert.Equal(SolveMethod.Deer, Engines.CostModel.Choose(1, 1 << 16, 64, cores: 16, diagonal));
        Assert.Equal(SolveMethod.Sequential, Engines.CostModel.Choose(1, 1 << 16, 64, cores: 16, new JacobianStructure(8)));
        // The dense GRU at the same size and cores gets quasi-DEER or the loop, never exact DEER.
        Assert.NotEqual(SolveMethod.Deer, Engines.CostModel.Choose(1, 1 << 16, 64, cores: 16));

        const int Length = 8192;
        var cell = DiagonalGruCell<double>.Random(4, 8, 1, rnd);
        double[] x = Numbers.Uniform(rnd, Length * 4);
        SolveResult<double> auto = Deer.Solve(cell, x, 1, Length, new SolveOptions { Method = SolveMethod.Auto, MaxDegreeOfParallelism = 16 });
        SolveResult<double> loop = Deer.Solve(cell, x, 1, Length, new SolveOptions { Method = SolveMethod.Sequential });
        Assert.Equal(SolveMethod.Deer, auto.Method);
        Assert.True(auto.Converged && auto.Iterations <= 4, auto.ToString());
        Assert.True(Numbers.MaxAbsDiff(loop.States, auto.States) <= 1e-9);
    });

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 1)]
    [InlineData(4, 1)]
    [InlineData(8, 1)]
    [InlineData(1, 2)]
    [InlineData(2, 2)]
    [InlineData(4, 2)]
    public void Block_scan_matches_the_dense_loop(int k, int parts) => Seeded.Run(rnd =>
    {
        int units = 2 * k, s = parts * units;
        var structure = new JacobianStructure(k, parts);
        int side = structure.Side, m = s * side;
        foreach (int length in new[] { 0, 1, 2, 513, 1025, 3000 })
        {
            double[] a = Numbers.Uniform(rnd, length * m, 0.9 / side), b = Numbers.Uniform(rnd, length * s), h0 = Numbers.Uniform(rnd, s);
            // The same maps as dense matrices, solved by the plain dense loop.
            var dense = new double[length * s * s];
            for (int t = 0; t < length; t++)
            {
                for (int blk = 0; blk < s / side; blk++)
                {
                    for (int r = 0; r < side; r++)
                    {
                        for (int c = 0; c < side; c++)
                        {
                            dense[t * s * s + structure.Index(blk, r, units) * s + structure.Index(blk, c, units)] = a[t * m + (blk * side + r) * side + c];
                        }
                    }
                }
            }

            var expected = new double[length * s];
            LinearRecurrence.SolveDenseSequential<double>(dense, b, h0, expected, s);
            var sequential = new double[length * s];
            LinearRecurrence.SolveBlockDiagonal(a, b, h0, sequential, length, s, structure, maxDegreeOfParallelism: 1);
            Assert.True(Numbers.MaxAbsDiff(expected, sequential) <= 1e-12, $"k={k} P={parts} L={length}: block loop");
            foreach (int workers in new[] { 2, 3, 7 })
            {
                var blocked = new double[length * s];
                LinearRecurrence.SolveBlocked(a, b, h0, blocked, length, s, ScanForm.Blocks(structure), workers, maxDegreeOfParallelism: 2);
                Assert.True(Numbers.MaxAbsDiff(expected, blocked) <= 1e-12, $"k={k} P={parts} L={length} workers={workers}: blocked block scan");
            }

            // In place (h = b), as the solver calls it.
            var inPlace = (double[])b.Clone();
            LinearRecurrence.SolveBlockDiagonal(a, inPlace, h0, inPlace, length, s, structure, maxDegreeOfParallelism: 1);
            Assert.True(Numbers.MaxAbsDiff(expected, inPlace) <= 1e-12, $"k={k} P={parts} L={length}: in place");
        }
    });

    [Fact]
    public void Bad_shapes_are_clear_errors()
    {
        var rnd = new Random(1);
        var e = Assert.Throws<ArgumentException>(() => StructuredWeights<double>.Random(3, 6, 2, 4, rnd));
        Assert.Equal("blockSize", e.ParamName);
        Assert.Contains("6", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => new StructuredWeights<double>(1, 4, 2, 2, new double[8], new double[4]));
        Assert.Equal("weightHH", e.ParamName);
        Assert.Contains("[4, 2]", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new DiagonalGruCell<double>(StructuredWeights<double>.Random(4, 4, 2, 2, rnd)));
        Assert.Throws<ArgumentException>(() => Deer.Solve(default(DiagonalGruCell<double>), new double[4], 1, 2));
    }

    /// <summary>f_i = tanh(Σ_j W_ij h_j + x): dense coupling, which the tests may declare wrongly (claimed).</summary>
    private readonly struct Coupled(double[] w, int n, JacobianStructure? claimed) : IRecurrence, IStructuredJacobian
    {
        public int StateSize => n;

        public int InputSize => 1;

        public JacobianStructure? JacobianStructure => claimed;

        public void Apply<TNum>(ReadOnlySpan<TNum> state, ReadOnlySpan<TNum> input, Span<TNum> next)
            where TNum : IFloatingPointIeee754<TNum>
        {
            for (int i = 0; i < n; i++)
            {
                TNum sum = input[0];
                for (int j = 0; j < n; j++)
                {
                    sum += TNum.CreateTruncating(w[i * n + j]) * state[j];
                }

                next[i] = TNum.Tanh(sum);
            }
        }
    }

    [Fact]
    public void A_wrongly_declared_structure_is_caught_by_the_residual_check() => Seeded.Run(rnd =>
    {
        const int N = 4, Length = 2000;
        double[] w = Numbers.Uniform(rnd, N * N, 0.6);
        double[] x = Numbers.Uniform(rnd, Length, 1.0);
        var options = new SolveOptions { Method = SolveMethod.Deer, MaxIterations = 8, Fallback = FallbackPolicy.None };
        SolveResult<double> loop = Deer.Solve(new AutoDiffCell<Coupled, double>(new Coupled(w, N, null)), x, 1, Length, new SolveOptions { Method = SolveMethod.Sequential });
        SolveResult<double> honest = Deer.Solve(new AutoDiffCell<Coupled, double>(new Coupled(w, N, null)), x, 1, Length, options with { MaxIterations = 50 });
        SolveResult<double> wrong = Deer.Solve(new AutoDiffCell<Coupled, double>(new Coupled(w, N, new JacobianStructure(1))), x, 1, Length, options);
        Assert.True(honest.Converged, honest.ToString());
        Assert.True(Numbers.MaxAbsDiff(loop.States, honest.States) <= 1e-8);
        // The false declaration makes Newton use the wrong Jacobian: it does not converge in the iterations that dense
        // DEER needs, and says so; whatever it returns is labelled, never reported as converged.
        Assert.False(wrong.Converged, wrong.ToString());
        Assert.Contains(wrong.Status, new[] { SolveStatus.MaxIterationsReached, SolveStatus.Diverged });
        Assert.True(wrong.MaxResidual > 1e-10, wrong.ToString());
        // With the fallback, the answer is the loop's, labelled as such.
        SolveResult<double> rescued = Deer.Solve(new AutoDiffCell<Coupled, double>(new Coupled(w, N, new JacobianStructure(1))), x, 1, Length,
            options with { Fallback = FallbackPolicy.Sequential });
        Assert.Equal(SolveMethod.Sequential, rescued.FallbackMethod);
        Assert.True(Numbers.MaxAbsDiff(loop.States, rescued.States) <= 1e-12);

        // The adjoint has no residual to check, so it checks the declaration: a gradient on it would be wrong.
        var liar = new AutoDiffCell<Coupled, double>(new Coupled(w, N, new JacobianStructure(1)));
        double[] cot = Numbers.Uniform(rnd, Length * N);
        var e = Assert.Throws<InvalidOperationException>(() => Deer.Gradient(liar, x, 1, Length, cot, new SolveOptions { Method = SolveMethod.Sequential },
            new GradientOptions { Adjoint = AdjointMethod.Scan }));
        Assert.Contains("outside its blocks", e.Message, StringComparison.Ordinal);
        // BPTT over the declared blocks builds on it too, and checks it the same way.
        e = Assert.Throws<InvalidOperationException>(() => Deer.Gradient(liar, x, 1, Length, cot, new SolveOptions { Method = SolveMethod.Sequential },
            new GradientOptions { Adjoint = AdjointMethod.Sequential }));
        Assert.Contains("outside its blocks", e.Message, StringComparison.Ordinal);
    });

    [Fact]
    public void A_declared_structure_costs_K_dual_evaluations_and_gives_exact_Newton() => Seeded.Run(rnd =>
    {
        // A true block-diagonal recurrence (blocks of 2) declared as such converges like dense DEER.
        const int N = 6, Length = 3000;
        double[] w = Numbers.Uniform(rnd, N * N, 0.45);
        for (int i = 0; i < N; i++)
        {
            for (int j = 0; j < N; j++)
            {
                if (i / 2 != j / 2)
                {
                    w[i * N + j] = 0;
                }
            }
        }

        double[] x = Numbers.Uniform(rnd, Length, 1.0);
        var options = new SolveOptions { Method = SolveMethod.Deer, Fallback = FallbackPolicy.None };
        SolveResult<double> dense = Deer.Solve(new AutoDiffCell<Coupled, double>(new Coupled(w, N, null)), x, 1, Length, options);
        SolveResult<double> blocks = Deer.Solve(new AutoDiffCell<Coupled, double>(new Coupled(w, N, new JacobianStructure(2))), x, 1, Length, options);
        Assert.True(dense.Converged && blocks.Converged, $"{dense}; {blocks}");
        Assert.Equal(dense.Iterations, blocks.Iterations);
        Assert.True(Numbers.MaxAbsDiff(dense.States, blocks.States) <= 1e-9);
        Assert.Throws<ArgumentException>(() => new AutoDiffCell<Coupled, double>(new Coupled(w, N, new JacobianStructure(4))));
    });

    /// <summary>
    /// Two parts per unit, h and c, coupled only within the unit: c' = σ(a x) ⊙ c + tanh(b ⊙ h + x), h' = tanh(c') ⊙ σ(e ⊙ h).
    /// Its Jacobian is 2×2 blocks over (h_u, c_u): <see cref="JacobianStructure"/>(1, Parts: 2) when declared.
    /// </summary>
    private readonly struct TwoPart(double[] a, double[] b, double[] e, int n, bool declared) : IRecurrence, IStructuredJacobian
    {
        public int StateSize => 2 * n;

        public int InputSize => 1;

        public JacobianStructure? JacobianStructure => declared ? new JacobianStructure(1, Parts: 2) : null;

        public void Apply<TNum>(ReadOnlySpan<TNum> state, ReadOnlySpan<TNum> input, Span<TNum> next)
            where TNum : IFloatingPointIeee754<TNum>
        {
            for (int u = 0; u < n; u++)
            {
                TNum f = TNum.One / (TNum.One + TNum.Exp(-TNum.CreateTruncating(a[u]) * input[0]));
                TNum c = (f * state[n + u]) + TNum.Tanh((TNum.CreateTruncating(b[u]) * state[u]) + input[0]);
                TNum o = TNum.One / (TNum.One + TNum.Exp(-TNum.CreateTruncating(e[u]) * state[u]));
                next[n + u] = c;
                next[u] = TNum.Tanh(c) * o;
            }
        }
    }

    /// <summary>
    /// BPTT over the Jacobian blocks a custom cell declares (Cpu/Adjoint.Loop.cs, BackpropagateBlocks: blocks of one unit
    /// over two parts by contiguous runs, blocks of two units through the index table), across three windows, against
    /// BPTT through the same recurrence undeclared (one dense backward step at a time), to 1e-9 of the largest entry.
    /// </summary>
    [Fact]
    public void BPTT_over_declared_blocks_matches_the_undeclared_cell_across_windows() => Seeded.Run(rnd =>
    {
        const int N = 6;
        int length = (2 * Cpu.Adjoint.LoopWindowSteps) + 37;
        double[] x = Numbers.Uniform(rnd, length, 1.0), c = Numbers.Uniform(rnd, length * 2 * N);
        var options = new SolveOptions { Method = SolveMethod.Sequential };
        var bptt = new GradientOptions { Adjoint = AdjointMethod.Sequential };
        double[] a = Numbers.Uniform(rnd, N), b = Numbers.Uniform(rnd, N), e = Numbers.Uniform(rnd, N);
        double[] h0 = Numbers.Uniform(rnd, 2 * N, 0.5);
        GradientResult<double> parts = Deer.Gradient(new AutoDiffCell<TwoPart, double>(new TwoPart(a, b, e, N, true)), x, 1, length, c, options, bptt, h0);
        GradientResult<double> dense = Deer.Gradient(new AutoDiffCell<TwoPart, double>(new TwoPart(a, b, e, N, false)), x, 1, length, c, options, bptt, h0);
        Assert.Equal(3, parts.AdjointWindows);
        Assert.True(Numbers.MaxAbsDiff(dense.InputGradient, parts.InputGradient) <= 1e-9 * dense.InputGradient.Max(Math.Abs), "two parts: inputs");
        Assert.True(Numbers.MaxAbsDiff(dense.InitialStateGradient, parts.InitialStateGradient) <= 1e-9 * dense.InitialStateGradient.Max(Math.Abs), "two parts: h0");

        double[] w = Numbers.Uniform(rnd, N * N, 0.45);
        for (int i = 0; i < N; i++)
        {
            for (int j = 0; j < N; j++)
            {
                w[i * N + j] = i / 2 == j / 2 ? w[i * N + j] : 0;
            }
        }

        double[] cn = Numbers.Uniform(rnd, length * N), h0n = Numbers.Uniform(rnd, N, 0.5);
        GradientResult<double> pairs = Deer.Gradient(new AutoDiffCell<Coupled, double>(new Coupled(w, N, new JacobianStructure(2))), x, 1, length, cn, options, bptt, h0n);
        GradientResult<double> full = Deer.Gradient(new AutoDiffCell<Coupled, double>(new Coupled(w, N, null)), x, 1, length, cn, options, bptt, h0n);
        Assert.True(Numbers.MaxAbsDiff(full.InputGradient, pairs.InputGradient) <= 1e-9 * full.InputGradient.Max(Math.Abs), "blocks of two: inputs");
        Assert.True(Numbers.MaxAbsDiff(full.InitialStateGradient, pairs.InitialStateGradient) <= 1e-9 * full.InitialStateGradient.Max(Math.Abs), "blocks of two: h0");
    });
}
