using System.Diagnostics;
using System.Numerics;
using System.Reflection;
using DeerSharp.Cells;
using DeerSharp.Gpu;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;

namespace DeerSharp.Cuda.Tests;

/// <summary>
/// Issue #13's custom cells on the GPU: a user's <see cref="IDeviceRecurrence"/>, compiled by ILGPU with its
/// forward-mode Jacobian (dual numbers), solved whole on the device. Against the CPU's loop on the same cell, against a
/// hand-written loop, and against finite differences; every custom kernel compiles to PTX for sm_90; code ILGPU cannot
/// compile is refused with the reason and leaves the backend working.
/// </summary>
public sealed class CustomCellOnDeviceTests
{
    private const int B = 2, L = 300;

    /// <summary>Two coupled nonlinear oscillators (S = 2, d = 1); θ = [decay, coupling]: constants travel in θ.</summary>
    public readonly struct Oscillators : IDeviceRecurrence
    {
        public int StateSize => 2;

        public int InputSize => 1;

        public int ParameterCount => 2;

        public TNum Apply<TNum, TVector>(int unit, TVector state, TVector input, TVector parameters)
            where TNum : IFloatingPointIeee754<TNum>
            where TVector : IReadOnlyVector<TNum>, allows ref struct
        {
            TNum h0 = state[0], h1 = state[1];
            return unit == 0
                ? (parameters[0] * TNum.Sin(h0)) + (parameters[1] * TNum.Tanh(h1)) + input[0]
                : (parameters[0] * TNum.Cos(h1)) - (parameters[1] * h0 * h0 / (TNum.One + (h0 * h0)));
        }
    }

    /// <summary>
    /// One explicit Euler step of a neural ODE dh/dt = −h + W2 tanh(W1 h + U x + b) (S = 4, d = 3, H hidden units):
    /// θ = [dt, W1 (H×S), U (H×d), b (H), W2 (S×H)]; H is a plain field of the struct.
    /// </summary>
    public readonly struct NeuralOde(int hidden) : IDeviceRecurrence
    {
        public const int S = 4, D = 3;

        public int Hidden => hidden;

        public int StateSize => S;

        public int InputSize => D;

        public int ParameterCount => 1 + (hidden * (S + D + 1)) + (S * hidden);

        public TNum Apply<TNum, TVector>(int unit, TVector state, TVector input, TVector parameters)
            where TNum : IFloatingPointIeee754<TNum>
            where TVector : IReadOnlyVector<TNum>, allows ref struct
        {
            int w1 = 1, u = w1 + (hidden * S), b = u + (hidden * D), w2 = b + hidden;
            TNum drift = -state[unit];
            for (int k = 0; k < hidden; k++)
            {
                TNum z = parameters[b + k];
                for (int j = 0; j < S; j++)
                {
                    z += parameters[w1 + (k * S) + j] * state[j];
                }

                for (int j = 0; j < D; j++)
                {
                    z += parameters[u + (k * D) + j] * input[j];
                }

                drift += parameters[w2 + (unit * hidden) + k] * TNum.Tanh(z);
            }

            return state[unit] + (parameters[0] * drift);
        }

        /// <summary>The same step written plainly over arrays: the independent reference.</summary>
        public static void Step(double[] theta, int hidden, ReadOnlySpan<double> h, ReadOnlySpan<double> x, Span<double> next)
        {
            int w1 = 1, u = w1 + (hidden * S), b = u + (hidden * D), w2 = b + hidden;
            var a = new double[hidden];
            for (int k = 0; k < hidden; k++)
            {
                double z = theta[b + k];
                for (int j = 0; j < S; j++)
                {
                    z += theta[w1 + (k * S) + j] * h[j];
                }

                for (int j = 0; j < D; j++)
                {
                    z += theta[u + (k * D) + j] * x[j];
                }

                a[k] = Math.Tanh(z);
            }

            for (int i = 0; i < S; i++)
            {
                double drift = -h[i];
                for (int k = 0; k < hidden; k++)
                {
                    drift += theta[w2 + (i * hidden) + k] * a[k];
                }

                next[i] = h[i] + (theta[0] * drift);
            }
        }

        public static double[] Parameters(int hidden, Random random)
        {
            double[] theta = [.. Enumerable.Range(0, new NeuralOde(hidden).ParameterCount).Select(_ => (random.NextDouble() - 0.5) * 1.2)];
            theta[0] = 0.1;
            return theta;
        }
    }

    /// <summary>A constant through TNum.CreateTruncating, which ILGPU cannot compile (it branches on typeof).</summary>
    public readonly struct Truncating : IDeviceRecurrence
    {
        public int StateSize => 1;

        public int InputSize => 1;

        public int ParameterCount => 0;

        public TNum Apply<TNum, TVector>(int unit, TVector state, TVector input, TVector parameters)
            where TNum : IFloatingPointIeee754<TNum>
            where TVector : IReadOnlyVector<TNum>, allows ref struct =>
            (TNum.CreateTruncating(0.5) * state[0]) + input[0];
    }

    /// <summary>A struct with an array field: it cannot travel to the device as a kernel argument.</summary>
    public readonly struct Referencing(double[] weights) : IDeviceRecurrence
    {
        public int StateSize => 1;

        public int InputSize => 1;

        public int ParameterCount => 0;

        public double First => weights[0];

        public TNum Apply<TNum, TVector>(int unit, TVector state, TVector input, TVector parameters)
            where TNum : IFloatingPointIeee754<TNum>
            where TVector : IReadOnlyVector<TNum>, allows ref struct =>
            (state[0] / (TNum.One + TNum.One)) + input[0];
    }

    /// <summary>A private struct: ILGPU's generated launcher cannot name it.</summary>
    private readonly struct Hidden : IDeviceRecurrence
    {
        public int StateSize => 1;

        public int InputSize => 1;

        public int ParameterCount => 0;

        public TNum Apply<TNum, TVector>(int unit, TVector state, TVector input, TVector parameters)
            where TNum : IFloatingPointIeee754<TNum>
            where TVector : IReadOnlyVector<TNum>, allows ref struct =>
            (state[0] / (TNum.One + TNum.One)) + input[0];
    }

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (string cell in new[] { "oscillators", "ode" })
        {
            foreach (SolveMethod method in new[] { SolveMethod.Sequential, SolveMethod.Picard, SolveMethod.QuasiDeer, SolveMethod.QuasiElk, SolveMethod.Deer, SolveMethod.Auto })
            {
                data.Add(cell, method.ToString());
            }
        }

        return data;
    }

    /// <summary>Every device method on a custom cell agrees with the CPU's loop on the same cell: 1e-4 in float32, 1e-9 in float64.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Custom_cells_on_the_emulator_match_the_cpu(string cell, string method)
    {
        int seed = Random.Shared.Next();
        Check<float>(cell, Enum.Parse<SolveMethod>(method), seed, 1e-4);
        Check<double>(cell, Enum.Parse<SolveMethod>(method), seed, 1e-9);
    }

    private static void Check<T>(string kind, SolveMethod method, int seed, double tolerance)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(seed);
        T tight = T.CreateTruncating(typeof(T) == typeof(float) ? 1e-6 : 1e-11);
        var device = new SolveOptions
        {
            Method = method, Device = ComputeDevice.Emulated, Fallback = FallbackPolicy.None, MaxIterations = L,
            AbsoluteTolerance = double.CreateTruncating(tight), RelativeTolerance = double.CreateTruncating(tight),
        };
        var loop = new SolveOptions { Method = SolveMethod.Sequential };
        (SolveResult<T> onDevice, SolveResult<T> onCpu) = kind == "oscillators"
            ? Both(DeviceRecurrence.Cell(new Oscillators(), Cast<T>([0.8, 1.0 / 3])), 1, 2, random, device, loop)
            : Both(DeviceRecurrence.Cell(new NeuralOde(5), Cast<T>(NeuralOde.Parameters(5, random))), NeuralOde.D, NeuralOde.S, random, device, loop);

        string what = $"seed {seed}, {kind} {method} {typeof(T).Name}";
        Assert.True(onDevice.Converged, $"{what}: {onDevice}");
        Assert.Equal(ComputeDevice.Emulated, onDevice.Device);
        Assert.Equal(method == SolveMethod.Auto ? SolveMethod.Deer : method, onDevice.Method);
        Assert.Null(onDevice.FallbackMethod);
        double diff = onDevice.States.Zip(onCpu.States, (a, b) => Math.Abs(double.CreateTruncating(a - b))).Max();
        Assert.True(diff <= tolerance, $"{what}: max |device − cpu| = {diff:G3} after {onDevice.Iterations} iterations");
    }

    private static T[] Cast<T>(double[] values)
        where T : IFloatingPointIeee754<T> => [.. values.Select(T.CreateTruncating)];

    private static (SolveResult<T>, SolveResult<T>) Both<TFunction, T>(ParameterizedCell<DeviceRecurrence<TFunction>, T> cell, int d, int s, Random random,
        SolveOptions device, SolveOptions loop)
        where TFunction : struct, IDeviceRecurrence
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T[] x = [.. Enumerable.Range(0, B * L * d).Select(_ => T.CreateTruncating((random.NextDouble() * 2) - 1))];
        T[] h0 = [.. Enumerable.Range(0, B * s).Select(_ => T.CreateTruncating(random.NextDouble() - 0.5))];
        return (Deer.Solve(cell, x, B, L, device, h0), Deer.Solve(cell, x, B, L, loop, h0));
    }

    /// <summary>
    /// The contract on a custom cell's device path: a capped solve reports MaxIterationsReached with the residual of the
    /// states it returns; under the fallback the CPU loop's states come back, labelled.
    /// </summary>
    [Fact]
    public void A_capped_custom_solve_is_honest_and_its_fallback_labelled()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var cell = DeviceRecurrence.Cell(new NeuralOde(5), NeuralOde.Parameters(5, random));
        double[] x = [.. Enumerable.Range(0, B * L * NeuralOde.D).Select(_ => (random.NextDouble() * 2) - 1)];
        SolveResult<double> loop = Deer.Solve(cell, x, B, L, new SolveOptions { Method = SolveMethod.Sequential });
        var capped = new SolveOptions { Method = SolveMethod.QuasiDeer, Device = ComputeDevice.Emulated, MaxIterations = 1, Fallback = FallbackPolicy.None };
        SolveResult<double> honest = Deer.Solve(cell, x, B, L, capped);
        Assert.Equal(SolveStatus.MaxIterationsReached, honest.Status);
        Assert.True(honest.MaxResidual > 1e-10 && !honest.Converged, $"seed {seed}: {honest}");
        double residual = 0;
        var next = new double[NeuralOde.S];
        for (int b = 0; b < B; b++)
        {
            for (int t = 0; t < L; t++)
            {
                ReadOnlySpan<double> previous = t == 0 ? new double[NeuralOde.S] : honest.States.AsSpan(((b * L) + t - 1) * NeuralOde.S, NeuralOde.S);
                NeuralOde.Step([.. cell.Parameters], 5, previous, x.AsSpan(((b * L) + t) * NeuralOde.D, NeuralOde.D), next);
                for (int i = 0; i < NeuralOde.S; i++)
                {
                    residual = Math.Max(residual, Math.Abs(honest.States[(((b * L) + t) * NeuralOde.S) + i] - next[i]));
                }
            }
        }

        Assert.True(Math.Abs(residual - honest.MaxResidual) <= 1e-12 * Math.Max(1, residual), $"seed {seed}: reported residual {honest.MaxResidual:G6}, recomputed {residual:G6}");

        SolveResult<double> rescued = Deer.Solve(cell, x, B, L, capped with { Fallback = FallbackPolicy.Sequential });
        Assert.True(rescued.Converged, rescued.ToString());
        Assert.Equal(SolveMethod.QuasiDeer, rescued.Method);
        Assert.Equal(SolveMethod.Sequential, rescued.FallbackMethod);
        Assert.True(rescued.States.Zip(loop.States, (a, b) => Math.Abs(a - b)).Max() <= 1e-12);
    }

    /// <summary>The CPU form of a device recurrence (unit by unit over spans), its loop against the same step written plainly: 1e-12.</summary>
    [Fact]
    public void The_cpu_form_matches_a_hand_written_loop()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        const int Hidden = 6;
        double[] theta = NeuralOde.Parameters(Hidden, random);
        double[] x = [.. Enumerable.Range(0, L * NeuralOde.D).Select(_ => (random.NextDouble() * 2) - 1)];
        SolveResult<double> solved = Deer.Solve(DeviceRecurrence.Cell(new NeuralOde(Hidden), theta), x, 1, L, new SolveOptions { Method = SolveMethod.Sequential });
        Assert.True(solved.Converged, $"seed {seed}: {solved}");
        var h = new double[NeuralOde.S];
        var next = new double[NeuralOde.S];
        double diff = 0;
        for (int t = 0; t < L; t++)
        {
            NeuralOde.Step(theta, Hidden, h, x.AsSpan(t * NeuralOde.D, NeuralOde.D), next);
            next.CopyTo(h, 0);
            for (int i = 0; i < NeuralOde.S; i++)
            {
                diff = Math.Max(diff, Math.Abs(h[i] - solved.States[(t * NeuralOde.S) + i]));
            }
        }

        Assert.True(diff <= 1e-12, $"seed {seed}: the CPU form's loop differs from the hand-written loop by {diff:G3}");
    }

    /// <summary>
    /// The evaluation kernel's full Jacobian (mode 2) and diagonal (mode 1) on ILGPU's CPU accelerator, against central
    /// differences of the hand-written step (1e-7) and the CPU's AD (1e-12); its f and Newton term against the definitions.
    /// </summary>
    [Fact]
    public void The_device_jacobian_matches_finite_differences()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        const int Hidden = 5, Rows = 17, S = NeuralOde.S, D = NeuralOde.D;
        double[] theta = NeuralOde.Parameters(Hidden, random);
        double[] h = [.. Enumerable.Range(0, Rows * S).Select(_ => (random.NextDouble() * 2) - 1)];
        double[] x = [.. Enumerable.Range(0, Rows * D).Select(_ => (random.NextDouble() * 2) - 1)];
        using Context context = Context.Create(b => b.CPU(new CPUDevice(4, 1, 2)).EnableAlgorithms());
        using CPUAccelerator accelerator = context.CreateCPUAccelerator(0, CPUAcceleratorMode.Parallel);
        var function = new CustomFunction<double, NeuralOde>(new NeuralOde(Hidden));
        object kernels = function.Load(accelerator);
        using MemoryBuffer1D<double, Stride1D.Dense> dx = accelerator.Allocate1D(x), dh = accelerator.Allocate1D(h), dtheta = accelerator.Allocate1D(theta),
            f = accelerator.Allocate1D<double>(Rows * S), jac = accelerator.Allocate1D<double>(Rows * S * S), diag = accelerator.Allocate1D<double>(Rows * S),
            term = accelerator.Allocate1D<double>(Rows * S), term1 = accelerator.Allocate1D<double>(Rows * S);
        function.Evaluate(kernels, Rows * S, dx.View, dh.View, dtheta.View, f.View, jac.View, term.View, S, D, mode: 2);
        function.Evaluate(kernels, Rows * S, dx.View, dh.View, dtheta.View, f.View, diag.View, term1.View, S, D, mode: 1);
        accelerator.Synchronize();
        double[] fs = f.GetAsArray1D(), js = jac.GetAsArray1D(), ds = diag.GetAsArray1D(), ts = term.GetAsArray1D(), t1 = term1.GetAsArray1D();

        var cell = DeviceRecurrence.Cell(new NeuralOde(Hidden), theta);
        var ad = new double[Rows * S * S];
        cell.EvaluateBlock(h, x, new double[Rows * S], ad, JacobianMode.Full, new double[cell.BlockWorkspaceSize(Rows)], Rows);
        var plus = new double[S];
        var minus = new double[S];
        var expected = new double[S];
        const double Eps = 1e-6;
        for (int row = 0; row < Rows; row++)
        {
            double[] state = h[(row * S)..((row + 1) * S)];
            ReadOnlySpan<double> input = x.AsSpan(row * D, D);
            NeuralOde.Step(theta, Hidden, state, input, expected);
            for (int i = 0; i < S; i++)
            {
                Assert.True(Math.Abs(fs[(row * S) + i] - expected[i]) <= 1e-12, $"seed {seed}: f[{row}, {i}]");
                double newton = expected[i];
                for (int j = 0; j < S; j++)
                {
                    newton -= js[(((row * S) + i) * S) + j] * state[j];
                }

                Assert.True(Math.Abs(ts[(row * S) + i] - newton) <= 1e-12, $"seed {seed}: Newton term [{row}, {i}]");
                double diagonalTerm = expected[i] - (ds[(row * S) + i] * state[i]);
                Assert.True(Math.Abs(t1[(row * S) + i] - diagonalTerm) <= 1e-12, $"seed {seed}: quasi-Newton term [{row}, {i}]");
            }

            for (int j = 0; j < S; j++)
            {
                double keep = state[j];
                state[j] = keep + Eps;
                NeuralOde.Step(theta, Hidden, state, input, plus);
                state[j] = keep - Eps;
                NeuralOde.Step(theta, Hidden, state, input, minus);
                state[j] = keep;
                for (int i = 0; i < S; i++)
                {
                    int at = (((row * S) + i) * S) + j;
                    double central = (plus[i] - minus[i]) / (2 * Eps);
                    Assert.True(Math.Abs(js[at] - central) <= 1e-7, $"seed {seed}: J[{row}, {i}, {j}] = {js[at]:G6}, finite differences {central:G6}");
                    Assert.True(Math.Abs(js[at] - ad[at]) <= 1e-12, $"seed {seed}: J[{row}, {i}, {j}] differs from the CPU's AD");
                }

                Assert.Equal(js[(((row * S) + j) * S) + j], ds[(row * S) + j], 12);
            }
        }
    }

    /// <summary>Every custom kernel (evaluation, loop, and the two adjoint products), for both test cells, in float and double, compile to PTX for sm_90 with nothing unresolved (and assemble, where ptxas is cached).</summary>
    [Fact]
    public void Custom_kernels_compile_to_ptx_for_sm90()
    {
        var failures = new List<string>();
        string? ptxas = IlgpuScanTests.Ptxas();
        foreach (Type function in new[] { typeof(Oscillators), typeof(NeuralOde) })
        {
            foreach (Type element in new[] { typeof(float), typeof(double) })
            {
                Type holder = typeof(CustomFunction<,>).MakeGenericType(element, function);
                MethodInfo ptxOf = holder.GetMethod("Ptx", BindingFlags.NonPublic | BindingFlags.Static)!;
                foreach (string name in new[] { nameof(CustomKernels.Evaluate), nameof(CustomKernels.Loop), nameof(CustomKernels.InputAdjoint), nameof(CustomKernels.ParameterAdjoint) })
                {
                    MethodInfo kernel = typeof(CustomKernels).GetMethod(name)!.MakeGenericMethod(element, function);
                    string ptx = (string)ptxOf.Invoke(null, [kernel])!;
                    string what = $"{name}<{element.Name}, {function.Name}>";
                    Assert.Contains(".entry", ptx, StringComparison.Ordinal);
                    Assert.False(ptx.Contains(".extern", StringComparison.Ordinal), $"{what}: unresolved extern");
                    if (ptxas is not null)
                    {
                        string file = Path.Combine(Path.GetTempPath(), $"deer-custom-{Guid.NewGuid():N}.ptx");
                        File.WriteAllText(file, ptx);
                        using var run = Process.Start(new ProcessStartInfo(ptxas, ["-arch=sm_90", file, "-o", "/dev/null"]) { RedirectStandardError = true })!;
                        string errors = run.StandardError.ReadToEnd();
                        run.WaitForExit();
                        File.Delete(file);
                        if (run.ExitCode != 0)
                        {
                            failures.Add($"{what}: ptxas: {errors}");
                        }
                    }
                }
            }
        }

        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    /// <summary>
    /// Code ILGPU cannot compile (TNum.CreateTruncating; a struct holding an array; a private struct) is refused with the reason, and the
    /// emulator goes on solving: the user's code was compiled first in a throwaway context.
    /// </summary>
    [Fact]
    public void Code_ilgpu_cannot_compile_is_a_clear_error_and_leaves_the_backend_working()
    {
        var emulated = new SolveOptions { Device = ComputeDevice.Emulated, Method = SolveMethod.Deer };
        double[] x = [.. Enumerable.Range(0, L).Select(i => Math.Sin(i * 0.1))];
        var e = Assert.Throws<NotSupportedException>(() => Deer.Solve(DeviceRecurrence.Cell<Truncating, double>(new Truncating()), x, 1, L, emulated));
        Assert.Contains(nameof(Truncating), e.Message, StringComparison.Ordinal);
        Assert.Contains("CreateTruncating", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<NotSupportedException>(() => Deer.Solve(DeviceRecurrence.Cell<Referencing, double>(new Referencing([1.0])), x, 1, L, emulated));
        Assert.Contains(nameof(Referencing), e.Message, StringComparison.Ordinal);
        Assert.Contains("parameters", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<NotSupportedException>(() => Deer.Solve(DeviceRecurrence.Cell<Hidden, double>(new Hidden()), x, 1, L, emulated));
        Assert.Contains(nameof(Hidden), e.Message, StringComparison.Ordinal);
        Assert.Contains("public", e.Message, StringComparison.Ordinal);

        // The same recurrences run on the CPU.
        SolveResult<double> cpu = Deer.Solve(DeviceRecurrence.Cell<Truncating, double>(new Truncating()), x, 1, L, emulated with { Device = ComputeDevice.Cpu });
        Assert.True(cpu.Converged, cpu.ToString());

        // And the emulator still compiles and runs other code, built-in and custom.
        SolveResult<double> after = Deer.Solve(DeviceRecurrence.Cell(new Oscillators(), [0.8, 1.0 / 3]), x, 1, L, emulated);
        Assert.True(after.Converged && after.Device == ComputeDevice.Emulated, after.ToString());
        SolveResult<double> gru = Deer.Solve(GruCell<double>.Random(1, 3, new Random(1)), x, 1, L, emulated);
        Assert.True(gru.Converged && gru.Device == ComputeDevice.Emulated, gru.ToString());
    }

    /// <summary>
    /// A gradient after a device forward pass: the adjoint of a custom cell runs on the device too (the reversed block scan,
    /// then ∂f/∂x and ∂f/∂θ on dual numbers); ∂L/∂θ, ∂L/∂x and ∂L/∂h0 match an all-CPU gradient (1e-8 of each one's
    /// largest entry, float64), and ∂L/∂θ matches central differences of the loss (1e-6).
    /// </summary>
    [Fact]
    public void Gradients_after_a_device_forward_pass_match_the_cpu()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        const int Hidden = 4;
        var cell = DeviceRecurrence.Cell(new NeuralOde(Hidden), NeuralOde.Parameters(Hidden, random));
        double[] x = [.. Enumerable.Range(0, B * L * NeuralOde.D).Select(_ => (random.NextDouble() * 2) - 1)];
        double[] c = [.. Enumerable.Range(0, B * L * NeuralOde.S).Select(_ => (random.NextDouble() * 2) - 1)];
        double[] h0 = [.. Enumerable.Range(0, B * NeuralOde.S).Select(_ => random.NextDouble() - 0.5)];
        var tight = new SolveOptions { Method = SolveMethod.Deer, AbsoluteTolerance = 1e-12, RelativeTolerance = 1e-12 };
        GradientResult<double> device = Deer.Gradient(cell, x, B, L, c, tight with { Device = ComputeDevice.Emulated }, null, h0);
        GradientResult<double> cpu = Deer.Gradient(cell, x, B, L, c, tight, null, h0);
        Assert.Equal(ComputeDevice.Emulated, device.Forward.Device);
        Assert.Equal(ComputeDevice.Emulated, device.AdjointDevice);
        Assert.Equal(ComputeDevice.Cpu, cpu.AdjointDevice);
        Assert.True(device.Forward.Converged, device.Forward.ToString());
        foreach ((string name, double[] a, double[] b) in new[]
        {
            ("parameters", device.ParameterGradient, cpu.ParameterGradient),
            ("inputs", device.InputGradient, cpu.InputGradient),
            ("h0", device.InitialStateGradient, cpu.InitialStateGradient),
        })
        {
            double scale = Math.Max(1e-12, b.Max(Math.Abs));
            double diff = a.Zip(b, (p, q) => Math.Abs(p - q)).Max();
            Assert.True(a.Length == b.Length && diff <= 1e-8 * scale, $"seed {seed}, {name}: differ by {diff:G3} (scale {scale:G3})");
        }

        // And against central differences of L = Σ c·h through the CPU's loop, for a few parameters (dt, a W1, a U, a W2 entry).
        double[] theta = NeuralOde.Parameters(Hidden, new Random(seed));
        Assert.Equal(theta, cell.Parameters.ToArray());
        foreach (int p in new[] { 0, 1, 1 + (Hidden * NeuralOde.S), theta.Length - 1 })
        {
            const double Eps = 1e-6;
            double Loss(double shift)
            {
                double[] shifted = [.. theta];
                shifted[p] += shift;
                double[] h = Deer.Solve(DeviceRecurrence.Cell(new NeuralOde(Hidden), shifted), x, B, L, new SolveOptions { Method = SolveMethod.Sequential }, h0).States;
                return h.Zip(c, (u, w) => u * w).Sum();
            }

            double central = (Loss(Eps) - Loss(-Eps)) / (2 * Eps);
            double g = device.ParameterGradient[p];
            Assert.True(Math.Abs(g - central) <= 1e-6 * Math.Max(1, Math.Abs(central)), $"seed {seed}: ∂L/∂θ[{p}] = {g:G8} on the device, finite differences {central:G8}");
        }
    }
}
