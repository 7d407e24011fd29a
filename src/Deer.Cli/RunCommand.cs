using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using DeerSharp.IO;

namespace DeerSharp.Cli;

/// <summary>
/// `deer run`: evaluates a PyTorch nn.RNN / nn.GRU / nn.LSTM (weights from a safetensors state_dict) on .npy inputs and
/// writes what the batch_first module returns as <c>output</c>: the top layer's h at every step.
/// </summary>
internal static partial class RunCommand
{
    internal sealed record Request(string Cell, string Weights, string Inputs, string? H0, string? C0, SolveMethod Method, string? DType,
        double? Atol, double? Rtol, int? MaxIterations, string Out, string? Report, string Prefix, bool FallbackSequential,
        ComputeDevice Device = ComputeDevice.Cpu, string? Plot = null, int? BlockSize = null)
    {
        /// <summary>--model: an ONNX model to run instead of --cell and --weights.</summary>
        public string? Model { get; init; }

        /// <summary>--input NAME=FILE.npy, the model's other inputs.</summary>
        public IReadOnlyList<string> NamedInputs { get; init; } = [];

        /// <summary>--time-major: [T, B, ·] inputs and output.</summary>
        public bool TimeMajor { get; init; }
    }

    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var module = new ModuleOptions("Output .npy: [B, T, D·n] ([T, B, D·n] with --time-major), or [T, D·n] for unbatched inputs; h_n.npy (and c_n.npy) are written beside it. With --model: the graph's first output, in its own shape; its other outputs beside it, named after them.", models: true);
        var report = new Option<string?>("--report") { Description = "Write a JSON report of the solve here." };
        var plot = new Option<string?>("--plot")
        {
            Description = "Also draw the residual per iteration of DEER, quasi-DEER, damped quasi-DEER and Picard on this model and input: a .png or .svg.",
        };
        var command = new Command("run", "Evaluate a PyTorch RNN/GRU/LSTM on .npy inputs and write its output as .npy.") { report, plot };
        module.AddTo(command);
        command.SetAction(r => Execute(module.Read(r, r.GetValue(report)) with { Plot = r.GetValue(plot) }, stdout, stderr));
        return command;
    }

    private static int Execute(Request q, TextWriter stdout, TextWriter stderr)
    {
        if (q.TimeMajor && q.Cell is not ("rnn" or "gru" or "lstm"))
        {
            throw new UsageException($"--time-major applies to --cell rnn, gru or lstm, not {q.Cell}.");
        }

        if (q.Model is not null)
        {
            return ModelRun.ExecuteModel(q, stdout, stderr);
        }

        if (q.Cell.Length == 0 || q.Weights.Length == 0)
        {
            throw new UsageException("give the module to run: --cell and --weights (a PyTorch state_dict as safetensors), or --model (an ONNX model).");
        }

        if (q.NamedInputs.Count > 0)
        {
            throw new UsageException("--input NAME=FILE.npy names an input of an ONNX model; it goes with --model.");
        }

        Validate(q);
        TensorData x = ReadInputs(q);
        string dtype = q.DType ?? (x.IsDouble ? "float64" : "float32");
        return dtype == "float64" ? Execute<double>(q, x, stdout, stderr) : Execute<float>(q, x, stdout, stderr);
    }

    /// <summary>Checks the options that need no file: tolerances, limits, --c0 for an LSTM only, and the output directories.</summary>
    internal static void Validate(Request q)
    {
        if (q.Atol is { } a && (!double.IsFinite(a) || a < 0))
        {
            throw new UsageException($"--atol must be finite and non-negative; got {a.ToString(CultureInfo.InvariantCulture)}.");
        }

        if (q.Rtol is { } r && (!double.IsFinite(r) || r < 0))
        {
            throw new UsageException($"--rtol must be finite and non-negative; got {r.ToString(CultureInfo.InvariantCulture)}.");
        }

        if (q.MaxIterations is < 0)
        {
            throw new UsageException($"--max-iter must be at least 0; got {q.MaxIterations}.");
        }

        if (q.C0 is not null && q.Cell is not ("lstm" or "gilr-lstm" or "diag-lstm"))
        {
            throw new UsageException($"--c0 is only meaningful for --cell lstm, gilr-lstm or diag-lstm, not {q.Cell}.");
        }

        if (q.BlockSize is { } k && (k < 1 || q.Cell is not ("indrnn" or "diag-gru" or "diag-lstm")))
        {
            throw new UsageException(k < 1
                ? $"--block-size must be at least 1; got {k}."
                : $"--block-size applies to --cell indrnn, diag-gru or diag-lstm, not {q.Cell}.");
        }

        RequireDirectory(q.Out, "--out");
        if (q.Report is not null)
        {
            RequireDirectory(q.Report, "--report");
        }

        if (q.Plot is not null)
        {
            RequireDirectory(q.Plot, "--plot");
            if (!Path.GetExtension(q.Plot).ToLowerInvariant().Equals(".png", StringComparison.Ordinal)
                && !Path.GetExtension(q.Plot).ToLowerInvariant().Equals(".svg", StringComparison.Ordinal))
            {
                throw new UsageException($"--plot {q.Plot}: the file must end in .png or .svg.");
            }

            if (q.Cell is not ("rnn" or "gru" or "lstm"))
            {
                throw new UsageException($"--plot draws the iterations of the dense cells rnn, gru and lstm; --cell {q.Cell} is not one of them.");
            }
        }
    }

    /// <summary>Reads --inputs: [T, d] or [B, T, d], all finite.</summary>
    internal static TensorData ReadInputs(Request q)
    {
        TensorData x = ReadNpy(q.Inputs, "--inputs");
        if (x.Rank is not (2 or 3))
        {
            throw new UsageException($"--inputs {q.Inputs}: expected shape [T, d] or [B, T, d], got {x.ShapeText}.");
        }

        long bad = x.IndexOfNonFinite();
        if (bad >= 0)
        {
            throw new UsageException($"--inputs {q.Inputs}: holds NaN or infinity at {Coordinates(bad, x.Shape)}.");
        }

        return x;
    }

    internal static RecurrentKind Kind(string cell) => cell switch { "rnn" => RecurrentKind.TanhRnn, "gru" => RecurrentKind.Gru, _ => RecurrentKind.Lstm };

    internal static void CheckWidth(Request q, int expected, int d, TensorData x)
    {
        if (d != expected)
        {
            throw new UsageException(
                $"--inputs {q.Inputs}: has {d} features per step (shape {x.ShapeText}), but the bottom layer's input weights ({q.Prefix}…) expect {expected}.");
        }
    }

    /// <summary>
    /// The solve's options. An explicitly chosen method stands or fails on its own unless --fallback asks otherwise; the
    /// library falls back for auto whatever this says (SolverSettings.FallbackApplies).
    /// </summary>
    internal static SolveOptions Options(Request q, IProgress<SolveProgress>? progress) => new()
    {
        Method = q.Method,
        AbsoluteTolerance = q.Atol,
        RelativeTolerance = q.Rtol,
        MaxIterations = q.MaxIterations,
        Fallback = q.FallbackSequential ? FallbackPolicy.Sequential : FallbackPolicy.None,
        Progress = progress,
        Device = q.Device,
    };

    private static int Execute<T>(Request q, TensorData x, TextWriter stdout, TextWriter stderr)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        SafetensorsFile file = Wrap(q.Weights, "--weights", () => SafetensorsFile.Read(q.Weights));
        bool batched = x.Rank == 3;
        int batch = batched ? x.Shape[0] : 1, length = x.Shape[batched ? 1 : 0], d = x.Shape[batched ? 2 : 1];
        using TerminalProgress? progress = TerminalProgress.Create(stderr);
        SolveOptions options = Options(q, progress);
        T[] inputs = x.ToArray<T>();
        int n, numLayers;
        SolveResult<T> result;
        if (StructuredModules<T>.Handles(q.Cell))
        {
            StructuredModules<T> module = Wrap(q.Weights, "--weights", () => StructuredModules<T>.Load(file, q.Cell, q.Prefix, q.BlockSize));
            CheckWidth(q, module.InputSize, d, x);
            (n, numLayers) = (module.HiddenSize, module.Layers);
            result = module.Solve(inputs, batch, length, options, module.InitialStates(q, batch, batched));
        }
        else if (SurrogateModules<T>.Handles(q.Cell))
        {
            SurrogateModules<T> module = Wrap(q.Weights, "--weights", () => SurrogateModules<T>.Load(file, q.Cell, q.Prefix));
            CheckWidth(q, module.InputSize, d, x);
            (n, numLayers) = (module.HiddenSize, module.Layers);
            result = module.Solve(inputs, batch, length, options, module.InitialStates(q, batch, batched));
        }
        else if (q.TimeMajor || file.Contains($"{q.Prefix}weight_ih_l0_reverse"))
        {
            return ModelRun.ExecuteModule<T>(q, file, x, stdout, stderr);
        }
        else
        {
            RecurrentKind kind = Kind(q.Cell);
            RecurrentWeights<T>[] layers = Wrap(q.Weights, "--weights", () => TorchRecurrentWeights.Load<T>(file, kind, q.Prefix));
            CheckWidth(q, layers[0].InputSize, d, x);
            (n, numLayers) = (layers[^1].HiddenSize, layers.Length);
            result = Solve(kind, layers, inputs, batch, length, options, InitialStates<T>(q, layers, batch, batched));
        }

        progress?.Dispose();
        if (!result.Converged)
        {
            string hint = Engines.SolverSettings<T>.FallbackApplies(options) ? "" : " Pass --fallback sequential to fall back instead.";
            throw new NotConvergedException($"{MethodNames.Name(result.Method)} did not converge: {result.Message} Nothing was written.{hint}");
        }

        // Written as is when the whole state is the output (no copy of B·T·n values); an LSTM's h is gathered from [h; c].
        T[] outputs = result.OutputSize == result.StateSize ? result.States : result.Outputs();
        int[] shape = batched ? [batch, length, n] : [length, n];
        using var files = new AtomicFiles();
        files.Stage(q.Out, "--out", s => Npy.Write(s, TensorData.From(outputs, shape)));
        if (q.Cell is "rnn" or "gru" or "lstm")
        {
            // PyTorch's h_n (and c_n) beside the output.
            foreach ((string name, string path, TensorData data) in ModelRun.FinalStates(q, result, batched))
            {
                files.Stage(path, $"output '{name}'", s => Npy.Write(s, data));
            }
        }
        if (q.Report is not null)
        {
            files.Stage(q.Report, "--report", s => WriteReport(s, q, result, typeof(T) == typeof(double) ? "float64" : "float32", batch, length, d, n, numLayers));
        }

        if (q.Plot is not null)
        {
            ScottPlot.Plot figure = ConvergencePlot(q, file, inputs, batch, length, options);
            files.Stage(q.Plot, "--plot", s => Charts.Write(s, figure, q.Plot));
        }

        files.Commit();
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{q.Cell}, {numLayers} layer(s), B = {batch}, T = {length}, d = {d}, n = {n}: {MethodNames.Name(result.Method)} {(result.FallbackSequences == 0 ? "" : $"(sequential fallback for {result.FallbackSequences}) ")}"
            + $"{result.Status} after {result.Iterations} iteration(s), max residual {result.MaxResidual:G3}, {result.Elapsed.TotalSeconds:F3} s; wrote {q.Out}{(q.Plot is null ? "" : $" and {q.Plot}")}."));
        return 0;
    }

    /// <summary>
    /// The convergence figure: each iterative method from the same zero guess, no fallback, on the bottom layer (whose
    /// inputs are the user's), at most 200 iterations. Every line ends where its method stopped.
    /// </summary>
    private static ScottPlot.Plot ConvergencePlot<T>(Request q, SafetensorsFile file, T[] inputs, int batch, int length, SolveOptions options)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        RecurrentKind kind = Kind(q.Cell);
        RecurrentWeights<T>[] bottom = [TorchRecurrentWeights.Load<T>(file, kind, q.Prefix)[0]];
        var methods = new[] { SolveMethod.Deer, SolveMethod.QuasiDeer, SolveMethod.QuasiElk, SolveMethod.Picard };
        var series = new List<(string, IReadOnlyList<double>)>();
        foreach (SolveMethod method in methods)
        {
            var run = options with { Method = method, Fallback = FallbackPolicy.None, Progress = null, MaxIterations = Math.Min(200, options.MaxIterations ?? 200) };
            SolveResult<T> r = Solve(kind, bottom, inputs, batch, length, run, null);
            series.Add(($"{MethodNames.Name(method)}: {r.Status}", r.ResidualHistory));
        }

        double atol = Engines.SolverSettings<T>.Tolerances(options).Absolute;
        return Charts.Convergence($"Convergence: {q.Cell}, layer 0, T = {length}, B = {batch}, {(typeof(T) == typeof(float) ? "float32" : "float64")}",
            series, atol, "the residual of each iterate, max over t, batch and state (initial guess: zeros)");
    }

    internal static SolveResult<T> Solve<T>(RecurrentKind kind, RecurrentWeights<T>[] layers, T[] inputs, int batch, int length, SolveOptions options, T[]? initial)
        where T : unmanaged, IFloatingPointIeee754<T> => kind switch
    {
        RecurrentKind.TanhRnn => Deer.Solve(new StackedCells<TanhRnnCell<T>, T>([.. layers.Select(w => new TanhRnnCell<T>(w))]), inputs, batch, length, options, initial),
        RecurrentKind.Gru => Deer.Solve(new StackedCells<GruCell<T>, T>([.. layers.Select(w => new GruCell<T>(w))]), inputs, batch, length, options, initial),
        _ => Deer.Solve(new StackedCells<LstmCell<T>, T>([.. layers.Select(w => new LstmCell<T>(w))]), inputs, batch, length, options, initial),
    };

    /// <summary>Where a solve ran, as reports name it: cpu, gpu, emulated, or mixed (a stack's layers on different devices).</summary>
    internal static string BackendName(ComputeDevice device) => device switch
    {
        ComputeDevice.Gpu => "gpu",
        ComputeDevice.Emulated => "emulated",
        ComputeDevice.Auto => "mixed",
        _ => "cpu",
    };

    private static void WriteReport<T>(Stream stream, Request q, SolveResult<T> result, string dtype,
        int batch, int length, int d, int n, int numLayers)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        using var w = new Utf8JsonWriter(stream, ReportJson.WriterOptions);
        w.WriteStartObject();
        w.WriteString("method", MethodNames.Name(result.Method));
        w.WriteString("requested_method", MethodNames.Name(q.Method));
        if (result.FallbackMethod is { } fallback)
        {
            w.WriteString("fallback_method", MethodNames.Name(fallback));
        }

        w.WriteString("backend", BackendName(result.Device));
        w.WriteNumber("iterations", result.Iterations);
        w.WriteBoolean("converged", result.Converged);
        w.WriteString("status", result.Status.ToString());
        w.WriteString("message", result.Message);
        ReportJson.Number(w, "max_residual", result.MaxResidual);
        w.WriteNumber("solve_seconds", result.Elapsed.TotalSeconds);
        w.WriteBoolean("fallback_used", result.FallbackSequences > 0);
        w.WriteNumber("fallback_sequences", result.FallbackSequences);
        if (result.FallbackReason is not null)
        {
            w.WriteString("fallback_reason", result.FallbackReason);
        }

        w.WriteNumber("windows", result.Windows);
        w.WriteStartArray("residual_history");
        foreach (double v in result.ResidualHistory)
        {
            ReportJson.NumberValue(w, v);
        }

        w.WriteEndArray();
        w.WriteStartArray("layers");
        foreach (SolveResult<T> layer in result.Layers ?? [result])
        {
            w.WriteStartObject();
            w.WriteNumber("iterations", layer.Iterations);
            w.WriteBoolean("converged", layer.Converged);
            ReportJson.Number(w, "max_residual", layer.MaxResidual);
            w.WriteNumber("solve_seconds", layer.Elapsed.TotalSeconds);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteString("cell", q.Cell);
        w.WriteString("dtype", dtype);
        w.WriteNumber("num_layers", numLayers);
        w.WriteNumber("batch", batch);
        w.WriteNumber("length", length);
        w.WriteNumber("input_size", d);
        w.WriteNumber("hidden_size", n);
        w.WriteNumber("cores", Environment.ProcessorCount);
        w.WriteEndObject();
    }
}
