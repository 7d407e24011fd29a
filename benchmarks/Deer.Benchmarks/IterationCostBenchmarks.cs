using BenchmarkDotNet.Attributes;
using DeerSharp.Cells;

namespace DeerSharp.Benchmarks;

/// <summary>
/// The cost of one quasi-DEER (and one DEER) iteration against one sequential step: a GRU, n = d = 32, T = 65,536,
/// float32. Solves capped at 2 and at 7 iterations (fallback off) differ by exactly 5 iterations, so
/// (time₇ − time₂) / 5 / T is one iteration's cost per step, free of the projection and the final check that both share.
/// </summary>
[MemoryDiagnoser]
public class IterationCostBenchmarks
{
    private const int N = 32, Length = 65_536;
    private GruCell<float> _cell;
    private float[] _x = [];
    private float[] _projections = [];
    private float[] _states = [];
    private float[] _workspace = [];

    [Params(SolveMethod.QuasiDeer, SolveMethod.Deer)]
    public SolveMethod Method { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(32);
        _cell = GruCell<float>.Random(N, N, random);
        _x = [.. Enumerable.Range(0, Length * N).Select(_ => (float)((random.NextDouble() * 2) - 1))];
        _projections = new float[Length * _cell.ProjectionSize];
        _states = new float[Length * N];
        _workspace = new float[_cell.WorkspaceSize];
    }

    /// <summary>
    /// The loop's own work per step, warm: the input projection and the chain of cell evaluations into buffers that are
    /// reused (no fresh output to fault in), so "one sequential step" means the step and nothing else.
    /// </summary>
    [Benchmark]
    public float WarmLoop()
    {
        int p = _cell.ProjectionSize;
        _cell.ProjectInputs(_x, _projections, Length);
        ReadOnlySpan<float> previous = new float[N];
        for (int t = 0; t < Length; t++)
        {
            Span<float> current = _states.AsSpan(t * N, N);
            _cell.Evaluate(previous, _projections.AsSpan(t * p, p), current, _workspace);
            previous = current;
        }

        return _states[^1];
    }

    [Benchmark(Baseline = true)]
    public SolveResult<float> Sequential() => Deer.Solve(_cell, _x, 1, Length, new SolveOptions { Method = SolveMethod.Sequential });

    [Benchmark]
    public SolveResult<float> TwoIterations() => Capped(2);

    [Benchmark]
    public SolveResult<float> SevenIterations() => Capped(7);

    private SolveResult<float> Capped(int iterations) =>
        Deer.Solve(_cell, _x, 1, Length, new SolveOptions { Method = Method, MaxIterations = iterations, Fallback = FallbackPolicy.None });
}
