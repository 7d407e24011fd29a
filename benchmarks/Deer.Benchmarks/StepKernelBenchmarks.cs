using BenchmarkDotNet.Attributes;
using DeerSharp.Cells;
using DeerSharp.Cpu;

namespace DeerSharp.Benchmarks;

/// <summary>
/// The sequential loop's per-step kernel, float32, B = 1, the projections computed beforehand: the plain loop of
/// <see cref="IRecurrentCell{T}.Evaluate"/> (W_hh h by <c>Kernels.MatVec</c>, then the gates; the baseline) against the
/// fused loop of Cpu/FusedLoop (W_hh h and the gates in one pass, 512-bit where the CPU runs it), which gives the same
/// states bit for bit (FusedLoopTests). 4,096 steps per call: divide by it for the time per step.
/// </summary>
public class StepKernelBenchmarks
{
    private const int Steps = 4096;
    private GruCell<float> _gru;
    private LstmCell<float> _lstm;
    private float[] _h0 = [], _gruProjections = [], _lstmProjections = [], _states = [], _scratch = [];

    [Params(8, 32, 128)]
    public int N { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(N);
        _gru = GruCell<float>.Random(N, N, random);
        _lstm = LstmCell<float>.Random(N, N, random);
        float[] x = [.. Enumerable.Range(0, Steps * N).Select(_ => (float)((random.NextDouble() * 2) - 1))];
        _gruProjections = new float[Steps * _gru.ProjectionSize];
        _lstmProjections = new float[Steps * _lstm.ProjectionSize];
        _gru.ProjectInputs(x, _gruProjections, Steps);
        _lstm.ProjectInputs(x, _lstmProjections, Steps);
        _h0 = new float[2 * N];
        _states = new float[Steps * 2 * N];
        _scratch = new float[Math.Max(_gru.WorkspaceSize, _lstm.WorkspaceSize)];
    }

    [Benchmark(Baseline = true)]
    public void GruPlain() => Plain(_gru, _gruProjections);

    [Benchmark]
    public bool GruFused() => FusedLoop.TryRun(_gru, _h0.AsSpan(0, N), _gruProjections, _states, Steps, out _);

    [Benchmark]
    public void LstmPlain() => Plain(_lstm, _lstmProjections);

    [Benchmark]
    public bool LstmFused() => FusedLoop.TryRun(_lstm, _h0, _lstmProjections, _states, Steps, out _);

    private void Plain<TCell>(TCell cell, float[] projections)
        where TCell : IRecurrentCell<float>
    {
        int s = cell.StateSize, p = cell.ProjectionSize;
        ReadOnlySpan<float> previous = _h0.AsSpan(0, s);
        for (int t = 0; t < Steps; t++)
        {
            Span<float> current = _states.AsSpan(t * s, s);
            cell.Evaluate(previous, projections.AsSpan(t * p, p), current, _scratch);
            previous = current;
        }
    }
}
