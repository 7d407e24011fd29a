using System.CommandLine;
using System.Globalization;
using System.Numerics;
using System.Text.Json;
using DeerSharp.Cells;

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

    private sealed record Row(string Cell, string DType, string Method, int Batch, int Length, int State, bool Converged, int Iterations,
        double MaxDifference, double Tolerance, double GpuSeconds, double CpuSeconds, string Message)
    {
        public bool Passed => Converged && MaxDifference <= Tolerance;
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
        rows.AddRange(Check<float>(device, seed, length, 1e-4));
        rows.AddRange(Check<double>(device, seed + 1, length, 1e-9));
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{"cell",-10}{"dtype",-9}{"method",-12}{"B",3}{"T",8}{"S",4} {"iters",6} {"max |Δ|",10} {"tol",7} {"gpu s",8} {"cpu s",8}  result"));
        foreach (Row r in rows)
        {
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{r.Cell,-10}{r.DType,-9}{r.Method,-12}{r.Batch,3}{r.Length,8}{r.State,4} {r.Iterations,6} {r.MaxDifference,10:G3} {r.Tolerance,7:G1} {r.GpuSeconds,8:F4} {r.CpuSeconds,8:F4}  {(r.Passed ? "ok" : "FAIL: " + r.Message)}"));
        }

        // The gradient after a device forward pass (the adjoint on the device too), against the CPU's own: a GRU, the custom cell, a structured GRU.
        var random = new Random(seed + 2);
        (double gradientDiff, bool gradientOk) = GradientCheck(GruCell<double>.Random(4, 8, random), 4, 8, "GRU n = 8", device, length, random, stdout);
        double[] odeTheta = [0.1, .. Uniform(random, new EulerOde().ParameterCount - 1).Select(v => 0.6 * v)];
        (double customDiff, bool customOk) = GradientCheck(DeviceRecurrence.Cell(new EulerOde(), odeTheta), EulerOde.D, EulerOde.S, "custom S = 8", device, length, random, stdout);
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
                using var w = new Utf8JsonWriter(s, new JsonWriterOptions { Indented = true });
                w.WriteStartObject();
                w.WriteString("device", name);
                w.WriteNumber("seed", seed);
                w.WriteString("date", DateTime.UtcNow.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
                w.WriteStartArray("checks");
                foreach (Row r in rows)
                {
                    // Written field by field (no reflection), so the command also works in a Native AOT build.
                    w.WriteStartObject();
                    w.WriteString("Cell", r.Cell);
                    w.WriteString("DType", r.DType);
                    w.WriteString("Method", r.Method);
                    w.WriteNumber("Batch", r.Batch);
                    w.WriteNumber("Length", r.Length);
                    w.WriteNumber("State", r.State);
                    w.WriteBoolean("Converged", r.Converged);
                    w.WriteNumber("Iterations", r.Iterations);
                    ReportJson.Number(w, "MaxDifference", r.MaxDifference);
                    w.WriteNumber("Tolerance", r.Tolerance);
                    w.WriteNumber("GpuSeconds", r.GpuSeconds);
                    w.WriteNumber("CpuSeconds", r.CpuSeconds);
                    w.WriteBoolean("Passed", r.Passed);
                    w.WriteString("Message", r.Message);
                    w.WriteEndObject();
                }

                w.WriteEndArray();
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
        double diff = MaxAbsDiff(gpu.ParameterGradient, cpu.ParameterGradient);
        double scale = Math.Max(1, cpu.ParameterGradient.Max(Math.Abs));
        bool ok = diff <= 1e-8 * scale;
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"gradient ({label}, float64, forward on {gpu.Forward.Device}, adjoint on {gpu.AdjointDevice}): max |Δ| {diff:G3} (tolerance {1e-8 * scale:G2}) {(ok ? "ok" : "FAIL")}"));
        return (diff, ok);
    }

    private static List<Row> Check<T>(ComputeDevice device, int seed, int length, double tolerance)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(seed);
        var rows = new List<Row>();
        string dtype = typeof(T) == typeof(double) ? "float64" : "float32";
        foreach (string kind in new[] { "rnn", "gru", "lstm", "gilr", "gilr-lstm", "sru", "indrnn", "diag-gru", "diag-lstm", "custom" })
        {
            int n = kind is "lstm" or "diag-lstm" or "gilr-lstm" ? 8 : kind == "custom" ? EulerOde.S : 16, d = kind == "sru" ? n : 4, batch = 4;
            Func<T[], T[], SolveOptions, SolveResult<T>> solve;
            int s = kind switch { "lstm" or "diag-lstm" or "sru" => 2 * n, "gilr-lstm" => 3 * n, _ => n };
            switch (kind)
            {
                case "rnn":
                    var rnn = TanhRnnCell<T>.Random(d, n, random);
                    solve = (x, h0, o) => Deer.Solve(rnn, x, batch, length, o, h0);
                    break;
                case "gru":
                    var gru = GruCell<T>.Random(d, n, random);
                    solve = (x, h0, o) => Deer.Solve(gru, x, batch, length, o, h0);
                    break;
                case "lstm":
                    var lstm = LstmCell<T>.Random(d, n, random);
                    solve = (x, h0, o) => Deer.Solve(lstm, x, batch, length, o, h0);
                    break;
                case "gilr":
                    var gilr = GilrCell<T>.Random(d, n, random);
                    solve = (x, h0, o) => Deer.Solve(gilr, x, batch, length, o, h0);
                    break;
                case "gilr-lstm":
                    var gilrLstm = GilrLstmCell<T>.Random(d, n, random);
                    solve = (x, h0, o) => Deer.Solve(gilrLstm, x, batch, length, o, h0);
                    break;
                case "sru":
                    var sru = SruCell<T>.Random(n, random);
                    solve = (x, h0, o) => Deer.Solve(sru, x, batch, length, o, h0);
                    break;
                case "indrnn":
                    var indrnn = IndRnnCell<T>.Random(d, n, 2, random);
                    solve = (x, h0, o) => Deer.Solve(indrnn, x, batch, length, o, h0);
                    break;
                case "diag-gru":
                    var diagonal = DiagonalGruCell<T>.Random(d, n, 2, random);
                    solve = (x, h0, o) => Deer.Solve(diagonal, x, batch, length, o, h0);
                    break;
                case "custom":
                    // A user's IDeviceRecurrence: ILGPU compiles its Apply, and its dual-number Jacobian, into the kernels.
                    double[] theta = [0.1, .. Uniform(random, new EulerOde().ParameterCount - 1).Select(v => 0.6 * v)];
                    var custom = DeviceRecurrence.Cell(new EulerOde(), [.. theta.Select(T.CreateTruncating)]);
                    solve = (x, h0, o) => Deer.Solve(custom, x, batch, length, o, h0);
                    break;
                default:
                    var diagonalLstm = DiagonalLstmCell<T>.Random(d, n, 2, random);
                    solve = (x, h0, o) => Deer.Solve(diagonalLstm, x, batch, length, o, h0);
                    break;
            }

            T[] inputs = [.. Uniform(random, batch * length * d).Select(T.CreateTruncating)];
            T[] initial = [.. Uniform(random, batch * s).Select(v => T.CreateTruncating(0.5 * v))];
            SolveResult<T> reference = solve(inputs, initial, new SolveOptions { Method = SolveMethod.Sequential });
            SolveMethod[] methods = kind switch
            {
                "gilr" or "gilr-lstm" or "sru" => [SolveMethod.Sequential, SolveMethod.Scan],
                "indrnn" or "diag-gru" or "diag-lstm" => [SolveMethod.Deer],
                _ => Methods,
            };
            foreach (SolveMethod method in methods)
            {
                SolveResult<T> onDevice = solve(inputs, initial, new SolveOptions { Method = method, Device = device, Fallback = FallbackPolicy.None });
                rows.Add(new Row(kind, dtype, MethodNames.Name(method), batch, length, s, onDevice.Converged, onDevice.Iterations,
                    MaxAbsDiff(onDevice.States, reference.States), tolerance, onDevice.Elapsed.TotalSeconds, reference.Elapsed.TotalSeconds, onDevice.Message));
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

    private static double MaxAbsDiff<T>(T[] a, T[] b)
        where T : INumberBase<T>
    {
        double max = a.Length == b.Length ? 0 : double.PositiveInfinity;
        for (int i = 0; i < Math.Min(a.Length, b.Length); i++)
        {
            double diff = Math.Abs(double.CreateTruncating(a[i]) - double.CreateTruncating(b[i]));
            max = double.IsNaN(diff) ? double.PositiveInfinity : Math.Max(max, diff);
        }

        return max;
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
