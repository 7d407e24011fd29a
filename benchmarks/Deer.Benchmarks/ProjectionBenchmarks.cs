using BenchmarkDotNet.Attributes;
using DeerSharp.Cells;
using MathNet.Numerics.LinearAlgebra;

namespace DeerSharp.Benchmarks;

/// <summary>
/// A GRU's batched input projection, [T, d] × [d, 3n] (d = n), float32: Deer's blocked GEMM (the baseline) against
/// MathNet.Numerics' managed provider on the same data. MathNet's OpenBLAS provider would be the third contender, but it
/// needs MathNet's native wrapper (libMathNetNumericsOpenBLAS), which is published for Windows only (docs/benchmarks.md).
/// </summary>
[MemoryDiagnoser]
public class ProjectionBenchmarks
{
    private const int Length = 16_384;
    private GruCell<float> _cell;
    private float[] _x = [], _projections = [];
    private Matrix<float> _xm = null!, _wm = null!, _pm = null!;

    [Params(32, 128, 512)]
    public int N { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(N);
        _cell = GruCell<float>.Random(N, N, random);
        _x = [.. Enumerable.Range(0, Length * N).Select(_ => (float)random.NextDouble())];
        _projections = new float[Length * _cell.ProjectionSize];
        _xm = Matrix<float>.Build.Dense(Length, N, (i, j) => _x[(i * N) + j]);
        float[] w = _cell.Weights.WeightIH;
        _wm = Matrix<float>.Build.Dense(3 * N, N, (i, j) => w[(i * N) + j]);
        _pm = Matrix<float>.Build.Dense(Length, 3 * N);
    }

    [Benchmark(Baseline = true)]
    public void Deer() => _cell.ProjectInputs(_x, _projections, Length);

    [Benchmark]
    public void MathNetManaged() => _xm.TransposeAndMultiply(_wm, _pm);
}
