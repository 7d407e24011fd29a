using System.Numerics;
using DeerSharp.Cells;

namespace DeerSharp.Cuda.Tests;

/// <summary>
/// The ILGPU backend through the public API, <c>Device = ComputeDevice.Emulated</c>: the GPU kernels on ILGPU's CPU
/// accelerator against the CPU backend, for every cell with kernels and every device method, float32 (1e-4) and float64
/// (1e-9), fresh seeds; sequences long enough to cross scan chunks; the honest status, the fallback, gradients after a
/// device forward pass, atol = 0, and clear errors for what the device does not run.
/// </summary>
public sealed class IlgpuBackendTests
{
    private const int B = 2, L = 300, D = 3;

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (string cell in new[] { "rnn", "gru", "lstm" })
        {
            foreach (string method in new[] { nameof(SolveMethod.Sequential), nameof(SolveMethod.Picard), nameof(SolveMethod.QuasiDeer), nameof(SolveMethod.QuasiElk), nameof(SolveMethod.Deer) })
            {
                data.Add(cell, method);
            }
        }

        foreach (string cell in new[] { "indrnn", "diag-gru", "diag-lstm" })
        {
            data.Add(cell, nameof(SolveMethod.Deer));
            data.Add(cell, nameof(SolveMethod.Auto));
        }

        foreach (string cell in new[] { "gilr", "sru", "gilr-lstm" })
        {
            data.Add(cell, nameof(SolveMethod.Scan));
            data.Add(cell, nameof(SolveMethod.Sequential));
            data.Add(cell, nameof(SolveMethod.Auto));
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Emulated_device_matches_the_cpu(string cell, string method)
    {
        int seed = Random.Shared.Next();
        Check<float>(cell, Enum.Parse<SolveMethod>(method), seed, 1e-4);
        Check<double>(cell, Enum.Parse<SolveMethod>(method), seed, 1e-9);
    }

    private static void Check<T>(string kind, SolveMethod method, int seed, double tolerance)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(seed);
        const int N = 4;
        int d = kind == "sru" ? N : D;
        T[] x = [.. Enumerable.Range(0, B * L * d).Select(_ => T.CreateTruncating((random.NextDouble() * 2) - 1))];
        int s = kind == "gilr-lstm" ? 3 * N : kind is "lstm" or "diag-lstm" or "sru" ? 2 * N : N;
        T[] h0 = [.. Enumerable.Range(0, B * s).Select(_ => T.CreateTruncating(random.NextDouble() - 0.5))];
        T tight = T.CreateTruncating(typeof(T) == typeof(float) ? 1e-6 : 1e-11);
        var device = new SolveOptions { Method = method, Device = ComputeDevice.Emulated, Fallback = FallbackPolicy.None, MaxIterations = L };
        device = device with { AbsoluteTolerance = double.CreateTruncating(tight), RelativeTolerance = double.CreateTruncating(tight) };
        var loop = new SolveOptions { Method = SolveMethod.Sequential };
        (SolveResult<T> onDevice, SolveResult<T> onCpu) = kind switch
        {
            "rnn" => Both(new TanhRnnCell<T>(RecurrentWeights<T>.Random(1, N, D, random)), x, h0, device, loop),
            "gru" => Both(new GruCell<T>(RecurrentWeights<T>.Random(3, N, D, random)), x, h0, device, loop),
            "lstm" => Both(new LstmCell<T>(RecurrentWeights<T>.Random(4, N, D, random)), x, h0, device, loop),
            "indrnn" => Both(new IndRnnCell<T>(StructuredWeights<T>.Random(1, N, D, 2, random, 1.5)), x, h0, device, loop),
            "diag-gru" => Both(new DiagonalGruCell<T>(StructuredWeights<T>.Random(3, N, D, 2, random, 1.5)), x, h0, device, loop),
            "gilr" => Both(GilrCell<T>.Random(D, N, random), x, h0, device, loop),
            "sru" => Both(SruCell<T>.Random(N, random), x, h0, device, loop),
            "gilr-lstm" => Both(GilrLstmCell<T>.Random(D, N, random), x, h0, device, loop),
            _ => Both(new DiagonalLstmCell<T>(StructuredWeights<T>.Random(4, N, D, 1, random, 1.5)), x, h0, device, loop),
        };

        string what = $"seed {seed}, {kind} {method} {typeof(T).Name}";
        Assert.True(onDevice.Converged, $"{what}: {onDevice}");
        Assert.Equal(ComputeDevice.Emulated, onDevice.Device);
        Assert.Equal(method == SolveMethod.Auto ? (kind is "gilr" or "sru" or "gilr-lstm" ? SolveMethod.Scan : SolveMethod.Deer) : method, onDevice.Method);
        Assert.Null(onDevice.FallbackMethod);
        double diff = onDevice.States.Zip(onCpu.States, (a, b) => Math.Abs(double.CreateTruncating(a - b))).Max();
        Assert.True(diff <= tolerance, $"{what}: max |device − cpu| = {diff:G3} after {onDevice.Iterations} iterations");
    }

    private static (SolveResult<T>, SolveResult<T>) Both<TCell, T>(TCell cell, T[] x, T[] h0, SolveOptions device, SolveOptions loop)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T> =>
        (Deer.Solve(cell, x, B, L, device, h0), Deer.Solve(cell, x, B, L, loop, h0));

    [Fact]
    public void The_status_is_honest_and_the_fallback_is_labelled()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var cell = new GruCell<double>(RecurrentWeights<double>.Random(3, 4, D, random));
        double[] x = [.. Enumerable.Range(0, B * L * D).Select(_ => (random.NextDouble() * 2) - 1)];
        SolveResult<double> loop = Deer.Solve(cell, x, B, L, new SolveOptions { Method = SolveMethod.Sequential });
        var capped = new SolveOptions { Method = SolveMethod.QuasiDeer, Device = ComputeDevice.Emulated, MaxIterations = 1, Fallback = FallbackPolicy.None };
        SolveResult<double> honest = Deer.Solve(cell, x, B, L, capped);
        Assert.Equal(SolveStatus.MaxIterationsReached, honest.Status);
        Assert.True(honest.MaxResidual > 1e-10, $"seed {seed}: {honest}");

        SolveResult<double> rescued = Deer.Solve(cell, x, B, L, capped with { Fallback = FallbackPolicy.Sequential });
        Assert.True(rescued.Converged, rescued.ToString());
        Assert.Equal(SolveMethod.QuasiDeer, rescued.Method);
        Assert.Equal(SolveMethod.Sequential, rescued.FallbackMethod);
        Assert.True(rescued.States.Zip(loop.States, (a, b) => Math.Abs(a - b)).Max() <= 1e-12);

        // atol = 0, rtol = 0: the device loop's states are f of the one before, computed by the same arithmetic as the
        // evaluation kernel, so the residual is exactly zero and counts as within tolerance.
        SolveResult<double> exact = Deer.Solve(cell, x, B, L, new SolveOptions { Method = SolveMethod.Sequential, Device = ComputeDevice.Emulated, AbsoluteTolerance = 0, RelativeTolerance = 0 });
        Assert.True(exact.Converged && exact.MaxResidual == 0, exact.ToString());
    }

    /// <summary>
    /// A memory budget below the whole problem windows it on the device, as on the CPU: groups of whole sequences, or windows
    /// over time each starting from the one before; the states are the same, and the result counts the windows.
    /// </summary>
    [Theory]
    [InlineData(nameof(SolveMethod.Deer), 150)]
    [InlineData(nameof(SolveMethod.QuasiDeer), 150)]
    [InlineData(nameof(SolveMethod.Deer), 700)]
    public void A_memory_budget_windows_the_device_solve(string method, int rowsBudget)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var cell = new GruCell<double>(RecurrentWeights<double>.Random(3, 4, D, random));
        double[] x = [.. Enumerable.Range(0, 3 * L * D).Select(_ => (random.NextDouble() * 2) - 1)];
        double[] h0 = [.. Enumerable.Range(0, 3 * 4).Select(_ => random.NextDouble() - 0.5)];
        SolveResult<double> loop = Deer.Solve(cell, x, 3, L, new SolveOptions { Method = SolveMethod.Sequential }, h0);
        DeviceCell<double> device = DeviceCell<double>.From(cell)!;
        SolveMethod m = Enum.Parse<SolveMethod>(method);
        long budget = rowsBudget * Engines.SolverSettings<double>.DeviceBytesPerRow(Gpu.DeviceSolver<double>.Footprint(device), m);
        var options = new SolveOptions { Method = m, Device = ComputeDevice.Emulated, Fallback = FallbackPolicy.None, MemoryBudgetBytes = budget,
            AbsoluteTolerance = 1e-12, RelativeTolerance = 1e-12, MaxIterations = L };
        SolveResult<double> windowed = Deer.Solve(cell, x, 3, L, options, h0);
        Assert.True(windowed.Converged, $"seed {seed}: {windowed}");
        // Fewer rows than one sequence: windows over time; else groups of whole sequences, which are not windows.
        Assert.True(rowsBudget < L ? windowed.Windows > 1 : windowed.Windows == 1, $"seed {seed}: {windowed.Windows} window(s) under a budget of {rowsBudget} rows");
        double diff = windowed.States.Zip(loop.States, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(diff <= 1e-9, $"seed {seed}: windows differ from the loop by {diff:G3}");

        // A window that fails stops its sequence there: honest status, and the states no window reached are NaN, not zeros.
        SolveResult<double> capped = Deer.Solve(cell, x, 3, L, options with { MaxIterations = 1 }, h0);
        Assert.Equal(SolveStatus.MaxIterationsReached, capped.Status);
        Assert.True(rowsBudget >= L || double.IsNaN(capped.States[^1]), $"seed {seed}: {capped}");
    }

    /// <summary>
    /// After a device forward pass the adjoint runs on the device too (dense and structured cells): ∂L/∂θ, ∂L/∂x and ∂L/∂h0
    /// against the CPU's adjoint on the same problem (1e-8 of each gradient's largest entry, float64), for every dense cell
    /// and every structured cell (blocks of 2 and 3), GILR (n = 40, past the dense limit), SRU and GILR-LSTM.
    /// </summary>
    [Theory]
    [InlineData("rnn")]
    [InlineData("gru")]
    [InlineData("lstm")]
    [InlineData("indrnn")]
    [InlineData("diag-gru")]
    [InlineData("diag-lstm")]
    [InlineData("gilr")]
    [InlineData("sru")]
    [InlineData("gilr-lstm")]
    public void Gradients_on_the_device_match_the_cpu(string kind)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        int n = kind.StartsWith("diag", StringComparison.Ordinal) || kind == "indrnn" ? 6 : kind == "gilr" ? 40 : 3;
        int s = kind is "lstm" or "diag-lstm" or "sru" ? 2 * n : kind == "gilr-lstm" ? 3 * n : n, d = kind == "sru" ? n : D;
        double[] x = [.. Enumerable.Range(0, B * L * d).Select(_ => (random.NextDouble() * 2) - 1)];
        double[] c = [.. Enumerable.Range(0, B * L * n).Select(_ => (random.NextDouble() * 2) - 1)];
        double[] h0 = [.. Enumerable.Range(0, B * s).Select(_ => random.NextDouble() - 0.5)];
        var tight = new SolveOptions { Method = SolveMethod.Deer, AbsoluteTolerance = 1e-12, RelativeTolerance = 1e-12 };
        var scan = new GradientOptions { Adjoint = AdjointMethod.Scan };
        (GradientResult<double> device, GradientResult<double> cpu) = kind switch
        {
            "rnn" => Grads(new TanhRnnCell<double>(RecurrentWeights<double>.Random(1, n, D, random)), x, c, h0, tight, scan),
            "gru" => Grads(new GruCell<double>(RecurrentWeights<double>.Random(3, n, D, random)), x, c, h0, tight, scan),
            "lstm" => Grads(new LstmCell<double>(RecurrentWeights<double>.Random(4, n, D, random)), x, c, h0, tight, scan),
            "indrnn" => Grads(new IndRnnCell<double>(StructuredWeights<double>.Random(1, n, D, 2, random, 1.5)), x, c, h0, tight, scan),
            "diag-gru" => Grads(new DiagonalGruCell<double>(StructuredWeights<double>.Random(3, n, D, 3, random, 1.5)), x, c, h0, tight, scan),
            "diag-lstm" => Grads(new DiagonalLstmCell<double>(StructuredWeights<double>.Random(4, n, D, 2, random, 1.5)), x, c, h0, tight, scan),
            "gilr" => Grads(GilrCell<double>.Random(D, n, random), x, c, h0, tight with { Method = SolveMethod.Scan }, scan),
            "sru" => Grads(SruCell<double>.Random(n, random), x, c, h0, tight with { Method = SolveMethod.Scan }, scan),
            _ => Grads(GilrLstmCell<double>.Random(D, n, random), x, c, h0, tight with { Method = SolveMethod.Scan }, scan),
        };

        Assert.Equal(ComputeDevice.Emulated, device.Forward.Device);
        Assert.Equal(ComputeDevice.Emulated, device.AdjointDevice);
        Assert.Equal(ComputeDevice.Cpu, cpu.AdjointDevice);
        foreach ((string name, double[] a, double[] b) in new[]
        {
            ("parameters", device.ParameterGradient, cpu.ParameterGradient),
            ("inputs", device.InputGradient, cpu.InputGradient),
            ("h0", device.InitialStateGradient, cpu.InitialStateGradient),
        })
        {
            double scale = Math.Max(1e-12, b.Max(Math.Abs));
            double diff = a.Zip(b, (p, q) => Math.Abs(p - q)).Max();
            Assert.True(a.Length == b.Length && diff <= 1e-8 * scale, $"seed {seed}, {kind} {name}: differ by {diff:G3} (scale {scale:G3})");
        }
    }

    private static (GradientResult<double>, GradientResult<double>) Grads<TCell>(TCell cell, double[] x, double[] c, double[] h0, SolveOptions options, GradientOptions scan)
        where TCell : IDifferentiableCell<double> =>
        (Deer.Gradient(cell, x, B, L, c, options with { Device = ComputeDevice.Emulated }, scan, h0), Deer.Gradient(cell, x, B, L, c, options, scan, h0));

    [Fact]
    public void What_the_device_does_not_run_is_a_clear_error()
    {
        var random = new Random(5);
        double[] x = new double[L * D];
        var emulated = new SolveOptions { Device = ComputeDevice.Emulated };
        var e = Assert.Throws<NotSupportedException>(() => Deer.Solve(new GruCell<double>(RecurrentWeights<double>.Random(3, 40, D, random)), x, 1, L,
            emulated with { Method = SolveMethod.Deer }));
        Assert.Contains("32", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<NotSupportedException>(() => Deer.Solve(DiagonalGruCell<double>.Random(D, 4, 1, random), x, 1, L, emulated with { Method = SolveMethod.QuasiDeer }));
        Assert.Contains("exact DEER", e.Message, StringComparison.Ordinal);
        // Scan on a cell that is no linear surrogate is the same error on every device.
        var scan = Assert.Throws<ArgumentException>(() => Deer.Solve(new GruCell<double>(RecurrentWeights<double>.Random(3, 4, D, random)), x, 1, L,
            emulated with { Method = SolveMethod.Scan }));
        Assert.Contains("linear-surrogate", scan.Message, StringComparison.Ordinal);
        e = Assert.Throws<NotSupportedException>(() => Deer.Solve(new AutoDiffCell<Decay, double>(new Decay()), new double[L], 1, L, emulated));
        Assert.Contains("AutoDiffCell", e.Message, StringComparison.Ordinal);

        // Auto with no GPU (as in CI) stays on the CPU, and says so.
        SolveResult<double> auto = Deer.Solve(new GruCell<double>(RecurrentWeights<double>.Random(3, 4, D, random)), x, 1, L, new SolveOptions { Device = ComputeDevice.Auto });
        Assert.Equal(ComputeDevice.Cpu, auto.Device);
    }

    private readonly struct Decay : IRecurrence
    {
        public int StateSize => 1;

        public int InputSize => 1;

        public void Apply<TNum>(ReadOnlySpan<TNum> state, ReadOnlySpan<TNum> input, Span<TNum> next)
            where TNum : IFloatingPointIeee754<TNum> => next[0] = (state[0] / (TNum.One + TNum.One)) + input[0];
    }
}
