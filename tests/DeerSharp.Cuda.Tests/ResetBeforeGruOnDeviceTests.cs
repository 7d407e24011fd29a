using DeerSharp.Cells;

namespace DeerSharp.Cuda.Tests;

/// <summary>
/// The GRU with the reset gate before the product (ONNX's linear_before_reset = 0) on the device: its device form (a
/// compiled device recurrence with dual-number Jacobians) against the CPU loop, every device method, float64 (1e-9) and
/// float32 (1e-4), fresh seeds.
/// </summary>
public sealed class ResetBeforeGruOnDeviceTests
{
    [Theory]
    [InlineData(nameof(SolveMethod.Sequential))]
    [InlineData(nameof(SolveMethod.Deer))]
    [InlineData(nameof(SolveMethod.QuasiDeer))]
    public void The_device_matches_the_cpu_loop(string method)
    {
        int seed = Random.Shared.Next();
        Check<double>(seed, Enum.Parse<SolveMethod>(method), 1e-9);
        Check<float>(seed, Enum.Parse<SolveMethod>(method), 1e-4);
    }

    private static void Check<T>(int seed, SolveMethod method, double tolerance)
        where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        const int B = 2, L = 200, D = 3, N = 5;
        var random = new Random(seed);
        var cell = new ResetBeforeGruCell<T>(RecurrentWeights<T>.Random(3, N, D, random));
        T[] x = [.. Enumerable.Range(0, B * L * D).Select(_ => T.CreateTruncating((random.NextDouble() * 4) - 2))];
        T[] h0 = [.. Enumerable.Range(0, B * N).Select(_ => T.CreateTruncating(random.NextDouble() - 0.5))];
        SolveResult<T> loop = Deer.Solve(cell, x, B, L, new SolveOptions { Method = SolveMethod.Sequential }, h0);
        T tight = T.CreateTruncating(typeof(T) == typeof(float) ? 1e-6 : 1e-11);
        SolveResult<T> device = Deer.Solve(cell, x, B, L, new SolveOptions
        {
            Method = method, Device = ComputeDevice.Emulated, Fallback = FallbackPolicy.None, MaxIterations = L,
            AbsoluteTolerance = double.CreateTruncating(tight), RelativeTolerance = double.CreateTruncating(tight),
        }, h0);
        Assert.True(device.Converged && device.Device == ComputeDevice.Emulated, $"seed {seed}, {method} {typeof(T).Name}: {device}");
        double diff = device.States.Zip(loop.States, (a, b) => Math.Abs(double.CreateTruncating(a - b))).Max();
        Assert.True(diff <= tolerance, $"seed {seed}, {method} {typeof(T).Name}: the device differs from the CPU loop by {diff:G3}");
    }
}
