using BenchmarkDotNet.Attributes;
using DeerSharp.Scan;

namespace DeerSharp.Benchmarks;

/// <summary>The diagonal linear recurrence: the sequential loop (baseline) against LinearRecurrence.Solve's choice.</summary>
[MemoryDiagnoser]
public class DiagonalScanBenchmarks
{
    private float[] _a = [], _b = [], _h = [], _h0 = [];
    private readonly ScanWorkspace<float> _workspace = new();

    /// <summary>(n, T): a vector-aligned and an awkward state size, in cache and far beyond it.</summary>
    [Params("64x16384", "7x10007", "64x1048576", "1x1048576")]
    public string Shape { get; set; } = "64x16384";

    private int N => int.Parse(Shape.Split('x')[0], System.Globalization.CultureInfo.InvariantCulture);

    private int T => int.Parse(Shape.Split('x')[1], System.Globalization.CultureInfo.InvariantCulture);

    [GlobalSetup]
    public void Setup()
    {
        var rnd = new Random(1);
        long e = (long)N * T;
        _a = [.. Enumerable.Range(0, (int)e).Select(_ => (float)(0.5 + 0.5 * rnd.NextDouble()))];
        _b = [.. Enumerable.Range(0, (int)e).Select(_ => (float)rnd.NextDouble())];
        _h = new float[e];
        _h0 = new float[N];
    }

    [Benchmark(Baseline = true)]
    public void Sequential() => LinearRecurrence.SolveDiagonalSequential<float>(_a, _b, _h0, _h, N);

    [Benchmark]
    public void Chosen() => LinearRecurrence.Solve(_a, _b, _h0, _h, T, N, dense: false, Environment.ProcessorCount, _workspace);

    [Benchmark]
    public void MemoryCopy()
    {
        _a.AsSpan().CopyTo(_h);
        _b.AsSpan(0, _h.Length).CopyTo(_h);
    }
}
