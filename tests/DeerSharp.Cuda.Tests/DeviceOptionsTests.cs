using System.Numerics;
using DeerSharp.Cells;

namespace DeerSharp.Cuda.Tests;

/// <summary>
/// Issue #23's table, row by row: whatever the CPU path honours, the device path honours. Each test runs the same solve
/// on <c>Device = Cpu</c> and <c>Device = Emulated</c> (the GPU kernels on ILGPU's CPU accelerator) and asserts the same
/// behaviour: progress reports, cancellation, the initial guess, warm starts, the runaway rule, and a fallback that
/// redoes only the sequences that failed. Fresh seeds, printed on failure.
/// </summary>
public sealed class DeviceOptionsTests
{
    private const int B = 3, L = 300, D = 3, N = 8;

    public static TheoryData<ComputeDevice> Devices => new() { ComputeDevice.Cpu, ComputeDevice.Emulated };

    private static (GruCell<double> Cell, double[] X, double[] H0) Gru(int seed, int batch = B)
    {
        var random = new Random(seed);
        var cell = new GruCell<double>(RecurrentWeights<double>.Random(3, N, D, random));
        double[] x = [.. Enumerable.Range(0, batch * L * D).Select(_ => (random.NextDouble() * 4) - 2)];
        double[] h0 = [.. Enumerable.Range(0, batch * N).Select(_ => (random.NextDouble() * 2) - 1)];
        return (cell, x, h0);
    }

    /// <summary>Progress: one report per checked iterate per sequence, iterations 0..k in order, the last one the result's residual.</summary>
    [Theory]
    [MemberData(nameof(Devices))]
    public void Progress_is_reported_every_iteration_of_every_sequence(ComputeDevice device)
    {
        int seed = Random.Shared.Next();
        (GruCell<double> cell, double[] x, double[] h0) = Gru(seed);
        var reports = new List<SolveProgress>();
        var progress = new Synchronous<SolveProgress>(reports.Add);
        SolveResult<double> r = Deer.Solve(cell, x, B, L, new SolveOptions { Method = SolveMethod.QuasiDeer, Device = device, Progress = progress }, h0);
        Assert.True(r.Converged, $"seed {seed}, {device}: {r}");
        Assert.Equal(device, r.Device);
        for (int b = 0; b < B; b++)
        {
            SolveProgress[] mine = [.. reports.Where(p => p.Sequence == b)];
            Assert.True(mine.Length >= 2, $"seed {seed}, {device}: sequence {b} reported {mine.Length} time(s)");
            Assert.Equal(Enumerable.Range(0, mine.Length), mine.Select(p => p.Iteration));
            Assert.All(mine, p => Assert.Equal(SolveMethod.QuasiDeer, p.Method));
            Assert.True(mine[^1].Residual <= r.MaxResidual, $"seed {seed}, {device}: sequence {b}'s last report {mine[^1].Residual:G3} above the result's {r.MaxResidual:G3}");
        }

        Assert.Equal(r.MaxResidual, reports.GroupBy(p => p.Sequence).Max(g => g.Last().Residual));
    }

    /// <summary>An already cancelled token throws before any work; one cancelled from a progress report stops the iteration.</summary>
    [Theory]
    [MemberData(nameof(Devices))]
    public void Cancellation_stops_the_solve(ComputeDevice device)
    {
        int seed = Random.Shared.Next();
        (GruCell<double> cell, double[] x, double[] h0) = Gru(seed);
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        var options = new SolveOptions { Method = SolveMethod.QuasiDeer, Device = device, CancellationToken = cancelled.Token };
        Assert.ThrowsAny<OperationCanceledException>(() => Deer.Solve(cell, x, B, L, options, h0));

        using var later = new CancellationTokenSource();
        int seen = 0;
        var progress = new Synchronous<SolveProgress>(p =>
        {
            if (++seen == 2)
            {
                later.Cancel();
            }
        });
        Assert.ThrowsAny<OperationCanceledException>(() => Deer.Solve(cell, x, B, L, options with { CancellationToken = later.Token, Progress = progress }, h0));
        Assert.True(seen < 2 * B * 20, $"seed {seed}, {device}: {seen} reports after the cancellation");
    }

    /// <summary>InitialGuess.BroadcastInitialState starts from h0 at every step: the first residual is the CPU's, and not the zero guess's.</summary>
    [Theory]
    [MemberData(nameof(Devices))]
    public void The_initial_guess_is_the_one_asked_for(ComputeDevice device)
    {
        int seed = Random.Shared.Next();
        (GruCell<double> cell, double[] x, double[] h0) = Gru(seed);
        var options = new SolveOptions { Method = SolveMethod.QuasiDeer, Device = device, InitialGuess = InitialGuess.BroadcastInitialState };
        SolveResult<double> broadcast = Deer.Solve(cell, x, B, L, options, h0);
        SolveResult<double> reference = Deer.Solve(cell, x, B, L, options with { Device = ComputeDevice.Cpu }, h0);
        SolveResult<double> zeros = Deer.Solve(cell, x, B, L, options with { InitialGuess = InitialGuess.Zeros }, h0);
        Assert.True(broadcast.Converged, $"seed {seed}, {device}: {broadcast}");
        Assert.True(Math.Abs(broadcast.ResidualHistory[0] - reference.ResidualHistory[0]) <= 1e-12 * reference.ResidualHistory[0],
            $"seed {seed}, {device}: first residual {broadcast.ResidualHistory[0]:G6}, the CPU's {reference.ResidualHistory[0]:G6}");
        Assert.NotEqual(zeros.ResidualHistory[0], broadcast.ResidualHistory[0]);
    }

    /// <summary>A warm start at the solution needs no iteration.</summary>
    [Theory]
    [MemberData(nameof(Devices))]
    public void A_warm_start_at_the_solution_needs_no_iteration(ComputeDevice device)
    {
        int seed = Random.Shared.Next();
        (GruCell<double> cell, double[] x, double[] h0) = Gru(seed);
        double[] solution = Deer.Solve(cell, x, B, L, new SolveOptions { Method = SolveMethod.Sequential }, h0).States;
        SolveResult<double> warm = Deer.Solve(cell, x, B, L, new SolveOptions { Method = SolveMethod.Deer, Device = device }, h0, solution);
        Assert.True(warm.Converged && warm.Iterations == 0, $"seed {seed}, {device}: {warm}");
    }

    /// <summary>
    /// One sequence of a batch fails (the others start at their solution): the loop redoes that one only, and
    /// FallbackSequences counts it alone.
    /// </summary>
    [Theory]
    [MemberData(nameof(Devices))]
    public void Only_the_sequences_that_failed_fall_back(ComputeDevice device)
    {
        int seed = Random.Shared.Next();
        (GruCell<double> cell, double[] x, double[] h0) = Gru(seed);
        double[] solution = Deer.Solve(cell, x, B, L, new SolveOptions { Method = SolveMethod.Sequential }, h0).States;
        double[] warm = [.. solution];
        const int Failing = 1;
        Array.Clear(warm, Failing * L * N, L * N);
        var options = new SolveOptions { Method = SolveMethod.QuasiDeer, Device = device, MaxIterations = 2, Fallback = FallbackPolicy.Sequential };
        SolveResult<double> r = Deer.Solve(cell, x, B, L, options, h0, warm);
        Assert.True(r.Converged, $"seed {seed}, {device}: {r}");
        Assert.Equal(1, r.FallbackSequences);
        Assert.Equal(SolveMethod.Sequential, r.FallbackMethod);
        Assert.Contains("1 sequence(s)", r.Message, StringComparison.Ordinal);
        double diff = r.States.Zip(solution, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(diff <= 1e-8, $"seed {seed}, {device}: states differ from the loop's by {diff:G3}");

        // Without the fallback, the same batch reports the failure, naming the sequence.
        SolveResult<double> honest = Deer.Solve(cell, x, B, L, options with { Fallback = FallbackPolicy.None }, h0, warm);
        Assert.Equal(SolveStatus.MaxIterationsReached, honest.Status);
        Assert.Contains($"(sequence {Failing})", honest.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// A residual that runs away towards overflow (Picard on h_t = 3 h_{t−1} + 1 + x_t grows by 3 per iteration) stops
    /// at the runaway line, 10^18 in float, long before float overflows, and says what grew.
    /// </summary>
    [Theory]
    [MemberData(nameof(Devices))]
    public void A_runaway_residual_stops_the_iteration(ComputeDevice device)
    {
        var cell = DeviceRecurrence.Cell<Tripling, float>(new Tripling());
        SolveResult<float> r = Deer.Solve(cell, new float[L], 1, L, new SolveOptions { Method = SolveMethod.Picard, Device = device, MaxIterations = L, Fallback = FallbackPolicy.None });
        Assert.Equal(SolveStatus.Diverged, r.Status);
        Assert.Contains("grew", r.Message, StringComparison.Ordinal);
        Assert.InRange(r.Iterations, 30, 60);
        Assert.Equal(device, r.Device);
    }

    /// <summary>h_t = 3 h_{t−1} + 1 + x_t, written for the device.</summary>
    public readonly struct Tripling : IDeviceRecurrence
    {
        public int StateSize => 1;

        public int InputSize => 1;

        public int ParameterCount => 0;

        public TNum Apply<TNum, TVector>(int unit, TVector state, TVector input, TVector parameters)
            where TNum : IFloatingPointIeee754<TNum>
            where TVector : IReadOnlyVector<TNum>, allows ref struct =>
            ((TNum.One + TNum.One + TNum.One) * state[0]) + TNum.One + input[0];
    }

    /// <summary>An IProgress that reports on the calling thread (Progress{T} posts to the thread pool, out of order).</summary>
    private sealed class Synchronous<TValue>(Action<TValue> report) : IProgress<TValue>
    {
        private readonly object _gate = new();

        public void Report(TValue value)
        {
            lock (_gate)
            {
                report(value);
            }
        }
    }
}
