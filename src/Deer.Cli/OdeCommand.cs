using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using DeerSharp.IO;
using DeerSharp.Ode;

namespace DeerSharp.Cli;

/// <summary>
/// `deer ode`: integrates dy/dt = f(y, t[, x(t)]) for an MLP field (a PyTorch nn.Sequential in safetensors) or a built-in
/// system, from y0 at the times in a .npy, and writes y at every time as .npy.
/// </summary>
internal static class OdeCommand
{
    internal sealed record Request(string? Mlp, string Activation, string? System, string Y0, string Times, string? Inputs, string MethodName,
        string? DType, double? Atol, double? Rtol, int? MaxIterations, int Substeps, bool FixedGrid, string Out, string? Report, string Prefix,
        bool FallbackDopri5);

    public static Command Create(TextWriter stdout)
    {
        var mlp = new Option<string?>("--mlp") { Description = "The field as a PyTorch nn.Sequential state_dict in safetensors (0.weight, 0.bias, 2.weight, …)." };
        var activation = new Option<string>("--activation") { Description = "The MLP's activation between its linear layers.", DefaultValueFactory = _ => "tanh" };
        activation.AcceptOnlyFromAmong("tanh", "softplus", "relu");
        var system = new Option<string?>("--system") { Description = "A built-in system instead of --mlp, with its default constants." };
        system.AcceptOnlyFromAmong([.. OdeSystems.Names]);
        var y0 = new Option<string>("--y0") { Description = "Initial state(s) as .npy: [n] or [B, n].", Required = true };
        var times = new Option<string>("--times") { Description = "The output times as .npy, [N + 1], strictly increasing; the first is y0's time.", Required = true };
        var inputs = new Option<string?>("--inputs") { Description = "x(t) at the times as .npy, [N + 1, m] or [B, N + 1, m], for an MLP whose first layer reads n + m values." };
        var method = new Option<string>("--method") { Description = "deer, quasi-deer, rk4 (fixed steps on the grid) or dopri5 (adaptive).", DefaultValueFactory = _ => "deer" };
        method.AcceptOnlyFromAmong("deer", "quasi-deer", "rk4", "dopri5");
        var dtype = new Option<string?>("--dtype") { Description = "Element type of the solve and the output; defaults to y0's type." };
        dtype.AcceptOnlyFromAmong("float32", "float64");
        var atol = new Option<double?>("--atol") { Description = "Absolute tolerance of the local error (default 1e-9 float64, 1e-6 float32)." };
        var rtol = new Option<double?>("--rtol") { Description = "Relative tolerance of the local error (default 1e-7 float64, 1e-5 float32)." };
        var maxIter = new Option<int?>("--max-iter") { Description = "Most Newton iterations per grid and window (default 100 deer, 1000 quasi-deer)." };
        var substeps = new Option<int>("--substeps") { Description = "RK4 steps per interval of --times.", DefaultValueFactory = _ => 1 };
        var fixedGrid = new Option<bool>("--fixed-grid") { Description = "DEER: integrate on --times only, inserting no points (the estimate is still reported)." };
        var output = new Option<string>("--out") { Description = "Output .npy: [N + 1, n], or [B, N + 1, n] for y0 of shape [B, n].", Required = true };
        var report = new Option<string?>("--report") { Description = "Write a JSON report of the solve here." };
        var prefix = new Option<string>("--prefix") { Description = "Key prefix of the MLP inside a larger state_dict (e.g. 'func.net.').", DefaultValueFactory = _ => "" };
        var fallback = new Option<string?>("--fallback") { Description = "If deer or quasi-deer fails, integrate with this method instead of exiting with code 3." };
        fallback.AcceptOnlyFromAmong("dopri5");
        var command = new Command("ode", "Integrate an ODE with DEER (or RK4/Dopri5) and write y at the requested times as .npy.")
        {
            mlp, activation, system, y0, times, inputs, method, dtype, atol, rtol, maxIter, substeps, fixedGrid, output, report, prefix, fallback,
        };
        command.SetAction(r => Execute(new Request(r.GetValue(mlp), r.GetValue(activation)!, r.GetValue(system), r.GetValue(y0)!, r.GetValue(times)!,
            r.GetValue(inputs), r.GetValue(method)!, r.GetValue(dtype), r.GetValue(atol), r.GetValue(rtol), r.GetValue(maxIter), r.GetValue(substeps),
            r.GetValue(fixedGrid), r.GetValue(output)!, r.GetValue(report), r.GetValue(prefix) ?? "", r.GetValue(fallback) == "dopri5"), stdout));
        return command;
    }

    private static int Execute(Request q, TextWriter stdout)
    {
        if ((q.Mlp is null) == (q.System is null))
        {
            throw new UsageException("give exactly one of --mlp W.safetensors or --system NAME.");
        }

        if (q.System is not null && q.Inputs is not null)
        {
            throw new UsageException($"--inputs: the built-in system {q.System} reads no inputs.");
        }

        if (q.Substeps < 1)
        {
            throw new UsageException($"--substeps must be at least 1; got {q.Substeps}.");
        }

        RunCommand.Validate(new RunCommand.Request("gru", "", "", null, null, SolveMethod.Deer, null, q.Atol, q.Rtol, q.MaxIterations, q.Out, q.Report, "", false));
        if (q.Atol == 0 && q.Rtol == 0)
        {
            throw new UsageException("--atol and --rtol cannot both be 0: no grid could meet them.");
        }

        TensorData y0 = RunCommand.ReadNpy(q.Y0, "--y0");
        string dtype = q.DType ?? (y0.IsDouble ? "float64" : "float32");
        return dtype == "float64" ? Execute<double>(q, y0, stdout) : Execute<float>(q, y0, stdout);
    }

    private static int Execute<T>(Request q, TensorData y0, TextWriter stdout)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (q.System is not null)
        {
            return q.System switch
            {
                "lotka-volterra" => Solve<AutoDiffField<LotkaVolterra, T>, T>(q, OdeSystems.Field<LotkaVolterra, T>(), y0, stdout),
                "van-der-pol" => Solve<AutoDiffField<VanDerPol, T>, T>(q, OdeSystems.Field<VanDerPol, T>(), y0, stdout),
                "pendulum" => Solve<AutoDiffField<Pendulum, T>, T>(q, OdeSystems.Field<Pendulum, T>(), y0, stdout),
                _ => Solve<AutoDiffField<TwoBody, T>, T>(q, OdeSystems.Field<TwoBody, T>(), y0, stdout),
            };
        }

        SafetensorsFile file = RunCommand.Wrap(q.Mlp!, "--mlp", () => SafetensorsFile.Read(q.Mlp!));
        MlpActivation activation = q.Activation switch { "softplus" => MlpActivation.Softplus, "relu" => MlpActivation.Relu, _ => MlpActivation.Tanh };
        // The first layer reads n + m values and the last writes n: m is whatever the first reads beyond the state.
        MlpField<T> probe = RunCommand.Wrap(q.Mlp!, "--mlp", () => MlpField<T>.Load(file, activation, Math.Max(0, FirstWidth(file, q.Prefix) - LastWidth(file, q.Prefix)), q.Prefix));
        if (probe.InputSize > 0 && q.Inputs is null)
        {
            throw new UsageException(
                $"--mlp {q.Mlp}: its first layer reads {probe.Widths[0]} values and its last writes {probe.StateSize}, so the field needs {probe.InputSize} input(s) per time: pass --inputs.");
        }

        if (probe.InputSize == 0 && q.Inputs is not null)
        {
            throw new UsageException($"--inputs: the MLP in {q.Mlp} reads only the state (its first layer reads {probe.Widths[0]} = n values).");
        }

        return Solve<MlpField<T>, T>(q, probe, y0, stdout);
    }

    private static int FirstWidth(SafetensorsFile file, string prefix) =>
        file.Contains(prefix + "0.weight") && file.Describe(prefix + "0.weight").Shape is { Count: 2 } s ? s[1] : 0;

    private static int LastWidth(SafetensorsFile file, string prefix)
    {
        int index = 0;
        while (file.Contains(string.Create(CultureInfo.InvariantCulture, $"{prefix}{index + 2}.weight")))
        {
            index += 2;
        }

        string key = string.Create(CultureInfo.InvariantCulture, $"{prefix}{index}.weight");
        return file.Contains(key) && file.Describe(key).Shape is { Count: 2 } s ? s[0] : 0;
    }

    private static int Solve<TField, T>(Request q, TField field, TensorData y0Tensor, TextWriter stdout)
        where TField : IOdeField<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = field.StateSize, m = field.InputSize;
        if (y0Tensor.Rank is not (1 or 2) || y0Tensor.Shape[^1] != n)
        {
            throw new UsageException($"--y0 {q.Y0}: expected shape [{n}] or [B, {n}] (the field's state has {n} values), got {y0Tensor.ShapeText}.");
        }

        CheckFinite(y0Tensor, q.Y0, "--y0");
        bool batched = y0Tensor.Rank == 2;
        int batch = batched ? y0Tensor.Shape[0] : 1;
        TensorData timesTensor = RunCommand.ReadNpy(q.Times, "--times");
        if (timesTensor.Rank != 1 || timesTensor.Shape[0] < 1)
        {
            throw new UsageException($"--times {q.Times}: expected shape [N + 1] with at least one time, got {timesTensor.ShapeText}.");
        }

        CheckFinite(timesTensor, q.Times, "--times");
        T[] times = timesTensor.ToArray<T>();
        for (int i = 1; i < times.Length; i++)
        {
            if (!(times[i] > times[i - 1]))
            {
                throw new UsageException(string.Create(CultureInfo.InvariantCulture,
                    $"--times {q.Times}: must be strictly increasing, but [{i - 1}] = {times[i - 1]} and [{i}] = {times[i]}{(typeof(T) == typeof(float) ? " in float32" : "")}."));
            }
        }

        int length = times.Length;
        T[] inputs = [];
        if (q.Inputs is not null)
        {
            TensorData x = RunCommand.ReadNpy(q.Inputs, "--inputs");
            bool shared = x.Rank == 2 && x.Shape[0] == length && x.Shape[1] == m;
            bool each = x.Rank == 3 && x.Shape[0] == batch && x.Shape[1] == length && x.Shape[2] == m;
            if (!shared && !each)
            {
                throw new UsageException($"--inputs {q.Inputs}: expected shape [{length}, {m}]{(batched ? $" or [{batch}, {length}, {m}]" : "")} (one row per time, {m} inputs), got {x.ShapeText}.");
            }

            CheckFinite(x, q.Inputs, "--inputs");
            inputs = x.ToArray<T>();
        }

        OdeMethod method = q.MethodName switch
        {
            "quasi-deer" => OdeMethod.QuasiDeer,
            "rk4" => OdeMethod.Rk4,
            "dopri5" => OdeMethod.Dopri5,
            _ => OdeMethod.Deer,
        };
        var options = new OdeOptions
        {
            Method = method,
            AbsoluteTolerance = q.Atol,
            RelativeTolerance = q.Rtol,
            MaxIterations = q.MaxIterations,
            Substeps = q.Substeps,
            Adaptive = !q.FixedGrid,
            Fallback = q.FallbackDopri5 ? FallbackPolicy.Sequential : FallbackPolicy.None,
        };
        OdeResult<T> result = Deer.SolveOde(field, y0Tensor.ToArray<T>(), times, options, inputs);
        if (!result.Succeeded)
        {
            string hint = method is OdeMethod.Deer or OdeMethod.QuasiDeer && !q.FallbackDopri5 ? " Pass --fallback dopri5 to fall back instead." : "";
            throw new NotConvergedException($"{q.MethodName} did not succeed ({result.Status}): {result.Message} Nothing was written.{hint}");
        }

        int[] shape = batched ? [batch, length, n] : [length, n];
        using var files = new AtomicFiles();
        files.Stage(q.Out, "--out", s => Npy.Write(s, TensorData.From(result.States, shape)));
        if (q.Report is not null)
        {
            files.Stage(q.Report, "--report", s => WriteReport(s, q, result, typeof(T) == typeof(double) ? "float64" : "float32", field.ParameterCount));
        }

        files.Commit();
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{q.System ?? "mlp"}, n = {n}, B = {batch}, {length} times: {Name(result.Method)}{(result.FallbackMethod is { } fb ? $" (states by {Name(fb)} after it failed)" : "")} {result.Status}, "
            + $"{result.Iterations} iteration(s), internal grid {result.InternalGridSize}, {ErrorText(result.ErrorEstimate)}, {result.Elapsed.TotalSeconds:F3} s; wrote {q.Out}."));
        return 0;
    }

    /// <summary>The largest local error estimate, said relative to what it is scaled by.</summary>
    private static string ErrorText(double estimate) => double.IsNaN(estimate)
        ? "no error estimate (rk4 has none)"
        : string.Create(CultureInfo.InvariantCulture, $"largest local error estimate {estimate:G3}× (atol + rtol·|y|), {(estimate <= 1 ? "within" : "over")} the tolerance");

    private static string Name(OdeMethod method) => method switch
    {
        OdeMethod.QuasiDeer => "quasi-deer",
        OdeMethod.Rk4 => "rk4",
        OdeMethod.Dopri5 => "dopri5",
        _ => "deer",
    };

    private static void CheckFinite(TensorData t, string path, string option)
    {
        long bad = t.IndexOfNonFinite();
        if (bad >= 0)
        {
            throw new UsageException($"{option} {path}: holds NaN or infinity at {RunCommand.Coordinates(bad, t.Shape)}.");
        }
    }

    private static void WriteReport<T>(Stream stream, Request q, OdeResult<T> result, string dtype, int parameters)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        using var w = new Utf8JsonWriter(stream, ReportJson.WriterOptions);
        w.WriteStartObject();
        w.WriteString("method", Name(result.Method));
        w.WriteString("requested_method", q.MethodName);
        w.WriteString("states_method", Name(result.FallbackMethod ?? result.Method));
        w.WriteString("field", q.System ?? "mlp");
        w.WriteString("status", result.Status.ToString());
        w.WriteBoolean("converged", result.Converged);
        w.WriteBoolean("tolerance_met", result.Converged);
        w.WriteString("message", result.Message);
        w.WriteNumber("iterations", result.Iterations);
        w.WriteNumber("refinements", result.Refinements);
        w.WriteNumber("internal_grid_size", result.InternalGridSize);
        w.WriteStartArray("internal_grid_sizes");
        foreach (int size in result.InternalGridSizes)
        {
            w.WriteNumberValue(size);
        }

        w.WriteEndArray();
        ReportJson.Number(w, "max_residual", result.MaxResidual);
        ReportJson.Number(w, "error_estimate", result.ErrorEstimate);
        w.WriteString("error_estimate_relative_to", "atol + rtol*|y| per component: at most 1 when the tolerances are met; null when the method has no estimate (rk4)");
        w.WriteNumber("function_evaluations", result.FunctionEvaluations);
        w.WriteNumber("rejected_steps", result.RejectedSteps);
        w.WriteBoolean("fallback_used", result.FallbackReason is not null);
        if (result.FallbackReason is not null)
        {
            w.WriteString("fallback_reason", result.FallbackReason);
        }

        w.WriteNumber("solve_seconds", result.Elapsed.TotalSeconds);
        w.WriteString("dtype", dtype);
        w.WriteNumber("batch", result.BatchSize);
        w.WriteNumber("times", result.Length);
        w.WriteNumber("state_size", result.StateSize);
        w.WriteNumber("parameters", parameters);
        w.WriteNumber("cores", Environment.ProcessorCount);
        w.WriteEndObject();
    }
}
