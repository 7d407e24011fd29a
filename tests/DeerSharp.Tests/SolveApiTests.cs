using System.Numerics;
using DeerSharp.Cells;

namespace DeerSharp.Tests;

/// <summary>The public surface: shapes, validation messages, honest statuses, stacks, warm starts and custom cells.</summary>
public class SolveApiTests
{
    private static float[,] RandomInputs(int length, int d, int seed)
    {
        var rnd = new Random(seed);
        var x = new float[length, d];
        for (int t = 0; t < length; t++)
        {
            for (int i = 0; i < d; i++)
            {
                x[t, i] = (float)(rnd.NextDouble() * 2 - 1);
            }
        }

        return x;
    }

    [Fact]
    public void Solve_is_callable_exactly_as_documented()
    {
        var gru = GruCell<float>.Random(inputSize: 4, hiddenSize: 16, new Random(1));
        float[,] x = RandomInputs(500, 4, 2);
        SolveResult<float> result = Deer.Solve(gru, x);
        Assert.Equal(SolveMethod.Deer, result.Method);
        Assert.True(result.Converged, result.ToString());
        Assert.Equal(500, result.Length);
        Assert.Equal(16, result.State(499).Length);

        SolveResult<float> sequential = Deer.Solve(gru, x, new SolveOptions { Method = SolveMethod.Sequential });
        Assert.True(Numbers.MaxAbsDiff(Numbers.ToDouble(sequential.States), Numbers.ToDouble(result.States)) <= 1e-4);
    }

    /// <summary>
    /// A caller's states array: written in full (it starts as NaN), equal bit for bit to a solve into a new array, for
    /// each overload, the loop and DEER, one sequence and a batch; the result's States is that array. A wrong length or
    /// an array that overlaps the warm start is refused, naming states.
    /// </summary>
    [Fact]
    public void A_solve_into_the_callers_states_array_equals_one_into_a_new_array() => Seeded.Run(rnd =>
    {
        var lstm = LstmCell<float>.Random(5, 8, rnd);
        int length = rnd.Next(200, 400), batch = 3, s = lstm.StateSize;
        float[,] x = RandomInputs(length, 5, rnd.Next());
        var xb = new float[batch, length, 5];
        for (int b = 0; b < batch; b++)
        {
            for (int t = 0; t < length; t++)
            {
                for (int i = 0; i < 5; i++)
                {
                    xb[b, t, i] = (float)(rnd.NextDouble() * 2 - 1);
                }
            }
        }

        foreach (SolveMethod method in new[] { SolveMethod.Sequential, SolveMethod.Deer })
        {
            var options = new SolveOptions { Method = method };
            var buffer = new float[length * s];
            for (int round = 0; round < 2; round++)
            {
                Array.Fill(buffer, float.NaN);
                SolveResult<float> into = Deer.Solve(lstm, x, options, states: buffer);
                Assert.Same(buffer, into.States);
                Assert.Equal(Deer.Solve(lstm, x, options).States, buffer);
            }

            var batched = new float[batch * length * s];
            Array.Fill(batched, float.NaN);
            Assert.Same(batched, Deer.Solve(lstm, xb, options, states: batched).States);
            Assert.Equal(Deer.Solve(lstm, xb, options).States, batched);

            float[] flat = [.. xb.Cast<float>()];
            Array.Fill(batched, float.NaN);
            Deer.Solve(lstm, flat, batch, length, options, states: batched);
            Assert.Equal(Deer.Solve(lstm, xb, options).States, batched);
        }

        var wrong = Assert.Throws<ArgumentException>(() => Deer.Solve(lstm, x, states: new float[length * s - 1]));
        Assert.Equal("states", wrong.ParamName);
        Assert.Contains($"{length * s - 1} values", wrong.Message);
        Assert.Contains($"1·{length}·{s}", wrong.Message);

        var shared = new float[length * s];
        var overlap = Assert.Throws<ArgumentException>(() => Deer.Solve(lstm, x, warmStart: shared, states: shared));
        Assert.Equal("states", overlap.ParamName);
        Assert.Contains("warm start", overlap.Message);
    });

    [Fact]
    public void Auto_picks_the_loop_on_few_cores_and_quasi_deer_only_for_long_single_sequences_on_many()
    {
        Assert.Equal(SolveMethod.Sequential, Engines.CostModel.Choose(batchSize: 1, length: 1 << 20, stateSize: 1, cores: 2));
        Assert.Equal(SolveMethod.QuasiDeer, Engines.CostModel.Choose(batchSize: 1, length: 1 << 20, stateSize: 1, cores: 64));
        Assert.Equal(SolveMethod.Sequential, Engines.CostModel.Choose(batchSize: 64, length: 1 << 20, stateSize: 1, cores: 64));
        Assert.Equal(SolveMethod.Sequential, Engines.CostModel.Choose(batchSize: 1, length: 1000, stateSize: 1, cores: 64));
        Assert.Equal(SolveMethod.Sequential, Engines.CostModel.Choose(batchSize: 1, length: 1 << 20, stateSize: 64, cores: 16));

        var gru = GruCell<float>.Random(4, 8, new Random(1));
        SolveResult<float> r = Deer.Solve(gru, RandomInputs(5000, 4, 3), new SolveOptions { Method = SolveMethod.Auto, MaxDegreeOfParallelism = 2 });
        Assert.Equal(SolveMethod.Sequential, r.Method);
        SolveResult<float> many = Deer.Solve(gru, RandomInputs(5000, 4, 3), new SolveOptions { Method = SolveMethod.Auto, MaxDegreeOfParallelism = 512 });
        Assert.Equal(SolveMethod.QuasiDeer, many.Method);
        Assert.True(many.Converged);
    }

    [Fact]
    public void A_wrong_input_width_names_inputs_and_both_shapes()
    {
        var gru = GruCell<float>.Random(4, 8, new Random(1));
        var ex = Assert.Throws<ArgumentException>(() => Deer.Solve(gru, new float[10, 3]));
        Assert.Equal("inputs", ex.ParamName);
        Assert.Contains("4 features", ex.Message, StringComparison.Ordinal);
        Assert.Contains("[10, 3]", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_wrong_initial_state_names_it_with_the_expected_shape()
    {
        var lstm = LstmCell<double>.Random(2, 3, new Random(1));
        var ex = Assert.Throws<ArgumentException>(() => Deer.Solve(lstm, new double[2, 5, 2], initialState: new double[6]));
        Assert.Equal("initialState", ex.ParamName);
        Assert.Contains("[2, 6]", ex.Message, StringComparison.Ordinal);
        Assert.Contains("holds 6", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Non_finite_inputs_are_rejected_with_their_position()
    {
        var rnn = TanhRnnCell<double>.Random(2, 3, new Random(1));
        var x = new double[4, 2];
        x[2, 1] = double.NaN;
        var ex = Assert.Throws<ArgumentException>(() => Deer.Solve(rnn, x));
        Assert.Equal("inputs", ex.ParamName);
        Assert.Contains("[0, 2, 1]", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Invalid_options_are_rejected_by_name()
    {
        var rnn = TanhRnnCell<double>.Random(2, 3, new Random(1));
        var x = new double[4, 2];
        Assert.Equal("MaxIterations", Assert.Throws<ArgumentOutOfRangeException>(() => Deer.Solve(rnn, x, new SolveOptions { MaxIterations = -1 })).ParamName);
        Assert.Equal("AbsoluteTolerance", Assert.Throws<ArgumentOutOfRangeException>(() => Deer.Solve(rnn, x, new SolveOptions { AbsoluteTolerance = double.NaN })).ParamName);
        Assert.Equal("MaxDegreeOfParallelism", Assert.Throws<ArgumentOutOfRangeException>(() => Deer.Solve(rnn, x, new SolveOptions { MaxDegreeOfParallelism = 0 })).ParamName);
        Assert.Equal("Method", Assert.Throws<ArgumentException>(() => Deer.Solve(rnn, x, new SolveOptions { Method = (SolveMethod)42 })).ParamName);
    }

    [Fact]
    public void Weights_of_the_wrong_shape_are_rejected()
    {
        var ex = Assert.Throws<ArgumentException>(() => new RecurrentWeights<float>(3, 4, 2, new float[24], new float[47]));
        Assert.Equal("weightHH", ex.ParamName);
        Assert.Contains("[12, 4]", ex.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new GruCell<float>(new RecurrentWeights<float>(4, 4, 2, new float[32], new float[64])));
    }

    [Fact]
    public void Half_precision_is_refused_clearly()
    {
        var w = new RecurrentWeights<Half>(1, 2, 1, new Half[2], new Half[4]);
        var ex = Assert.Throws<NotSupportedException>(() => Deer.Solve(new TanhRnnCell<Half>(w), new Half[3, 1]));
        Assert.Contains("float or double", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Empty_sequences_converge_trivially()
    {
        var gru = GruCell<double>.Random(3, 4, new Random(1));
        SolveResult<double> r = Deer.Solve(gru, new double[2, 0, 3]);
        Assert.True(r.Converged);
        Assert.Equal(0, r.Iterations);
        Assert.Empty(r.States);
        Assert.Equal(0, r.MaxResidual);
    }

    [Fact]
    public void Zero_iterations_from_a_wrong_guess_is_not_converged()
    {
        var gru = GruCell<double>.Random(3, 4, new Random(1));
        var x = new double[50, 3];
        x[0, 0] = 1;
        SolveResult<double> r = Deer.Solve(gru, x, new SolveOptions { MaxIterations = 0, Fallback = FallbackPolicy.None });
        Assert.False(r.Converged);
        Assert.Equal(SolveStatus.MaxIterationsReached, r.Status);
        Assert.Single(r.ResidualHistory);
        Assert.True(r.MaxResidual > 0);
    }

    [Fact]
    public void A_warm_start_at_the_solution_converges_without_iterating()
    {
        var lstm = LstmCell<double>.Random(3, 4, new Random(3));
        double[,] x = new double[200, 3];
        var rnd = new Random(4);
        for (int t = 0; t < 200; t++)
        {
            for (int i = 0; i < 3; i++)
            {
                x[t, i] = rnd.NextDouble();
            }
        }

        SolveResult<double> exact = Deer.Solve(lstm, x, new SolveOptions { Method = SolveMethod.Sequential });
        foreach (SolveMethod m in new[] { SolveMethod.Deer, SolveMethod.QuasiDeer, SolveMethod.Picard })
        {
            SolveResult<double> warm = Deer.Solve(lstm, x, new SolveOptions { Method = m, Fallback = FallbackPolicy.None }, warmStart: exact.States);
            Assert.True(warm.Converged);
            Assert.Equal(0, warm.Iterations);
            SolveResult<double> broadcast = Deer.Solve(lstm, x, new SolveOptions { Method = m, InitialGuess = InitialGuess.BroadcastInitialState, Fallback = FallbackPolicy.None });
            Assert.True(broadcast.Converged);
        }
    }

    /// <summary>h_t = 3 h_{t-1} + 1 overflows double after about 650 steps.</summary>
    private readonly struct Exploding : IRecurrence
    {
        public int StateSize => 1;

        public int InputSize => 1;

        public void Apply<TNum>(ReadOnlySpan<TNum> state, ReadOnlySpan<TNum> input, Span<TNum> next)
            where TNum : IFloatingPointIeee754<TNum> =>
            next[0] = TNum.CreateTruncating(3) * state[0] + TNum.One + input[0];
    }

    [Theory]
    [InlineData(SolveMethod.Sequential)]
    [InlineData(SolveMethod.Deer)]
    [InlineData(SolveMethod.QuasiDeer)]
    [InlineData(SolveMethod.Picard)]
    public void Overflow_is_reported_as_divergence_never_as_convergence(SolveMethod method)
    {
        var cell = new AutoDiffCell<Exploding, double>(new Exploding());
        SolveResult<double> r = Deer.Solve(cell, new double[2000, 1], new SolveOptions { Method = method, MaxIterations = 3000, Fallback = FallbackPolicy.None });
        Assert.False(r.Converged);
        Assert.Equal(SolveStatus.Diverged, r.Status);
        Assert.Contains(method == SolveMethod.Sequential ? "overflows" : "Diverged", r.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// The loop stops at the chunk where the states stop being finite; the chunks after it are not computed, and must read
    /// NaN (never zeros, or an earlier run's values in a reused buffer).
    /// </summary>
    [Fact]
    public void The_loop_marks_the_steps_it_did_not_compute_as_NaN()
    {
        var cell = new AutoDiffCell<Exploding, double>(new Exploding());
        int length = 3 * DeerSharp.Cpu.Solver.ChunkSteps(cell.ProjectionSize) + 17;
        SolveResult<double> r = Deer.Solve(cell, new double[length, 1], new SolveOptions { Method = SolveMethod.Sequential, Fallback = FallbackPolicy.None });
        Assert.Equal(SolveStatus.Diverged, r.Status);
        int first = Array.FindIndex(r.States, v => !double.IsFinite(v));
        Assert.InRange(first, 600, 700);                                   // 3^t overflows double near t = 646
        Assert.All(r.States[first..], v => Assert.False(double.IsFinite(v)));
    }

    [Theory]
    [InlineData("rnn")]
    [InlineData("gru")]
    [InlineData("lstm")]
    public void Stacked_layers_feed_outputs_upward(string kind)
    {
        var rnd = new Random(kind.Length);
        const int Length = 700, D = 3, N = 5;
        RecurrentWeights<double> w0 = Cells.Weights(kind, D, N, rnd), w1 = Cells.Weights(kind, N, N, rnd);
        double[] xs = Numbers.Uniform(rnd, Length * D);
        double[] layer0 = Cells.ReferenceStates(kind, w0, xs, Length);
        int s = kind == "lstm" ? 2 * N : N;
        double[] outputs0 = [.. Enumerable.Range(0, Length).SelectMany(t => layer0.Skip(t * s).Take(N))];
        double[] expected = Cells.ReferenceStates(kind, w1, outputs0, Length);

        var x = new double[Length, D];
        Buffer.BlockCopy(xs, 0, x, 0, xs.Length * sizeof(double));
        SolveResult<double> r = kind switch
        {
            "rnn" => Deer.Solve(new StackedCells<TanhRnnCell<double>, double>(new(w0), new(w1)), x),
            "gru" => Deer.Solve(new StackedCells<GruCell<double>, double>(new(w0), new(w1)), x),
            _ => Deer.Solve(new StackedCells<LstmCell<double>, double>(new(w0), new(w1)), x),
        };
        Assert.True(r.Converged, r.ToString());
        Assert.Equal(2, r.Layers!.Count);
        Assert.Equal(r.Layers.Sum(l => l.Iterations), r.Iterations);
        Assert.True(Numbers.MaxAbsDiff(expected, r.States) <= 1e-8);
        Assert.Equal(N, r.Outputs().Length / Length);
    }

    [Fact]
    public void Mismatched_layers_are_rejected()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            new StackedCells<GruCell<float>, float>(GruCell<float>.Random(3, 5, new Random(1)), GruCell<float>.Random(4, 5, new Random(2))));
        Assert.Contains("Layer 1 reads 4 inputs, but layer 0 outputs 5", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>A user recurrence: two coupled leaky oscillators with a sine nonlinearity, written once over TNum.</summary>
    internal readonly struct CoupledOscillators : IRecurrence
    {
        public int StateSize => 2;

        public int InputSize => 1;

        public void Apply<TNum>(ReadOnlySpan<TNum> h, ReadOnlySpan<TNum> x, Span<TNum> next)
            where TNum : IFloatingPointIeee754<TNum>
        {
            TNum decay = TNum.CreateTruncating(0.8), coupling = TNum.CreateTruncating(0.3);
            next[0] = decay * TNum.Sin(h[0]) + coupling * TNum.Tanh(h[1]) + x[0];
            next[1] = decay * TNum.Cos(h[1]) - coupling * h[0] * h[0] / (TNum.One + h[0] * h[0]);
        }
    }

    [Fact]
    public void Custom_cells_are_solved_through_automatic_differentiation()
    {
        var cell = new AutoDiffCell<CoupledOscillators, double>(new CoupledOscillators());
        var rnd = new Random(9);
        var x = new double[5000, 1];
        for (int t = 0; t < 5000; t++)
        {
            x[t, 0] = rnd.NextDouble() - 0.5;
        }

        // Independent reference: the recurrence stepped by hand.
        var expected = new double[5000 * 2];
        double a = 0, b = 0;
        for (int t = 0; t < 5000; t++)
        {
            double na = 0.8 * Math.Sin(a) + 0.3 * Math.Tanh(b) + x[t, 0];
            double nb = 0.8 * Math.Cos(b) - 0.3 * a * a / (1 + a * a);
            (a, b) = (na, nb);
            expected[2 * t] = a;
            expected[2 * t + 1] = b;
        }

        foreach (SolveMethod m in Enum.GetValues<SolveMethod>().Where(m => m != SolveMethod.Scan))
        {
            SolveResult<double> r = Deer.Solve(cell, x, new SolveOptions { Method = m, Fallback = FallbackPolicy.None });
            Assert.True(r.Converged, r.ToString());
            Assert.Equal(0, r.FallbackSequences);
            Assert.True(Numbers.MaxAbsDiff(expected, r.States) <= 1e-9, m.ToString());
        }
    }
}
