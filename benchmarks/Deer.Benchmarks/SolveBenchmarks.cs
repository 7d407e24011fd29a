using System.Numerics;
using BenchmarkDotNet.Attributes;
using DeerSharp.Cells;

namespace DeerSharp.Benchmarks;

/// <summary>A GRU through every method, float and double, with the sequential loop as the baseline.</summary>
[MemoryDiagnoser]
public class GruSolveBenchmarks
{
    private object _cell = null!;
    private Array _x = null!;

    [Params(1, 7, 32)]
    public int Hidden { get; set; }

    [Params(10007, 65536)]
    public int Length { get; set; }

    [Params(typeof(float), typeof(double))]
    public Type Element { get; set; } = typeof(float);

    [GlobalSetup]
    public void Setup()
    {
        if (Element == typeof(float))
        {
            Setup<float>();
        }
        else
        {
            Setup<double>();
        }
    }

    private void Setup<T>()
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var rnd = new Random(Hidden);
        _cell = GruCell<T>.Random(Hidden, Hidden, rnd);
        var x = new T[Length, Hidden];
        for (int t = 0; t < Length; t++)
        {
            for (int i = 0; i < Hidden; i++)
            {
                x[t, i] = T.CreateTruncating(rnd.NextDouble() * 2 - 1);
            }
        }

        _x = x;
    }

    private object Run(SolveMethod method) => _cell switch
    {
        GruCell<float> c => Deer.Solve(c, (float[,])_x, new SolveOptions { Method = method }),
        GruCell<double> c => Deer.Solve(c, (double[,])_x, new SolveOptions { Method = method }),
        _ => throw new InvalidOperationException(),
    };

    [Benchmark(Baseline = true)]
    public object Sequential() => Run(SolveMethod.Sequential);

    [Benchmark]
    public object DeerNewton() => Run(SolveMethod.Deer);

    [Benchmark]
    public object QuasiDeer() => Run(SolveMethod.QuasiDeer);

    [Benchmark]
    public object Picard() => Run(SolveMethod.Picard);
}
