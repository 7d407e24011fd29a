using System.Numerics;
using DeerSharp.Cells;
using DeerSharp.Gpu;
using DeerSharp.Scan;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;

namespace DeerSharp.Cuda.Tests;

/// <summary>
/// The structured cells' ILGPU kernels (issue #15) on ILGPU's CPU accelerator: the K×K block scan against the CPU
/// library's block scan, across chunk boundaries, for one part (IndRNN, GRU) and two (the LSTM's [h; c]); and exact DEER
/// for IndRNN, the diagonal GRU and the diagonal LSTM whole on the accelerator against each cell's sequential loop on the
/// CPU. Their PTX for sm_90 is checked with every other kernel in <see cref="IlgpuScanTests"/>.
/// </summary>
public sealed class IlgpuStructuredTests : IDisposable
{
    private readonly Context _context = Context.Create(b => b.CPU(new CPUDevice(4, 1, 2)).EnableAlgorithms());
    private readonly CPUAccelerator _accelerator;

    public IlgpuStructuredTests() => _accelerator = _context.CreateCPUAccelerator(0, CPUAcceleratorMode.Parallel);

    public void Dispose()
    {
        _accelerator.Dispose();
        _context.Dispose();
    }

    [Theory]
    [InlineData(2, 1, 1)]
    [InlineData(2, 1, 7)]
    [InlineData(4, 1, 40)]
    [InlineData(1, 2, 7)]
    [InlineData(2, 2, 1)]
    [InlineData(2, 2, 33)]
    public void Block_scan_matches_the_cpu_block_scan(int k, int parts, int chunks)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var structure = new JacobianStructure(k, parts);
        const int B = 2, L = 301;
        int s = 2 * structure.Side, m = s * structure.Side;
        double[] a = [.. Enumerable.Range(0, B * L * m).Select(_ => (random.NextDouble() * 2 - 1) * 0.9 / structure.Side)];
        double[] b = [.. Enumerable.Range(0, B * L * s).Select(_ => random.NextDouble() * 2 - 1)];
        double[] h0 = [.. Enumerable.Range(0, B * s).Select(_ => random.NextDouble() * 2 - 1)];
        var expected = new double[B * L * s];
        for (int q = 0; q < B; q++)
        {
            var hq = new double[L * s];
            LinearRecurrence.SolveBlockDiagonal(a[(q * L * m)..((q + 1) * L * m)], b[(q * L * s)..((q + 1) * L * s)], h0[(q * s)..((q + 1) * s)], hq, L, s, structure, 1);
            hq.CopyTo(expected, q * L * s);
        }

        var scan = new BlockScan<double>(_accelerator);
        using MemoryBuffer1D<double, Stride1D.Dense> da = _accelerator.Allocate1D(a), db = _accelerator.Allocate1D(b), dh0 = _accelerator.Allocate1D(h0),
            h = _accelerator.Allocate1D<double>(B * L * s);
        scan.Solve(da.View, db.View, dh0.View, h.View, B, L, s, structure, chunks);
        double diff = h.GetAsArray1D().Zip(expected, (x, y) => Math.Abs(x - y)).Max();
        Assert.True(diff <= 1e-12, $"seed {seed}: k={k} P={parts} chunks={chunks}: max |device − cpu| = {diff:G3}");
    }

    [Theory]
    [InlineData(nameof(DeviceCellKind.IndRnn), 1)]
    [InlineData(nameof(DeviceCellKind.IndRnn), 2)]
    [InlineData(nameof(DeviceCellKind.DiagonalGru), 1)]
    [InlineData(nameof(DeviceCellKind.DiagonalGru), 2)]
    [InlineData(nameof(DeviceCellKind.DiagonalGru), 4)]
    [InlineData(nameof(DeviceCellKind.DiagonalLstm), 1)]
    [InlineData(nameof(DeviceCellKind.DiagonalLstm), 2)]
    public void Exact_deer_runs_whole_on_the_accelerator_and_matches_the_loop(string cell, int k)
    {
        DeviceCellKind kind = Enum.Parse<DeviceCellKind>(cell);
        int seed = Random.Shared.Next();
        Against<float>(kind, k, new Random(seed), 1e-4, 1e-5, seed);
        Against<double>(kind, k, new Random(seed), 1e-9, 1e-10, seed);
    }

    private static void Against<T>(DeviceCellKind kind, int k, Random random, double agreement, double tolerance, int seed)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        const int D = 3, B = 2, L = 300;
        int n = 4 * k, gates = kind switch { DeviceCellKind.IndRnn => 1, DeviceCellKind.DiagonalGru => 3, _ => 4 }, s = kind == DeviceCellKind.DiagonalLstm ? 2 * n : n;
        StructuredWeights<T> w = StructuredWeights<T>.Random(gates, n, D, k, random, scale: 1.5);
        T[] x = [.. Enumerable.Range(0, B * L * D).Select(_ => T.CreateTruncating((random.NextDouble() * 2) - 1))];
        T[] h0 = [.. Enumerable.Range(0, B * s).Select(_ => T.CreateTruncating((random.NextDouble() * 2) - 1))];
        var loop = new SolveOptions { Method = SolveMethod.Sequential };
        SolveResult<T> expected = kind switch
        {
            DeviceCellKind.IndRnn => Deer.Solve(new IndRnnCell<T>(w), x, B, L, loop, h0),
            DeviceCellKind.DiagonalGru => Deer.Solve(new DiagonalGruCell<T>(w), x, B, L, loop, h0),
            _ => Deer.Solve(new DiagonalLstmCell<T>(w), x, B, L, loop, h0),
        };

        var device = new SolveOptions
        {
            Method = SolveMethod.Deer, Device = ComputeDevice.Emulated, Fallback = FallbackPolicy.None, MaxIterations = 50,
            AbsoluteTolerance = tolerance, RelativeTolerance = tolerance,
        };
        SolveResult<T> Solve(SolveOptions options) => kind switch
        {
            DeviceCellKind.IndRnn => Deer.Solve(new IndRnnCell<T>(w), x, B, L, options, h0),
            DeviceCellKind.DiagonalGru => Deer.Solve(new DiagonalGruCell<T>(w), x, B, L, options, h0),
            _ => Deer.Solve(new DiagonalLstmCell<T>(w), x, B, L, options, h0),
        };

        SolveResult<T> r = Solve(device);
        string what = $"seed {seed}, {kind} k={k} {typeof(T).Name}";
        Assert.True(r.Status == SolveStatus.Converged, $"{what}: {r}");
        Assert.Equal(ComputeDevice.Emulated, r.Device);
        // Exact Newton: quadratic convergence, a handful of iterations (quasi-DEER on the dense GRU needs 8 or more).
        Assert.True(r.Iterations is > 0 and <= 8, $"{what}: {r.Iterations} iterations");
        double diff = r.States.Zip(expected.States, (a, b) => Math.Abs(double.CreateTruncating(a - b))).Max();
        Assert.True(diff <= agreement, $"{what}: max |accelerator − loop| = {diff:G3} after {r.Iterations} iterations");

        // The check is honest: capped at one iteration it does not claim convergence.
        SolveResult<T> capped = Solve(device with { MaxIterations = 1 });
        Assert.Equal(SolveStatus.MaxIterationsReached, capped.Status);
        Assert.True(capped.MaxResidual > tolerance, $"{what}: {capped}");
    }
}
