using System.CommandLine;
using System.Globalization;
using System.Text.Json;

namespace DeerSharp.Cli;

/// <summary>
/// `deer selftest --device gpu|emulated`: the ILGPU backend (on the GPU, or its kernels on ILGPU's CPU accelerator) against
/// the CPU backend on fresh random weights and inputs, for every cell with kernels (rnn, gru, lstm, gilr, gilr-lstm, sru,
/// indrnn, diag-gru, diag-lstm with 2×2 blocks, and a custom <see cref="IDeviceRecurrence"/>), every device method,
/// float32 and float64, plus a gradient after a device forward pass. Exit 0 when everything agrees, 1 when anything does
/// not, 2 when there is no device.
/// </summary>
internal static class SelftestCommand
{
    private static readonly SolveMethod[] Methods = [SolveMethod.Sequential, SolveMethod.Deer, SolveMethod.QuasiDeer, SolveMethod.QuasiElk, SolveMethod.Picard];

    public static Command Create(TextWriter stdout)
    {
        var device = new Option<string>("--device") { Description = "The backend to check against the CPU.", Required = true };
        device.AcceptOnlyFromAmong("gpu", "cuda", "emulated");
        var seed = new Option<int?>("--seed") { Description = "Random seed (default: a fresh one, printed)." };
        var length = new Option<int?>("--length") { Description = "Steps per sequence (default 4096 on the GPU, 256 emulated: the CPU accelerator is slow)." };
        var output = new Option<string?>("--out") { Description = "Also write the results as JSON here." };
        var command = new Command("selftest", "Check a GPU backend against the CPU backend on fresh random inputs, for every cell and method.")
        {
            device, seed, length, output,
        };
        command.SetAction(r =>
        {
            ComputeDevice where = r.GetValue(device) == "emulated" ? ComputeDevice.Emulated : ComputeDevice.Gpu;
            return Execute(where, r.GetValue(seed) ?? Random.Shared.Next(), r.GetValue(length) ?? (where == ComputeDevice.Gpu ? 4096 : 256), r.GetValue(output), stdout);
        });
        return command;
    }

    /// <summary>
    /// One check: the device's states against the CPU loop's. It passes when the device converged, its states' residual
    /// recomputed by the CPU is within the solve's tolerance, and |Δ| stays within that tolerance carried through the
    /// recurrence's Jacobians (<see cref="SelftestCase{T}"/>; <c>Tolerance</c> is the largest such bound).
    /// </summary>
    internal sealed record Row(string Cell, string DType, string Method, int Batch, int Length, int State, bool Converged, int Iterations,
        double MaxDifference, double Tolerance, double BoundRatio, double ResidualRatio, double GpuSeconds, double CpuSeconds, string Message)
    {
        public bool Passed => Converged && BoundRatio <= 1 && ResidualRatio <= 1;

        public string Failure => !Converged ? Message
            : ResidualRatio > 1 ? string.Create(CultureInfo.InvariantCulture, $"the device's states have a residual {ResidualRatio:G3}× the tolerance, recomputed on the CPU")
            : string.Create(CultureInfo.InvariantCulture, $"the states differ from the CPU loop's by {BoundRatio:G3}× what the tolerance and the Jacobians allow");
    }

    private static int Execute(ComputeDevice device, int seed, int length, string? output, TextWriter stdout)
    {
        if (length < 2)
        {
            throw new UsageException($"--length must be at least 2; got {length}.");
        }

        IReadOnlyList<string> backends = Gpu.IlgpuBackend.Describe();
        if (device == ComputeDevice.Gpu && !Gpu.IlgpuBackend.GpuPresent)
        {
            throw new NotSupportedException($"no GPU to test: {backends[0]}. `deer selftest --device emulated` checks the same kernels on the CPU.");
        }

        string name = device == ComputeDevice.Gpu ? backends[0] : backends[1];
        stdout.WriteLine($"deer selftest: the ILGPU backend against the CPU, seed {seed}, T = {length}; {name}.");
        var rows = new List<Row>();
        rows.AddRange(Check<float>(device, seed, length));
        rows.AddRange(Check<double>(device, seed + 1, length));
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{"cell",-10}{"dtype",-9}{"method",-12}{"B",3}{"T",8}{"S",4} {"iters",6} {"max |Δ|",10} {"tol",7} {"gpu s",8} {"cpu s",8}  result"));
        foreach (Row r in rows)
        {
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{r.Cell,-10}{r.DType,-9}{r.Method,-12}{r.Batch,3}{r.Length,8}{r.State,4} {r.Iterations,6} {r.MaxDifference,10:G3} {r.Tolerance,7:G1} {r.GpuSeconds,8:F4} {r.CpuSeconds,8:F4}  {(r.Passed ? "ok" : "FAIL: " + r.Failure)}"));
        }

        // The gradient after a device forward pass (the adjoint on the device too), against the CPU's own: a GRU, the custom cell, a structured GRU.
        var random = new Random(seed + 2);
        (double gradientDiff, bool gradientOk) = GradientCheck(GruCell<double>.Random(4, 8, random), 4, 8, "GRU n = 8", device, length, random, stdout);
        (double customDiff, bool customOk) = GradientCheck(DeviceRecurrence.Cell(new EulerOde(), EulerOde.Parameters<double>(random)), EulerOde.D, EulerOde.S, "custom S = 8", device, length, random, stdout);
        (double blockDiff, bool blockOk) = GradientCheck(DiagonalGruCell<double>.Random(4, 16, 2, random), 4, 16, "diag-GRU n = 16, k = 2", device, length, random, stdout);
        int failed = rows.Count(r => !r.Passed) + (gradientOk ? 0 : 1) + (customOk ? 0 : 1) + (blockOk ? 0 : 1);
        stdout.WriteLine(failed == 0 ? $"all {rows.Count + 3} checks passed." : $"{failed} of {rows.Count + 3} checks FAILED.");
        gradientDiff = Math.Max(gradientDiff, Math.Max(customDiff, blockDiff));
        gradientOk &= customOk && blockOk;
        if (output is not null)
        {
            using var files = new AtomicFiles();
            files.Stage(output, "--out", s =>
            {
                using var w = new Utf8JsonWriter(s, ReportJson.WriterOptions);
                w.WriteStartObject();
                w.WriteString("device", name);
                w.WriteNumber("seed", seed);
                w.WriteString("date", DateTime.UtcNow.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
                ReportJson.Rows(w, "checks", rows, r => [("Cell", r.Cell), ("DType", r.DType), ("Method", r.Method), ("Batch", r.Batch), ("Length", r.Length),
                    ("State", r.State), ("Converged", r.Converged), ("Iterations", r.Iterations), ("MaxDifference", r.MaxDifference), ("Tolerance", r.Tolerance),
                    ("BoundRatio", r.BoundRatio), ("ResidualRatio", r.ResidualRatio), ("GpuSeconds", r.GpuSeconds), ("CpuSeconds", r.CpuSeconds), ("Passed", r.Passed), ("Message", r.Message)]);
                w.WriteNumber("gradient_max_difference", gradientDiff);
                w.WriteBoolean("gradient_passed", gradientOk);
                w.WriteBoolean("passed", failed == 0);
                w.WriteEndObject();
            });
            files.Commit();
        }

        return failed == 0 ? 0 : 1;
    }

    /// <summary>∂L/∂θ after a device forward pass against the CPU's, within 1e-8 of its largest entry (float64, B = 2); prints one line.</summary>
    private static (double Difference, bool Passed) GradientCheck<TCell>(TCell cell, int d, int o, string label, ComputeDevice device, int length, Random random,
        TextWriter stdout)
        where TCell : IDifferentiableCell<double>
    {
        double[] x = Uniform(random, 2 * length * d), c = Uniform(random, 2 * length * o);
        GradientResult<double> cpu = Deer.Gradient(cell, x, 2, length, c, new SolveOptions { Method = SolveMethod.Deer });
        GradientResult<double> gpu = Deer.Gradient(cell, x, 2, length, c, new SolveOptions { Method = SolveMethod.Deer, Device = device });
        double diff = Bench.BenchCommand.MaxDiff(gpu.ParameterGradient, cpu.ParameterGradient);
        double scale = Math.Max(1, cpu.ParameterGradient.Max(Math.Abs));
        bool ok = diff <= 1e-8 * scale;
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"gradient ({label}, float64, forward on {gpu.Forward.Device}, adjoint on {gpu.AdjointDevice}): max |Δ| {diff:G3} (tolerance {1e-8 * scale:G2}) {(ok ? "ok" : "FAIL")}"));
        return (diff, ok);
    }

    /// <summary>
    /// Every cell with kernels and every device method, in <typeparamref name="T"/>, from <paramref name="seed"/>. The cells
    /// and their data are drawn in a fixed order, so one seed replays the same checks; <paramref name="only"/> keeps the
    /// solves of one cell (the draws stay the same).
    /// </summary>
    internal static List<Row> Check<T>(ComputeDevice device, int seed, int length, string? only = null, SolveMethod? onlyMethod = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(seed);
        var rows = new List<Row>();
        string dtype = typeof(T) == typeof(double) ? "float64" : "float32";
        foreach (string kind in new[] { "rnn", "gru", "lstm", "gilr", "gilr-lstm", "sru", "indrnn", "diag-gru", "diag-lstm", "custom" })
        {
            int n = kind is "lstm" or "diag-lstm" or "gilr-lstm" ? 8 : kind == "custom" ? EulerOde.S : 16, d = kind == "sru" ? n : 4, batch = 4;
            SelftestCase<T> cell = kind switch
            {
                "rnn" => SelftestCase<T>.Of(TanhRnnCell<T>.Random(d, n, random), batch, length),
                "gru" => SelftestCase<T>.Of(GruCell<T>.Random(d, n, random), batch, length),
                "lstm" => SelftestCase<T>.Of(LstmCell<T>.Random(d, n, random), batch, length),
                "gilr" => SelftestCase<T>.Of(GilrCell<T>.Random(d, n, random), batch, length),
                "gilr-lstm" => SelftestCase<T>.Of(GilrLstmCell<T>.Random(d, n, random), batch, length),
                "sru" => SelftestCase<T>.Of(SruCell<T>.Random(n, random), batch, length),
                "indrnn" => SelftestCase<T>.Of(IndRnnCell<T>.Random(d, n, 2, random), batch, length),
                "diag-gru" => SelftestCase<T>.Of(DiagonalGruCell<T>.Random(d, n, 2, random), batch, length),
                // A user's IDeviceRecurrence: ILGPU compiles its Apply, and its dual-number Jacobian, into the kernels.
                "custom" => SelftestCase<T>.Of(DeviceRecurrence.Cell(new EulerOde(), EulerOde.Parameters<T>(random)), batch, length),
                _ => SelftestCase<T>.Of(DiagonalLstmCell<T>.Random(d, n, 2, random), batch, length),
            };
            T[] inputs = [.. Uniform(random, batch * length * d).Select(T.CreateTruncating)];
            T[] initial = [.. Uniform(random, batch * cell.StateSize).Select(v => T.CreateTruncating(0.5 * v))];
            if (only is not null && only != kind)
            {
                continue;
            }

            SolveResult<T> reference = cell.Solve(inputs, initial, new SolveOptions { Method = SolveMethod.Sequential });
            SolveMethod[] methods = kind switch
            {
                "gilr" or "gilr-lstm" or "sru" => [SolveMethod.Sequential, SolveMethod.Scan],
                "indrnn" or "diag-gru" or "diag-lstm" => [SolveMethod.Deer],
                _ => Methods,
            };
            foreach (SolveMethod method in methods.Where(m => onlyMethod is null || m == onlyMethod))
            {
                var options = new SolveOptions { Method = method, Device = device, Fallback = FallbackPolicy.None };
                SolveResult<T> onDevice = cell.Solve(inputs, initial, options);
                var (diff, boundRatio, bound, residualRatio) = cell.Compare(inputs, initial, onDevice.States, reference.States, options);
                rows.Add(new Row(kind, dtype, MethodNames.Name(method), batch, length, cell.StateSize, onDevice.Converged, onDevice.Iterations,
                    diff, bound, boundRatio, residualRatio, onDevice.Elapsed.TotalSeconds, reference.Elapsed.TotalSeconds, onDevice.Message));
            }
        }

        return rows;
    }

    private static double[] Uniform(Random random, int count)
    {
        var v = new double[count];
        for (int i = 0; i < count; i++)
        {
            v[i] = random.NextDouble() * 2 - 1;
        }

        return v;
    }
}

/// <summary>
/// The selftest's custom cell: one Euler step of dh/dt = −h + W2 tanh(W1 h + U x + b), S = 8, d = 4, 8 hidden units;
/// θ = [dt, W1, U, b, W2]. Internal, so Deer.Cli lets ILGPU's generated launcher code see it (InternalsVisibleTo ILGPURuntime).
/// </summary>
internal readonly struct EulerOde : IDeviceRecurrence
{
    public const int S = 8, D = 4, H = 8;

    public int StateSize => S;

    public int InputSize => D;

    public int ParameterCount => 1 + (H * (S + D + 1)) + (S * H);

    /// <summary>θ for the selftest: dt = 0.1, the rest uniform on ±0.6 (drawn from <paramref name="random"/>, which it advances).</summary>
    public static T[] Parameters<T>(Random random)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var theta = new T[new EulerOde().ParameterCount];
        theta[0] = T.CreateTruncating(0.1);
        for (int i = 1; i < theta.Length; i++)
        {
            theta[i] = T.CreateTruncating(0.6 * ((random.NextDouble() * 2) - 1));
        }

        return theta;
    }

    public TNum Apply<TNum, TVector>(int unit, TVector state, TVector input, TVector parameters)
        where TNum : IFloatingPointIeee754<TNum>
        where TVector : IReadOnlyVector<TNum>, allows ref struct
    {
        const int W1 = 1, U = W1 + (H * S), B = U + (H * D), W2 = B + H;
        TNum drift = -state[unit];
        for (int k = 0; k < H; k++)
        {
            TNum z = parameters[B + k];
            for (int j = 0; j < S; j++)
            {
                z += parameters[W1 + (k * S) + j] * state[j];
            }

            for (int j = 0; j < D; j++)
            {
                z += parameters[U + (k * D) + j] * input[j];
            }

            drift += parameters[W2 + (unit * H) + k] * TNum.Tanh(z);
        }

        return state[unit] + (parameters[0] * drift);
    }
}
