using BenchmarkDotNet.Attributes;
using DeerSharp.Cells;
using DeerSharp.Cpu;

namespace DeerSharp.Benchmarks;

/// <summary>
/// Four sequences through the sequential loop on one core, float32, the projections computed beforehand: two pairs of
/// Cpu/FusedLoop.Pairs (the baseline) against one quad of Cpu/FusedLoop.Quads, which give the same states bit for bit
/// (FusedLoopTests). 2,048 steps per call: divide by 4 × 2,048 for the time per sequence-step. Where the CPU has no
/// AVX-512, or for an LSTM whose W_hh fits twice in L1, the quad declines and its figure is that of doing nothing.
/// </summary>
public class BatchKernelBenchmarks
{
    private const int Steps = 2048;
    private GruCell<float> _gru;
    private LstmCell<float> _lstm;
    private float[][] _h0 = [], _projections = [], _states = [];

    [Params(32, 128, 256)]
    public int N { get; set; }

    [Params("gru", "lstm")]
    public string Cell { get; set; } = "gru";

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(N);
        _gru = GruCell<float>.Random(N, N, random);
        _lstm = LstmCell<float>.Random(N, N, random);
        int p = Cell == "gru" ? _gru.ProjectionSize : _lstm.ProjectionSize, s = Cell == "gru" ? N : 2 * N;
        _h0 = new float[4][];
        _projections = new float[4][];
        _states = new float[4][];
        for (int i = 0; i < 4; i++)
        {
            float[] x = [.. Enumerable.Range(0, Steps * N).Select(_ => (float)((random.NextDouble() * 2) - 1))];
            _projections[i] = new float[Steps * p];
            if (Cell == "gru")
            {
                _gru.ProjectInputs(x, _projections[i], Steps);
            }
            else
            {
                _lstm.ProjectInputs(x, _projections[i], Steps);
            }

            _h0[i] = new float[s];
            _states[i] = new float[Steps * s];
        }
    }

    [Benchmark(Baseline = true)]
    public bool TwoPairs() => Cell == "gru" ? Pairs(_gru) : Pairs(_lstm);

    [Benchmark]
    public bool Quad() => Cell == "gru" ? Quad(_gru) : Quad(_lstm);

    private bool Pairs<TCell>(TCell cell)
        where TCell : IRecurrentCell<float> =>
        FusedLoop.TryRunPair(cell, _h0[0], _h0[1], _projections[0], _projections[1], _states[0], _states[1], Steps, out _, out _)
        & FusedLoop.TryRunPair(cell, _h0[2], _h0[3], _projections[2], _projections[3], _states[2], _states[3], Steps, out _, out _);

    private bool Quad<TCell>(TCell cell)
        where TCell : IRecurrentCell<float>
    {
        Span<bool> finite = stackalloc bool[4];
        return FusedLoop.TryRunQuad<TCell, float>(cell, Lanes(0), Lanes(1), Lanes(2), Lanes(3), Steps, finite);
    }

    private FusedLoop.Lanes Lanes(int i) => new(_h0[i], _projections[i], _states[i]);
}
