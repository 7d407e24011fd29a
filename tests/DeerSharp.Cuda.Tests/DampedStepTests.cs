using DeerSharp.Gpu;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;

namespace DeerSharp.Cuda.Tests;

/// <summary>
/// quasi-ELK's damped step on the device, (1 + λ + d_{t+1}²) δ_t − d_t δ_{t−1} − d_{t+1} δ_{t+1} = −(r_t − d_{t+1} r_{t+1})
/// per channel, by parallel cyclic reduction and by the Thomas algorithm on ILGPU's CPU accelerator: each solution put
/// back into the system, built here on the host (relative residual 1e-12, float64), for lengths that are and are not
/// powers of two, and for couplings |d| up to 1.5, where the system is not diagonally dominant.
/// </summary>
public sealed class DampedStepTests : IDisposable
{
    private readonly Context _context = Context.Create(b => b.CPU(new CPUDevice(4, 1, 2)).EnableAlgorithms());
    private readonly CPUAccelerator _accelerator;

    public DampedStepTests() => _accelerator = _context.CreateCPUAccelerator(0, CPUAcceleratorMode.Parallel);

    public void Dispose()
    {
        _accelerator.Dispose();
        _context.Dispose();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(64)]
    [InlineData(300)]
    [InlineData(1025)]
    public void Cyclic_reduction_and_thomas_solve_the_damped_system(int length)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        const int Batch = 2, S = 3;
        int count = Batch * length * S;
        double[] r = [.. Enumerable.Range(0, count).Select(_ => (random.NextDouble() * 2) - 1)];
        double[] d = [.. Enumerable.Range(0, count).Select(_ => (random.NextDouble() * 3) - 1.5)];
        double lambda = Math.Pow(10, -3 + (3 * random.NextDouble()));
        using var solver = new DeviceSolver<double>(_accelerator);
        using MemoryBuffer1D<double, Stride1D.Dense> dr = _accelerator.Allocate1D(r), dd = _accelerator.Allocate1D(d), sweep = _accelerator.Allocate1D<double>(count),
            step = _accelerator.Allocate1D<double>(count);
        foreach (bool parallel in new[] { true, false })
        {
            step.MemSetToZero();
            solver.Damping.Step(dr.View, dd.View, sweep.View, step.View, parallel, lambda, Batch, length, S);
            double[] x = step.GetAsArray1D();
            double worst = 0;
            for (int b = 0; b < Batch; b++)
            {
                for (int i = 0; i < S; i++)
                {
                    int At(int t) => (((b * length) + t) * S) + i;
                    for (int t = 0; t < length; t++)
                    {
                        double dNext = t + 1 < length ? d[At(t + 1)] : 0, rNext = t + 1 < length ? r[At(t + 1)] : 0;
                        double lhs = (1 + lambda + (dNext * dNext)) * x[At(t)];
                        lhs -= t > 0 ? d[At(t)] * x[At(t - 1)] : 0;
                        lhs -= t + 1 < length ? dNext * x[At(t + 1)] : 0;
                        double rhs = -(r[At(t)] - (dNext * rNext));
                        worst = Math.Max(worst, Math.Abs(lhs - rhs) / (1 + Math.Abs(rhs)));
                    }
                }
            }

            Assert.True(worst <= 1e-12, $"seed {seed}, T = {length}, λ = {lambda:G3}, {(parallel ? "cyclic reduction" : "Thomas")}: relative residual {worst:G3}");
        }
    }
}
