using DeerSharp.Cells;

namespace DeerSharp.Cuda.Tests;

/// <summary>
/// The result contract on the GPU path (cases 4 and 5 of the contract issue), on the kernel emulator: a fallback is
/// labelled as on the CPU, the scan and the loop check their residuals, and atol = 0 with f = 0 is not 0/0.
/// </summary>
public class GpuContractTests
{
    [EmulatorFact]
    public void Gpu_fallback_is_labelled_as_on_the_cpu()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        RecurrentWeights<double> w = RecurrentWeights<double>.Random(1, 6, 3, random);
        for (int i = 0; i < w.WeightHH.Length; i++)
        {
            w.WeightHH[i] *= 40;
        }

        var cell = new TanhRnnCell<double>(w);
        double[] x = [.. Enumerable.Range(0, 2 * 200 * 3).Select(_ => random.NextDouble() * 2 - 1)];
        var options = new SolveOptions { Method = SolveMethod.Deer, MaxIterations = 3 };
        SolveResult<double> cpu = Deer.Solve(cell, x, 2, 200, options);
        using var gpu = new EmulatedGpu();
        using (GpuDispatch.Use(gpu))
        {
            SolveResult<double> r = Deer.Solve(cell, x, 2, 200, options with { Device = ComputeDevice.Cuda });
            Assert.True(r.Converged, $"seed {seed}: {r.Message}");
            Assert.Equal(ComputeDevice.Cuda, r.Device);
            Assert.Equal(cpu.Method, r.Method);
            Assert.Equal(SolveMethod.Deer, r.Method);
            Assert.Equal(SolveMethod.Sequential, r.FallbackMethod);
            Assert.Equal(cpu.FallbackMethod, r.FallbackMethod);
            Assert.True(double.IsFinite(r.MaxResidual) && r.MaxResidual <= 1e-9, $"seed {seed}: residual {r.MaxResidual}");
            double diff = r.States.Zip(cpu.States, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(diff <= 1e-9, $"seed {seed}: {diff}");
        }
    }

    [EmulatorFact]
    public void Gpu_scan_and_loop_report_a_checked_residual()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var gilr = new GilrCell<float>(GilrWeights<float>.Random(5, 3, random));
        var rnn = new TanhRnnCell<float>(RecurrentWeights<float>.Random(1, 5, 3, random));
        float[] x = [.. Enumerable.Range(0, 150 * 3).Select(_ => (float)(random.NextDouble() * 2 - 1))];
        using var gpu = new EmulatedGpu();
        using (GpuDispatch.Use(gpu))
        {
            SolveResult<float> scan = Deer.Solve(gilr, x, 1, 150, new SolveOptions { Method = SolveMethod.Scan, Device = ComputeDevice.Cuda });
            Assert.True(scan.Converged, scan.Message);
            Assert.Single(scan.ResidualHistory);
            Assert.Contains("checked", scan.Message, StringComparison.Ordinal);
            SolveResult<float> loop = Deer.Solve(rnn, x, 1, 150, new SolveOptions { Method = SolveMethod.Sequential, Device = ComputeDevice.Cuda });
            Assert.True(loop.Converged, loop.Message);
            Assert.Contains("checked", loop.Message, StringComparison.Ordinal);
            Assert.True(loop.MaxResidual <= 1e-5, $"seed {seed}: {loop.MaxResidual}");
        }
    }

    [EmulatorFact]
    public void Gpu_zero_residual_is_within_a_zero_tolerance()
    {
        // f is exactly 0 everywhere (zero weights, zero inputs): the residual ratio must be 0, not 0/0 = NaN.
        var w = new RecurrentWeights<double>(3, 4, 2, new double[12 * 2], new double[12 * 4], null, null);
        using var gpu = new EmulatedGpu();
        using (GpuDispatch.Use(gpu))
        {
            foreach (SolveMethod method in new[] { SolveMethod.Deer, SolveMethod.QuasiDeer })
            {
                SolveResult<double> r = Deer.Solve(new GruCell<double>(w), new double[2 * 40 * 2], 2, 40,
                    new SolveOptions { Method = method, AbsoluteTolerance = 0, RelativeTolerance = 0, Fallback = FallbackPolicy.None, Device = ComputeDevice.Cuda });
                Assert.True(r.Converged, $"{method}: {r.Message}");
                Assert.Equal(0, r.MaxResidual);
            }

            var lstm = new RecurrentWeights<double>(4, 4, 2, new double[16 * 2], new double[16 * 4], null, null);
            SolveResult<double> l = Deer.Solve(new LstmCell<double>(lstm), new double[40 * 2], 1, 40,
                new SolveOptions { Method = SolveMethod.QuasiDeer, AbsoluteTolerance = 0, RelativeTolerance = 0, Fallback = FallbackPolicy.None, Device = ComputeDevice.Cuda });
            Assert.True(l.Converged, l.Message);
        }
    }
}
