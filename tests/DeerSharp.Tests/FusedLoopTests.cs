using System.Numerics;
using System.Runtime.Intrinsics;
using DeerSharp.Cells;
using DeerSharp.Cpu;
using DeerSharp.Engines;

namespace DeerSharp.Tests;

/// <summary>
/// The fused float32 GRU and LSTM loops (Cpu/FusedLoop) and the pipelined projections (Cpu/ProjectionPipeline) against
/// the plain loop of <see cref="IRecurrentCell{T}.Evaluate"/>: they must give the same states bit for bit, at both widths,
/// over state sizes that cross every vector and two-vector block boundary.
/// </summary>
public class FusedLoopTests
{
    /// <summary>The plain loop: h_t = Evaluate(h_{t-1}, p_t), one step at a time.</summary>
    private static float[] PlainLoop<TCell>(TCell cell, float[] h0, float[] projections, int steps)
        where TCell : IRecurrentCell<float>
    {
        int s = cell.StateSize, p = cell.ProjectionSize;
        var states = new float[steps * s];
        var scratch = new float[cell.WorkspaceSize];
        ReadOnlySpan<float> previous = h0;
        for (int t = 0; t < steps; t++)
        {
            Span<float> current = states.AsSpan(t * s, s);
            cell.Evaluate(previous, projections.AsSpan(t * p, p), current, scratch);
            previous = current;
        }

        return states;
    }

    /// <summary>Random x projected by the cell, and a random (non-zero) h0 of the cell's state size.</summary>
    private static (float[] H0, float[] Projections) Draw<TCell>(TCell cell, Random rnd, int steps)
        where TCell : IRecurrentCell<float>
    {
        float[] x = Numbers.As<float>(Numbers.Uniform(rnd, steps * cell.InputSize, 2.0));
        var projections = new float[steps * cell.ProjectionSize];
        cell.ProjectInputs(x, projections, steps);
        return (Numbers.As<float>(Numbers.Uniform(rnd, cell.StateSize)), projections);
    }

    private static void AssertSame(float[] expected, float[] actual, string what)
    {
        for (int i = 0; i < expected.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
            {
                Assert.Fail($"{what}: value {i} is {actual[i]:R}, the plain loop's is {expected[i]:R}");
            }
        }
    }

    /// <summary>Both widths where the CPU runs 512-bit vectors; 256 bits alone where it does not.</summary>
    public static TheoryData<int, int> Widths() => Vector512.IsHardwareAccelerated ? new() { { 512, 16 }, { 256, 8 } } : new() { { 256, 8 } };

    [Theory]
    [MemberData(nameof(Widths))]
    public void Fused_GRU_and_LSTM_equal_the_plain_loop_bit_for_bit(int width, int lanes) => Seeded.Run(rnd =>
    {
        // 1, 2, 3 and 5 vectors of lanes: one two-vector block, a block and a single vector, two blocks and a single; at 512
        // bits, 4, 5 and 6 vectors also walk the blocks backward on odd steps (FusedLoop.Zigzag: LSTM n = 64, GRU n = 80, 96).
        int[] sizes = [1, 2, 3, 4, 5, 6];
        if (width == 512)
        {
            Assert.Contains(sizes, v => FusedLoop.Zigzag(v * lanes, 3, lanes));
            Assert.Contains(sizes, v => FusedLoop.Zigzag(v * lanes, 4, lanes));
        }

        foreach (int vectors in sizes)
        {
            int n = vectors * lanes, d = rnd.Next(1, 40), steps = rnd.Next(20, 60);
            double scale = 0.5 + 2 * rnd.NextDouble();          // up to 2.5× PyTorch's scale: saturating gates too
            var gru = GruCell<float>.Random(d, n, rnd, scale);
            (float[] h0, float[] p) = Draw(gru, rnd, steps);
            var fused = new float[steps * n];
            bool ran = width == 512
                ? FusedLoop.Gru<Simd512, Vector512<float>>(gru.Packed, h0, p, fused, steps, out bool finite)
                : FusedLoop.Gru<Simd256, Vector256<float>>(gru.Packed, h0, p, fused, steps, out finite);
            Assert.True(ran, $"GRU n={n} at {width} bits did not run");
            Assert.True(finite, $"GRU n={n} at {width} bits: finite states reported as not finite");
            AssertSame(PlainLoop(gru, h0, p, steps), fused, $"GRU {width}-bit n={n} d={d} scale={scale:F2}");

            var lstm = LstmCell<float>.Random(d, n, rnd, scale);
            (h0, p) = Draw(lstm, rnd, steps);
            fused = new float[steps * 2 * n];
            ran = width == 512
                ? FusedLoop.Lstm<Simd512, Vector512<float>>(lstm.Packed, h0, p, fused, steps, out finite)
                : FusedLoop.Lstm<Simd256, Vector256<float>>(lstm.Packed, h0, p, fused, steps, out finite);
            Assert.True(ran, $"LSTM n={n} at {width} bits did not run");
            Assert.True(finite, $"LSTM n={n} at {width} bits: finite states reported as not finite");
            AssertSame(PlainLoop(lstm, h0, p, steps), fused, $"LSTM {width}-bit n={n} d={d} scale={scale:F2}");
        }
    });

    [Theory]
    [MemberData(nameof(Widths))]
    public void Fused_GRU_and_LSTM_pairs_equal_the_plain_loop_of_each_sequence_bit_for_bit(int width, int lanes) => Seeded.Run(rnd =>
    {
        foreach (int vectors in new[] { 1, 2, 3, 5 })
        {
            int n = vectors * lanes, d = rnd.Next(1, 40), steps = rnd.Next(20, 60);
            var gru = GruCell<float>.Random(d, n, rnd, 0.5 + 2 * rnd.NextDouble());
            (float[] h0a, float[] pa) = Draw(gru, rnd, steps);
            (float[] h0b, float[] pb) = Draw(gru, rnd, steps);
            float[] sa = new float[steps * n], sb = new float[steps * n];
            var a = new FusedLoop.Lanes(h0a, pa, sa);
            var b = new FusedLoop.Lanes(h0b, pb, sb);
            bool finiteA, finiteB;
            Assert.True(width == 512
                ? FusedLoop.GruPair<Simd512, Vector512<float>>(gru.Packed, a, b, steps, out finiteA, out finiteB)
                : FusedLoop.GruPair<Simd256, Vector256<float>>(gru.Packed, a, b, steps, out finiteA, out finiteB));
            Assert.True(finiteA && finiteB, $"GRU pair {width}-bit n={n}: finite states reported as not finite");
            AssertSame(PlainLoop(gru, h0a, pa, steps), sa, $"GRU pair A {width}-bit n={n}");
            AssertSame(PlainLoop(gru, h0b, pb, steps), sb, $"GRU pair B {width}-bit n={n}");

            var lstm = LstmCell<float>.Random(d, n, rnd, 0.5 + 2 * rnd.NextDouble());
            (h0a, pa) = Draw(lstm, rnd, steps);
            (h0b, pb) = Draw(lstm, rnd, steps);
            (sa, sb) = (new float[steps * 2 * n], new float[steps * 2 * n]);
            a = new FusedLoop.Lanes(h0a, pa, sa);
            b = new FusedLoop.Lanes(h0b, pb, sb);
            Assert.True(width == 512
                ? FusedLoop.LstmPair<Simd512, Vector512<float>>(lstm.Packed, a, b, steps, out finiteA, out finiteB)
                : FusedLoop.LstmPair<Simd256, Vector256<float>>(lstm.Packed, a, b, steps, out finiteA, out finiteB));
            Assert.True(finiteA && finiteB, $"LSTM pair {width}-bit n={n}: finite states reported as not finite");
            AssertSame(PlainLoop(lstm, h0a, pa, steps), sa, $"LSTM pair A {width}-bit n={n}");
            AssertSame(PlainLoop(lstm, h0b, pb, steps), sb, $"LSTM pair B {width}-bit n={n}");
        }
    });

    /// <summary>
    /// Quads (four sequences stepped together, one lane vector of a block at a time) at both widths, over one to six
    /// vectors of lanes (single and two-vector blocks, an odd block last): every sequence equals its own plain loop, bit
    /// for bit, and is reported finite.
    /// </summary>
    [Theory]
    [MemberData(nameof(Widths))]
    public void Fused_GRU_and_LSTM_quads_equal_the_plain_loop_of_each_sequence_bit_for_bit(int width, int lanes) => Seeded.Run(rnd =>
    {
        Assert.False(FusedLoop.HasQuad<GruCell<float>, float>(GruCell<float>.Random(2, 32, rnd)));    // W_hh fits L1: pairs
        Assert.Equal(Vector512.IsHardwareAccelerated, FusedLoop.HasQuad<GruCell<float>, float>(GruCell<float>.Random(2, 64, rnd)));
        foreach (int vectors in new[] { 1, 2, 3, 4, 5, 6 })
        {
            int n = vectors * lanes, d = rnd.Next(1, 40), steps = rnd.Next(20, 60);
            CheckQuad(GruCell<float>.Random(d, n, rnd, 0.5 + 2 * rnd.NextDouble()), width, steps, rnd);
            CheckQuad(LstmCell<float>.Random(d, n, rnd, 0.5 + 2 * rnd.NextDouble()), width, steps, rnd);
        }
    });

    private static void CheckQuad<TCell>(TCell cell, int width, int steps, Random rnd)
        where TCell : IRecurrentCell<float>
    {
        bool lstm = cell is LstmCell<float>;
        CellWeights<float> w = lstm ? ((LstmCell<float>)(object)cell).Packed : ((GruCell<float>)(object)cell).Packed;
        var h0 = new float[4][];
        var p = new float[4][];
        var states = new float[4][];
        for (int i = 0; i < 4; i++)
        {
            (h0[i], p[i]) = Draw(cell, rnd, steps);
            states[i] = new float[steps * cell.StateSize];
        }

        FusedLoop.Lanes L(int i) => new(h0[i], p[i], states[i]);
        Span<bool> finite = stackalloc bool[4];
        bool ran = (width, lstm) switch
        {
            (512, true) => FusedLoop.LstmQuad<Simd512, Vector512<float>>(w, L(0), L(1), L(2), L(3), steps, finite),
            (512, false) => FusedLoop.GruQuad<Simd512, Vector512<float>>(w, L(0), L(1), L(2), L(3), steps, finite),
            (_, true) => FusedLoop.LstmQuad<Simd256, Vector256<float>>(w, L(0), L(1), L(2), L(3), steps, finite),
            _ => FusedLoop.GruQuad<Simd256, Vector256<float>>(w, L(0), L(1), L(2), L(3), steps, finite),
        };
        string label = $"{typeof(TCell).Name} quad {width}-bit n={cell.OutputSize}";
        Assert.True(ran, $"{label} did not run");
        for (int i = 0; i < 4; i++)
        {
            AssertSame(PlainLoop(cell, h0[i], p[i], steps), states[i], $"{label}, sequence {i}");
            Assert.True(finite[i], $"{label}, sequence {i}: finite states reported as not finite");
        }
    }

    /// <summary>
    /// A batch through Method = Sequential (quads of sequences stepped together where the CPU has AVX-512 and W_hh does not
    /// fit L1, else pairs, an odd one alone) on one core and two: every sequence equals its own plain loop, bit for bit.
    /// With quads, five sequences make a quad and a single on one core and pairs on two; nine make two quads and a single
    /// on two cores.
    /// </summary>
    [Fact]
    public void Batched_pairs_equal_each_sequences_plain_loop() => Seeded.Run(rnd =>
    {
        const int N = 48;                                             // 512-bit: a two-vector block and a single
        CheckBatchedPairs(GruCell<float>.Random(6, N, rnd), rnd);
        CheckBatchedPairs(LstmCell<float>.Random(6, N, rnd), rnd);
        var wideGru = GruCell<float>.Random(6, 80, rnd);               // quads (W_hh past L1), a two-vector block and a single
        var wideLstm = LstmCell<float>.Random(6, 64, rnd);
        Assert.Equal(Vector512.IsHardwareAccelerated, FusedLoop.HasQuad<GruCell<float>, float>(wideGru));
        Assert.Equal(Vector512.IsHardwareAccelerated, FusedLoop.HasQuad<LstmCell<float>, float>(wideLstm));
        CheckBatchedPairs(wideGru, rnd);
        CheckBatchedPairs(wideLstm, rnd);
    });

    private static void CheckBatchedPairs<TCell>(TCell cell, Random rnd)
        where TCell : IRecurrentCell<float>
    {
        CheckBatchedPairs(cell, rnd, 5);
        CheckBatchedPairs(cell, rnd, 9);
    }

    private static void CheckBatchedPairs<TCell>(TCell cell, Random rnd, int B)
        where TCell : IRecurrentCell<float>
    {
        const int D = 6;
        int chunk = Solver.ChunkSteps(cell.ProjectionSize), length = 3 * chunk + 11, s = cell.StateSize;
        float[] x = Numbers.As<float>(Numbers.Uniform(rnd, B * length * D, 2.0));
        float[] h0 = Numbers.As<float>(Numbers.Uniform(rnd, B * s));
        foreach (int cores in new[] { 1, 2 })
        {
            var options = new SolveOptions { Method = SolveMethod.Sequential, MaxDegreeOfParallelism = cores };
            SolveResult<float> result = Deer.Solve(cell, x.AsSpan(), B, length, options, h0);
            Assert.Equal(SolveStatus.Converged, result.Status);
            for (int q = 0; q < B; q++)
            {
                var projections = new float[length * cell.ProjectionSize];
                cell.ProjectInputs(x.AsSpan(q * length * D, length * D), projections, length);
                AssertSame(PlainLoop(cell, h0.AsSpan(q * s, s).ToArray(), projections, length), result.States.AsSpan(q * length * s, length * s).ToArray(),
                    $"{typeof(TCell).Name} B={B} sequence {q} cores={cores}");
            }
        }
    }

    /// <summary>
    /// GRU and LSTM states stay finite for finite inputs and weights (which every solve checks), so a pair can only fail
    /// on inputs the validation would refuse: here the pair's solver is called directly with a NaN in A's inputs. A must
    /// read NaN from there on and be reported at that step; B must go on alone to its own loop's states.
    /// </summary>
    [Fact]
    public void A_pair_keeps_a_failure_to_its_own_sequence() => Seeded.Run(rnd =>
    {
        const int D = 4, N = 8;
        var cell = GruCell<float>.Random(D, N, rnd);
        int chunk = Solver.ChunkSteps(cell.ProjectionSize), length = 3 * chunk + 5, bad = chunk + 3;
        float[] xa = Numbers.As<float>(Numbers.Uniform(rnd, length * D)), xb = Numbers.As<float>(Numbers.Uniform(rnd, length * D));
        xa[bad * D] = float.NaN;
        float[] sa = new float[length * N], sb = new float[length * N];
        using var wa = new SequenceWorkspace<float>();
        using var wb = new SequenceWorkspace<float>();
        (SequenceOutcome a, SequenceOutcome b) = Solver.SolveSequentialPair(cell, xa, xb, default, default, sa, sb, wa, wb, checkInputs: false, CancellationToken.None);
        Assert.Equal(SolveStatus.Diverged, a.Status);
        Assert.Equal(bad, a.FailedAt);
        Assert.All(sa[(bad * N)..], v => Assert.True(float.IsNaN(v)));
        Assert.Equal(SolveStatus.Converged, b.Status);
        var pb = new float[length * cell.ProjectionSize];
        cell.ProjectInputs(xb, pb, length);
        AssertSame(PlainLoop(cell, new float[N], pb, length), sb, "the partner of a failed sequence");
    });

    /// <summary>
    /// A quad's failure stays with its sequence: a NaN in one of four sequences' inputs (the solver called directly, as the
    /// validation would refuse it) is reported at its step with NaN from there on, and the other three go on alone to
    /// their own loops' states. GRU and LSTM, the NaN in a random sequence of the four.
    /// </summary>
    [Fact]
    public void A_quad_keeps_a_failure_to_its_own_sequence() => Seeded.Run(rnd =>
    {
        if (!Vector512.IsHardwareAccelerated)
        {
            return;                                                  // no quads without AVX-512 (FusedLoop.HasQuad)
        }

        CheckQuadFailure(GruCell<float>.Random(4, 64, rnd), rnd);    // quads only where W_hh does not fit L1
        CheckQuadFailure(LstmCell<float>.Random(4, 96, rnd), rnd);
    });

    private static void CheckQuadFailure<TCell>(TCell cell, Random rnd)
        where TCell : IRecurrentCell<float>
    {
        const int D = 4;
        int s = cell.StateSize, chunk = Solver.ChunkSteps(cell.ProjectionSize), length = 3 * chunk + 5, bad = rnd.Next(length), victim = rnd.Next(4);
        float[] x = Numbers.As<float>(Numbers.Uniform(rnd, 4 * length * D));
        x[(victim * length + bad) * D + rnd.Next(D)] = float.NaN;
        var states = new float[4 * length * s];
        var piece = new Piece([0, 1, 2, 3], 0, length, length, 0);
        SequenceWorkspace<float>[] ws = [new(), new(), new(), new()];
        var outcomes = new SequenceOutcome[4];
        Solver.SolveSequentialQuad(cell, piece, 0, x, default, states, ws, outcomes, checkInputs: false, CancellationToken.None);
        foreach (SequenceWorkspace<float> w in ws)
        {
            w.Dispose();
        }

        string label = $"{typeof(TCell).Name} quad, NaN in sequence {victim} at step {bad}";
        for (int i = 0; i < 4; i++)
        {
            float[] mine = states[(i * length * s)..((i + 1) * length * s)];
            if (i == victim)
            {
                Assert.True(outcomes[i].Status == SolveStatus.Diverged && outcomes[i].FailedAt == bad, $"{label}: reported {outcomes[i].Status} at {outcomes[i].FailedAt}");
                Assert.All(mine[(bad * s)..], v => Assert.True(float.IsNaN(v), $"{label}: a state after the NaN is not NaN"));
                continue;
            }

            Assert.True(outcomes[i].Status == SolveStatus.Converged, $"{label}: sequence {i} {outcomes[i].Status}");
            var projections = new float[length * cell.ProjectionSize];
            cell.ProjectInputs(x.AsSpan(i * length * D, length * D), projections, length);
            AssertSame(PlainLoop(cell, new float[s], projections, length), mine, $"{label}: sequence {i}");
        }
    }

    /// <summary>
    /// The loops' own finiteness check (FusedLoop.Check), which spares the solver a scan of every chunk: a NaN put in one
    /// projection at a random step and lane, or an infinite initial state (h for the GRU, c for the LSTM, whose gates would
    /// otherwise bound the next state), must make the loop report a value that is not finite, at every width and block
    /// layout; in a pair, only for the sequence that has it. The states themselves are what the scan then finds.
    /// </summary>
    [Theory]
    [MemberData(nameof(Widths))]
    public void Fused_loops_report_a_value_that_is_not_finite(int width, int lanes) => Seeded.Run(rnd =>
    {
        foreach (int vectors in new[] { 1, 2, 3, 5, 6 })
        {
            int n = vectors * lanes, d = rnd.Next(1, 20), steps = rnd.Next(8, 30), at = rnd.Next(steps);
            foreach (bool lstm in new[] { false, true })
            {
                int gates = lstm ? 4 : 3, s = lstm ? 2 * n : n;
                IRecurrentCell<float> cell = lstm ? LstmCell<float>.Random(d, n, rnd) : GruCell<float>.Random(d, n, rnd);
                CellWeights<float> w = lstm ? ((LstmCell<float>)cell).Packed : ((GruCell<float>)cell).Packed;
                foreach (bool infiniteStart in new[] { false, true })
                {
                    (float[] h0, float[] p) = Draw(cell, rnd, steps);
                    (float[] h0b, float[] pb) = Draw(cell, rnd, steps);
                    string what;
                    if (infiniteStart)
                    {
                        int lane = rnd.Next(n);
                        h0[(lstm ? n : 0) + lane] = rnd.Next(2) == 0 ? float.PositiveInfinity : float.NegativeInfinity;
                        what = $"{(lstm ? "c0" : "h0")}[{lane}] = {h0[(lstm ? n : 0) + lane]}";
                    }
                    else
                    {
                        int row = rnd.Next(gates * n);
                        p[at * gates * n + row] = float.NaN;
                        what = $"NaN projection at step {at}, row {row}";
                    }

                    float[] states = new float[steps * s], statesB = new float[steps * s];
                    bool ran, finite, finiteA, finiteB;
                    var a = new FusedLoop.Lanes(h0, p, new float[steps * s]);
                    var b = new FusedLoop.Lanes(h0b, pb, statesB);
                    if (width == 512)
                    {
                        ran = lstm ? FusedLoop.Lstm<Simd512, Vector512<float>>(w, h0, p, states, steps, out finite) : FusedLoop.Gru<Simd512, Vector512<float>>(w, h0, p, states, steps, out finite);
                        ran &= lstm ? FusedLoop.LstmPair<Simd512, Vector512<float>>(w, a, b, steps, out finiteA, out finiteB) : FusedLoop.GruPair<Simd512, Vector512<float>>(w, a, b, steps, out finiteA, out finiteB);
                    }
                    else
                    {
                        ran = lstm ? FusedLoop.Lstm<Simd256, Vector256<float>>(w, h0, p, states, steps, out finite) : FusedLoop.Gru<Simd256, Vector256<float>>(w, h0, p, states, steps, out finite);
                        ran &= lstm ? FusedLoop.LstmPair<Simd256, Vector256<float>>(w, a, b, steps, out finiteA, out finiteB) : FusedLoop.GruPair<Simd256, Vector256<float>>(w, a, b, steps, out finiteA, out finiteB);
                    }

                    string label = $"{(lstm ? "LSTM" : "GRU")} {width}-bit n={n}, {what}";
                    Assert.True(ran, label);
                    Assert.Contains(states, v => !float.IsFinite(v));        // the premise: the states do hold such a value
                    Assert.False(finite, $"{label}: the loop reported every state finite");
                    Assert.False(finiteA, $"{label}: the pair reported sequence A finite");
                    Assert.True(finiteB, $"{label}: the pair reported its finite partner as not finite");
                }
            }
        }
    });

    /// <summary>
    /// The single sequence's loop, on one core and two, GRU and LSTM at every fused width: a NaN in the inputs (which the
    /// validation would refuse, so the solver is called directly) must be reported at its step, with NaN from there on,
    /// whether the fused loop's own check or a scan finds it.
    /// </summary>
    [Fact]
    public void The_loop_reports_the_step_where_a_state_stops_being_finite() => Seeded.Run(rnd =>
    {
        const int D = 4;
        foreach (int n in Vector512.IsHardwareAccelerated ? new[] { 8, 16, 48 } : new[] { 8, 24 })
        {
            Assert.NotEqual(0, FusedLoop.Width(n));
            foreach (int cores in new[] { 1, 2 })
            {
                CheckReportedFailure(GruCell<float>.Random(D, n, rnd), rnd, cores);
                CheckReportedFailure(LstmCell<float>.Random(D, n, rnd), rnd, cores);
            }
        }
    });

    /// <summary>TCell is the cell's own type, as in a solve, so that the fused loop (chosen by type) runs.</summary>
    private static void CheckReportedFailure<TCell>(TCell cell, Random rnd, int cores)
        where TCell : IRecurrentCell<float>
    {
        const int D = 4;
        int chunk = Solver.ChunkSteps(cell.ProjectionSize), length = 3 * chunk + 5, bad = rnd.Next(length), s = cell.StateSize;
        float[] x = Numbers.As<float>(Numbers.Uniform(rnd, length * D));
        x[bad * D + rnd.Next(D)] = float.NaN;
        float[] states = new float[length * s];
        using var ws = new SequenceWorkspace<float>();
        ws.Ensure(Solver.SequentialProjected(length, cell.ProjectionSize), s, cell.ProjectionSize, cell.WorkspaceSize, 0, 1, iterative: false);
        ws.InitialState.AsSpan(0, s).Clear();
        SequenceOutcome outcome = Solver.SolveSequential(cell, ws, x, length, states, cores, checkInputs: false, CancellationToken.None);
        string label = $"{typeof(TCell).Name} n={cell.OutputSize} cores={cores}, NaN input at step {bad}";
        Assert.True(outcome.Status == SolveStatus.Diverged, $"{label}: {outcome.Status}");
        Assert.True(outcome.FailedAt == bad, $"{label}: reported at step {outcome.FailedAt}");
        Assert.All(states[..(bad * s)], v => Assert.True(float.IsFinite(v), $"{label}: a state before the NaN is not finite"));
        Assert.All(states[(bad * s)..], v => Assert.True(float.IsNaN(v), $"{label}: a state after the NaN is not NaN"));
    }

    /// <summary>
    /// Deer.Solve with Method = Sequential, whose result does not scan again the states the loop checked as it stored them
    /// (SequenceOutcome.Checked): with finite inputs, weights and initial state, a state that becomes NaN must still give
    /// Diverged at its step, NaN from there on, and finite states elsewhere. W_hh = 1e38 everywhere drives every gate's
    /// W_hh h to +∞ (h stays 1: the gates saturate), and at one step of one sequence an input of 1e30 against a weight of
    /// −1e10 drives the candidate gate's projection to −∞: tanh(−∞ + ∞) is NaN. Batches of 1, 2, 5 and 8 (one loop, pairs,
    /// quads where W_hh passes L1: n = 64) on one core and two, GRU and LSTM, each sequence of the batch in turn.
    /// </summary>
    [Fact]
    public void A_sequential_solve_reports_a_state_that_becomes_nan() => Seeded.Run(rnd =>
    {
        const int D = 3;
        foreach (int n in Vector512.IsHardwareAccelerated ? new[] { 16, 64 } : new[] { 8, 64 })
        {
            Assert.NotEqual(0, FusedLoop.Width(n));
            var gru = new GruCell<float>(Saturating(3, n, D, rnd));
            var lstm = new LstmCell<float>(Saturating(4, n, D, rnd));
            foreach (int batch in new[] { 1, 2, 5, 8 })
            {
                for (int victim = 0; victim < batch; victim++)
                {
                    foreach (int cores in new[] { 1, 2 })
                    {
                        CheckNanReported(gru, rnd, batch, victim, cores);
                        CheckNanReported(lstm, rnd, batch, victim, cores);
                    }
                }
            }
        }
    });

    /// <summary>
    /// The loop checks the inputs as it reads them, a chunk before each projection, where the driver scanned them all up
    /// front (SolverSettings.EngineChecksInputs): a NaN or ±∞ anywhere must still throw before any result, with the message
    /// the scan up front gives (Method = Deer keeps that scan), naming the first bad value in [b, t, i] order even when a
    /// later sequence's comes earlier in time. Every loop path: fused singles, pairs and quads (float32 GRU and LSTM at
    /// n = 16 and 64), the generic loop (a tanh RNN, a float64 GRU), on one core and two, batches of 1, 2, 5 and 8, three
    /// chunks of steps, Sequential and Auto.
    /// </summary>
    [Fact]
    public void A_non_finite_input_is_refused_as_the_scan_up_front_refuses_it() => Seeded.Run(rnd =>
    {
        foreach (int n in new[] { 16, 64 })
        {
            CheckInputRefused<GruCell<float>, float>(GruCell<float>.Random(3, n, rnd), rnd);
            CheckInputRefused<LstmCell<float>, float>(LstmCell<float>.Random(3, n, rnd), rnd);
        }

        CheckInputRefused<TanhRnnCell<float>, float>(TanhRnnCell<float>.Random(3, 5, rnd), rnd);
        CheckInputRefused<GruCell<double>, double>(GruCell<double>.Random(3, 8, rnd), rnd);
    });

    private static void CheckInputRefused<TCell, T>(TCell cell, Random rnd)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int d = cell.InputSize, length = (2 * Solver.ChunkSteps(cell.ProjectionSize)) + 37;
        T[] bad = [T.NaN, T.PositiveInfinity, T.NegativeInfinity];
        foreach (int batch in new[] { 1, 2, 5, 8 })
        {
            T[] x = [.. Enumerable.Range(0, batch * length * d).Select(_ => T.CreateTruncating(rnd.NextDouble() - 0.5))];
            int b0 = rnd.Next(batch), t0 = rnd.Next(length);
            // ±∞ first: through a GRU or LSTM it saturates the gates and leaves the states finite, so only the input check finds it.
            x[(((b0 * length) + t0) * d) + rnd.Next(d)] = bad[1 + rnd.Next(2)];
            if (b0 < batch - 1)
            {
                // A second bad value, later in [b, t, i] order but no later in time: the message still names the first.
                x[(((rnd.Next(b0 + 1, batch) * length) + rnd.Next(t0 + 1)) * d) + rnd.Next(d)] = bad[rnd.Next(3)];
            }

            string expected = Assert.Throws<ArgumentException>(() => Deer.Solve(cell, x, batch, length, new SolveOptions { Method = SolveMethod.Deer })).Message;
            Assert.Contains($"[{b0}, {t0}, ", expected, StringComparison.Ordinal);
            foreach (SolveMethod method in new[] { SolveMethod.Sequential, SolveMethod.Auto })
            {
                foreach (int cores in new[] { 1, 2 })
                {
                    var options = new SolveOptions { Method = method, MaxDegreeOfParallelism = cores };
                    ArgumentException e = Assert.Throws<ArgumentException>(() => Deer.Solve(cell, x, batch, length, options));
                    Assert.True(e.ParamName == "inputs" && e.Message == expected,
                        $"{typeof(TCell).Name} n={cell.StateSize} B={batch} {method} cores={cores}: '{e.Message}', expected '{expected}'");
                }
            }
        }
    }

    /// <summary>
    /// W_hh = 1e38; W_ih random, except that input feature 0 enters only the candidate gate (gate 2: a GRU's n, an
    /// LSTM's g), with weight −1e10.
    /// </summary>
    private static RecurrentWeights<float> Saturating(int gates, int n, int d, Random rnd)
    {
        RecurrentWeights<float> w = RecurrentWeights<float>.Random(gates, n, d, rnd);
        float[] wih = (float[])w.WeightIH.Clone();
        for (int row = 0; row < gates * n; row++)
        {
            wih[row * d] = row / n == 2 ? -1e10f : 0f;
        }

        return new RecurrentWeights<float>(gates, n, d, wih, Enumerable.Repeat(1e38f, gates * n * n).ToArray(), w.BiasIH, w.BiasHH);
    }

    private static void CheckNanReported<TCell>(TCell cell, Random rnd, int batch, int victim, int cores)
        where TCell : IRecurrentCell<float>
    {
        int d = cell.InputSize, s = cell.StateSize, n = cell.OutputSize, length = Solver.ChunkSteps(cell.ProjectionSize) + 37;
        int bad = rnd.Next(length);
        float[] x = Numbers.As<float>(Numbers.Uniform(rnd, batch * length * d));
        for (int i = 0; i < batch * length; i++)
        {
            x[i * d] = 0f;
        }

        x[((victim * length) + bad) * d] = 1e30f;
        var h0 = new float[batch * s];
        for (int b = 0; b < batch; b++)
        {
            h0.AsSpan(b * s, n).Fill(1f);                           // h = 1, so W_hh h = +∞ in every gate
            h0.AsSpan((b * s) + n, s - n).Fill(100f);               // an LSTM's c: tanh(c) = 1 while c grows by one a step
        }

        var options = new SolveOptions { Method = SolveMethod.Sequential, MaxDegreeOfParallelism = cores };
        SolveResult<float> result = Deer.Solve(cell, x, batch, length, options, h0);
        string label = $"{typeof(TCell).Name} n={n} B={batch} cores={cores}, NaN in sequence {victim} from step {bad}";
        Assert.True(result.Status == SolveStatus.Diverged, $"{label}: {result.Status}: {result.Message}");
        Assert.Contains($"step {bad}", result.Message, StringComparison.Ordinal);
        for (int b = 0; b < batch; b++)
        {
            ReadOnlySpan<float> mine = result.States.AsSpan(b * length * s, length * s);
            int finiteUpTo = b == victim ? bad * s : mine.Length;
            Assert.True(NonFinite.IndexOf(mine[..finiteUpTo]) < 0, $"{label}: sequence {b} is not finite before step {finiteUpTo / s}");
            foreach (float v in mine[finiteUpTo..])
            {
                Assert.True(float.IsNaN(v), $"{label}: sequence {b} is not NaN after step {bad}");
            }
        }
    }

    [Fact]
    public void Fused_loop_declines_what_it_does_not_cover()
    {
        var rnd = new Random(5);
        var odd = GruCell<float>.Random(3, 12, rnd);       // 12 lanes: no whole 256-bit vectors (12 % 8 != 0)
        Assert.Equal(0, FusedLoop.Width(12));
        var states = new float[4 * 12];
        Assert.False(FusedLoop.TryRun(odd, new float[12], new float[4 * 36], states, 4, out _));
        Assert.All(states, v => Assert.Equal(0f, v));         // nothing written
        Assert.False(FusedLoop.TryRun(GruCell<double>.Random(3, 16, rnd), new double[16], new double[4 * 48], new double[4 * 16], 4, out _));
        Assert.False(FusedLoop.TryRun(TanhRnnCell<float>.Random(3, 16, rnd), new float[16], new float[4 * 16], new float[4 * 16], 4, out _));
    }

    /// <summary>
    /// Method = Sequential through Deer.Solve, on one core and on two (the projections then come from the helper, in a
    /// ring of slots reused across chunks), over lengths around the chunk size and past the ring, for a fused cell and for
    /// cells the fused loop declines: all equal the plain loop bit for bit.
    /// </summary>
    [Fact]
    public void Pipelined_sequential_solve_equals_the_plain_loop() => Seeded.Run(rnd =>
    {
        CheckPipelined("GRU n=32", GruCell<float>.Random(7, 32, rnd), rnd);
        CheckPipelined("LSTM n=16", LstmCell<float>.Random(5, 16, rnd), rnd);
        CheckPipelined("GRU n=12", GruCell<float>.Random(9, 12, rnd), rnd);
        CheckPipelined("tanh RNN n=20", TanhRnnCell<float>.Random(6, 20, rnd), rnd);
    });

    private static void CheckPipelined<TCell>(string name, TCell cell, Random rnd)
        where TCell : IRecurrentCell<float>
    {
        int chunk = Solver.ChunkSteps(cell.ProjectionSize);
        foreach (int length in new[] { 1, chunk - 1, chunk, chunk + 1, 2 * chunk + 3, (Solver.PipelineSlots + 2) * chunk + 5 })
        {
            float[] x = Numbers.As<float>(Numbers.Uniform(rnd, length * cell.InputSize, 2.0));
            float[] h0 = Numbers.As<float>(Numbers.Uniform(rnd, cell.StateSize));
            var projections = new float[length * cell.ProjectionSize];
            cell.ProjectInputs(x, projections, length);
            float[] expected = PlainLoop(cell, h0, projections, length);
            foreach (int cores in new[] { 1, 2 })
            {
                var options = new SolveOptions { Method = SolveMethod.Sequential, MaxDegreeOfParallelism = cores };
                SolveResult<float> result = Deer.Solve(cell, x.AsSpan(), 1, length, options, h0);
                Assert.Equal(SolveStatus.Converged, result.Status);
                AssertSame(expected, result.States, $"{name} T={length} cores={cores}");
            }
        }
    }
}
