using System.Numerics;
using DeerSharp.Cells;
using DeerSharp.Scan;

namespace DeerSharp.Cuda.Tests;

/// <summary>
/// The GPU backend against the CPU backend, for every cell (tanh RNN, GRU, LSTM, GILR), every GPU method and both
/// element types, on fresh random weights, inputs and initial states. The same checks run twice: on the kernel emulator
/// (everywhere g++ is) and on a real CUDA device (skipped where there is none). Tolerances: 1e-4 in float32, 1e-9 in
/// float64, max abs against the CPU's sequential loop.
/// </summary>
public class GpuAgreementTests
{
    private static readonly string[] Cells = ["rnn", "gru", "lstm", "gilr"];
    private static readonly SolveMethod[] Methods = [SolveMethod.Sequential, SolveMethod.Deer, SolveMethod.QuasiDeer, SolveMethod.Picard, SolveMethod.Auto];

    [EmulatorFact]
    public void Emulated_kernels_match_the_cpu_for_every_cell_and_method()
    {
        using var gpu = new EmulatedGpu();
        using (GpuDispatch.Use(gpu))
        {
            AllCellsAndMethods<float>(seed: Random.Shared.Next(), 1e-4);
            AllCellsAndMethods<double>(seed: Random.Shared.Next(), 1e-9);
        }
    }

    [CudaFact]
    public void Cuda_matches_the_cpu_for_every_cell_and_method()
    {
        AllCellsAndMethods<float>(seed: Random.Shared.Next(), 1e-4);
        AllCellsAndMethods<double>(seed: Random.Shared.Next(), 1e-9);
    }

    [EmulatorFact]
    public void Emulated_gradients_after_a_gpu_forward_pass_match_the_cpu()
    {
        using var gpu = new EmulatedGpu();
        using (GpuDispatch.Use(gpu))
        {
            Gradients(Random.Shared.Next());
        }
    }

    [CudaFact]
    public void Cuda_gradients_after_a_gpu_forward_pass_match_the_cpu() => Gradients(Random.Shared.Next());

    [EmulatorFact]
    public void Emulated_scans_match_the_cpu_recurrence_across_many_chunks()
    {
        using var gpu = new EmulatedGpu();
        Scans(gpu, Random.Shared.Next());
    }

    [CudaFact]
    public void Cuda_scans_match_the_cpu_recurrence_across_many_chunks()
    {
        using var gpu = CudaRuntime.Open();
        Scans(gpu, Random.Shared.Next());
    }

    private static void AllCellsAndMethods<T>(int seed, double tolerance)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(seed);
        var failures = new List<string>();
        foreach (string kind in Cells)
        {
            int d = 3 + random.Next(3), n = 3 + random.Next(4), batch = 2, length = 60 + random.Next(40);
            var (solve, s) = Cell<T>(kind, d, n, random);
            T[] x = Uniform<T>(random, batch * length * d, 1.0);
            T[] h0 = Uniform<T>(random, batch * s, 0.5);
            SolveResult<T> reference = solve(x, batch, length, h0, new SolveOptions { Method = SolveMethod.Sequential });
            foreach (SolveMethod method in Methods)
            {
                var options = new SolveOptions { Method = method, Device = ComputeDevice.Cuda, Fallback = FallbackPolicy.None };
                SolveResult<T> gpu = solve(x, batch, length, h0, options);
                double diff = MaxAbsDiff(gpu.States, reference.States);
                if (!gpu.Converged || !(diff <= tolerance))
                {
                    failures.Add($"{typeof(T).Name} {kind} {method}: converged {gpu.Converged} ({gpu.Message}), max |Δ| {diff:G3}");
                }
            }
        }

        Assert.True(failures.Count == 0, $"seed {seed}:\n" + string.Join("\n", failures));
    }

    private static (Func<T[], int, int, T[], SolveOptions, SolveResult<T>> Solve, int StateSize) Cell<T>(string kind, int d, int n, Random random)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        switch (kind)
        {
            case "rnn":
                var rnn = TanhRnnCell<T>.Random(d, n, random);
                return ((x, b, t, h0, o) => Deer.Solve(rnn, x, b, t, o, h0), n);
            case "gru":
                var gru = GruCell<T>.Random(d, n, random);
                return ((x, b, t, h0, o) => Deer.Solve(gru, x, b, t, o, h0), n);
            case "lstm":
                var lstm = LstmCell<T>.Random(d, n, random);
                return ((x, b, t, h0, o) => Deer.Solve(lstm, x, b, t, o, h0), 2 * n);
            default:
                var gilr = GilrCell<T>.Random(d, n, random);
                return ((x, b, t, h0, o) => Deer.Solve(gilr, x, b, t, o, h0), n);
        }
    }

    private static void Gradients(int seed)
    {
        var random = new Random(seed);
        var gru = GruCell<double>.Random(3, 4, random);
        int batch = 2, length = 90;
        double[] x = Uniform<double>(random, batch * length * 3, 1.0), c = Uniform<double>(random, batch * length * 4, 1.0);
        GradientResult<double> cpu = Deer.Gradient(gru, x, batch, length, c, new SolveOptions { Method = SolveMethod.Deer });
        GradientResult<double> gpu = Deer.Gradient(gru, x, batch, length, c, new SolveOptions { Method = SolveMethod.Deer, Device = ComputeDevice.Cuda });
        Assert.True(MaxAbsDiff(gpu.ParameterGradient, cpu.ParameterGradient) <= 1e-8, $"seed {seed}: parameters");
        Assert.True(MaxAbsDiff(gpu.InputGradient, cpu.InputGradient) <= 1e-8, $"seed {seed}: inputs");
    }

    private static void Scans(IGpuRuntime gpu, int seed)
    {
        var random = new Random(seed);
        foreach (bool dense in new[] { false, true })
        {
            foreach (int n in new[] { 1, 3, 5 })
            {
                int batch = 3, length = 300 + random.Next(200);
                int per = dense ? n * n : n;
                double[] a = Uniform<double>(random, batch * length * per, dense ? 0.9 / n : 1.0), b = Uniform<double>(random, batch * length * n, 1.0);
                double[] h0 = Uniform<double>(random, batch * n, 1.0), expected = new double[batch * length * n];
                LinearRecurrence.SolveBatch(a, (double[])b.Clone(), h0, expected, batch, length, n, dense, 1);
                using var buffers = new GpuSolver.DeviceBuffers(gpu);
                ulong da = buffers.Upload<double>(a), db = buffers.Upload<double>(b), dh0 = buffers.Upload<double>(h0), dh = buffers.Allocate(expected.Length * 8L);
                if (dense)
                {
                    GpuSolver.DenseScan<double>(gpu, buffers, true, da, db, dh0, dh, batch, length, n);
                }
                else
                {
                    GpuSolver.DiagonalScan<double>(gpu, buffers, true, da, db, dh0, dh, batch, length, n);
                }

                var actual = new double[expected.Length];
                unsafe
                {
                    fixed (double* p = actual)
                    {
                        gpu.Download(p, dh, actual.Length * 8L);
                    }
                }

                Assert.True(MaxAbsDiff(actual, expected) <= 1e-9, $"seed {seed}: {(dense ? "dense" : "diagonal")} n = {n}, T = {length}: {MaxAbsDiff(actual, expected):G3}");
            }
        }
    }

    private static T[] Uniform<T>(Random random, int count, double scale)
        where T : INumberBase<T>
    {
        var v = new T[count];
        for (int i = 0; i < count; i++)
        {
            v[i] = T.CreateTruncating((random.NextDouble() * 2 - 1) * scale);
        }

        return v;
    }

    private static double MaxAbsDiff<T>(T[] a, T[] b)
        where T : INumberBase<T>
    {
        if (a.Length != b.Length)
        {
            return double.PositiveInfinity;
        }

        double max = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double diff = Math.Abs(double.CreateTruncating(a[i]) - double.CreateTruncating(b[i]));
            max = double.IsNaN(diff) ? double.PositiveInfinity : Math.Max(max, diff);
        }

        return max;
    }
}
