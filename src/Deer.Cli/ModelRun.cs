using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using DeerSharp.IO;
using DeerSharp.Onnx;

namespace DeerSharp.Cli;

/// <summary>
/// `deer run` on whole models: an ONNX file (--model), or a PyTorch module the stacked-cell path does not cover
/// (bidirectional, or --time-major), run as <see cref="RecurrentModule{T}"/>. Outputs are written as the model names them,
/// beside --out, all or nothing.
/// </summary>
internal static class ModelRun
{
    /// <summary>`deer run --model m.onnx --inputs x.npy [--input NAME=FILE.npy ...]`.</summary>
    public static int ExecuteModel(RunCommand.Request q, TextWriter stdout, TextWriter stderr)
    {
        if (q.Cell.Length > 0 || q.Weights.Length > 0 || q.H0 is not null || q.C0 is not null || q.DType is not null || q.TimeMajor || q.Plot is not null
            || q.BlockSize is not null)
        {
            throw new UsageException(
                "--model runs the ONNX graph as it is: give its inputs with --inputs and --input NAME=FILE.npy, and leave out --cell, --weights, --h0, --c0, --dtype, --time-major, --plot and --block-size.");
        }

        RunCommand.Validate(q with { Cell = "gru" });
        long loadStart = Stopwatch.GetTimestamp();
        OnnxModel model = Read(q.Model!, "--model", () => OnnxModel.Load(q.Model!));
        double loadSeconds = Stopwatch.GetElapsedTime(loadStart).TotalSeconds;
        var inputs = new Dictionary<string, TensorData>(StringComparer.Ordinal) { [model.Inputs[0].Name] = RunCommand.ReadNpy(q.Inputs, "--inputs") };
        foreach (string named in q.NamedInputs)
        {
            int equals = named.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0 || equals == named.Length - 1)
            {
                throw new UsageException($"--input {named}: expected NAME=FILE.npy.");
            }

            string name = named[..equals], file = named[(equals + 1)..];
            if (model.Inputs.All(i => i.Name != name))
            {
                throw new UsageException($"--input {named}: the model {q.Model} has no input '{name}'; its inputs are {string.Join(", ", model.Inputs.Select(i => $"'{i.Name}'"))}.");
            }

            if (!inputs.TryAdd(name, RunCommand.ReadNpy(file, $"--input {name}")))
            {
                throw new UsageException($"--input {named}: '{name}' is given twice{(name == model.Inputs[0].Name ? " (--inputs feeds the first input)" : "")}.");
            }
        }

        string[] missing = [.. model.Inputs.Where(i => !inputs.ContainsKey(i.Name)).Select(i => $"'{i.Name}' [{string.Join(", ", i.Shape.Select(d => d?.ToString(CultureInfo.InvariantCulture) ?? "·"))}]")];
        if (missing.Length > 0)
        {
            throw new UsageException($"--model {q.Model}: inputs {string.Join(", ", missing)} are not given; pass each as --input NAME=FILE.npy.");
        }

        using TerminalProgress? progress = TerminalProgress.Create(stderr);
        SolveOptions options = RunCommand.Options(q, progress);
        OnnxRunResult run = Read(q.Model!, "--model", () => model.Run(inputs, options));
        progress?.Dispose();
        if (!run.Converged)
        {
            SolveSummary failed = run.Solves.First(s => s.Status != SolveStatus.Converged);
            string hint = Engines.SolverSettings<float>.FallbackApplies(options) ? "" : " Pass --fallback sequential to fall back instead.";
            throw new NotConvergedException($"{MethodNames.Name(failed.Method)} did not converge: {failed.Message} Nothing was written.{hint}");
        }

        var outputs = model.Outputs.Select((o, i) => (o.Name, i == 0 ? q.Out : Beside(q.Out, o.Name), run.Outputs[o.Name])).ToList();
        Write(q, outputs, w => Report(w, q, run, loadSeconds));
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{q.Model}: {run.Solves.Count} solve(s) of {model.RecurrentLayers.Count} recurrent node(s), {Methods(run.Solves)}, {run.Elapsed.TotalSeconds:F3} s; wrote {string.Join(", ", outputs.Select(o => o.Item2))}."));
        return 0;
    }

    /// <summary>
    /// `deer run --cell rnn|gru|lstm` for a bidirectional module or --time-major: PyTorch's output, h_n and c_n, as
    /// <see cref="RecurrentModule{T}"/> runs them.
    /// </summary>
    public static int ExecuteModule<T>(RunCommand.Request q, SafetensorsFile file, TensorData x, TextWriter stdout, TextWriter stderr)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        RecurrentKind kind = RunCommand.Kind(q.Cell);
        RecurrentModule<T> module = RunCommand.Wrap(q.Weights, "--weights", () => RecurrentModule<T>.Load(file, kind, q.Prefix, batchFirst: !q.TimeMajor));
        bool batched = x.Rank == 3;
        int d = x.Shape[^1], layers = module.Layers.Count * module.Directions, n = module.HiddenSize;
        RunCommand.CheckWidth(q, module.InputSize, d, x);
        int batch = batched ? x.Shape[q.TimeMajor ? 1 : 0] : 1, length = x.Shape[batched && !q.TimeMajor ? 1 : 0];
        int[] inputShape = q.TimeMajor ? [length, batch, d] : [batch, length, d];
        TensorData input = TensorData.From(x.ToArray<T>(), inputShape);
        TensorData? State(string? path, string option) => path is null ? null
            : TensorData.From(RunCommand.ReadState<T>(path, option, layers, batch, n, batched), layers, batch, n);
        using TerminalProgress? progress = TerminalProgress.Create(stderr);
        SolveOptions options = RunCommand.Options(q, progress);
        RecurrentModuleResult result = module.Run(input, State(q.H0, "--h0"), State(q.C0, "--c0"), options);
        progress?.Dispose();
        if (!result.Run.Converged)
        {
            SolveSummary failed = result.Run.Solves.First(s => s.Status != SolveStatus.Converged);
            string hint = Engines.SolverSettings<T>.FallbackApplies(options) ? "" : " Pass --fallback sequential to fall back instead.";
            throw new NotConvergedException($"{MethodNames.Name(failed.Method)} did not converge: {failed.Message} Nothing was written.{hint}");
        }

        // Unbatched inputs give unbatched outputs, as PyTorch's module does.
        TensorData Unbatched(TensorData t, params int[] shape) => batched ? t : TensorData.From(t.ToArray<T>(), shape);
        var outputs = new List<(string, string, TensorData)>
        {
            ("output", q.Out, Unbatched(result.Output, length, module.Directions * n)),
            ("h_n", Beside(q.Out, "h_n"), Unbatched(result.FinalHidden, layers, n)),
        };
        if (result.FinalCell is not null)
        {
            outputs.Add(("c_n", Beside(q.Out, "c_n"), Unbatched(result.FinalCell, layers, n)));
        }

        Write(q, outputs, w => Report(w, q, result.Run, null));
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{q.Cell}, {module.Layers.Count} layer(s){(module.Directions == 2 ? ", bidirectional" : "")}, B = {batch}, T = {length}, d = {d}, n = {n}: {Methods(result.Run.Solves)}, {result.Run.Elapsed.TotalSeconds:F3} s; wrote {string.Join(", ", outputs.Select(o => o.Item2))}."));
        return 0;
    }

    /// <summary>PyTorch's h_n (and c_n) of a stack: each layer's state at the last step, [num_layers, B, n] ([num_layers, n] unbatched).</summary>
    public static List<(string, string, TensorData)> FinalStates<T>(RunCommand.Request q, SolveResult<T> result, bool batched)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        IReadOnlyList<SolveResult<T>> layers = result.Layers ?? [result];
        int batch = result.BatchSize, n = result.OutputSize, s = result.StateSize;
        var h = new T[layers.Count * batch * n];
        T[]? c = s == 2 * n ? new T[h.Length] : null;
        for (int k = 0; k < layers.Count; k++)
        {
            for (int b = 0; b < batch; b++)
            {
                ReadOnlySpan<T> last = layers[k].State(b, result.Length - 1);
                last[..n].CopyTo(h.AsSpan(((k * batch) + b) * n, n));
                if (c is not null)
                {
                    last.Slice(n, n).CopyTo(c.AsSpan(((k * batch) + b) * n, n));
                }
            }
        }

        int[] shape = batched ? [layers.Count, batch, n] : [layers.Count, n];
        var files = new List<(string, string, TensorData)> { ("h_n", Beside(q.Out, "h_n"), TensorData.From(h, shape)) };
        if (c is not null)
        {
            files.Add(("c_n", Beside(q.Out, "c_n"), TensorData.From(c, shape)));
        }

        return files;
    }

    /// <summary>The file for output <paramref name="name"/> beside --out: NAME.npy in --out's directory (characters a file name cannot hold become '_').</summary>
    public static string Beside(string output, string name)
    {
        string safe = string.Concat(name.Select(ch => char.IsLetterOrDigit(ch) || ch is '_' or '-' or '.' ? ch : '_'));
        return Path.Combine(Path.GetDirectoryName(Path.GetFullPath(output))!, safe + ".npy");
    }

    private static void Write(RunCommand.Request q, IReadOnlyList<(string Name, string Path, TensorData Data)> outputs, Action<Utf8JsonWriter> report)
    {
        using var files = new AtomicFiles();
        foreach ((string name, string path, TensorData data) in outputs)
        {
            files.Stage(path, path == q.Out ? "--out" : $"output '{name}'", s => Npy.Write(s, data));
        }

        if (q.Report is not null)
        {
            files.Stage(q.Report, "--report", s =>
            {
                using var w = new Utf8JsonWriter(s, ReportJson.WriterOptions);
                report(w);
            });
        }

        files.Commit();
    }

    private static void Report(Utf8JsonWriter w, RunCommand.Request q, OnnxRunResult run, double? loadSeconds)
    {
        w.WriteStartObject();
        w.WriteString("model", q.Model ?? q.Weights);
        w.WriteString("requested_method", MethodNames.Name(q.Method));
        w.WriteBoolean("converged", run.Converged);
        w.WriteNumber("solve_seconds", run.Elapsed.TotalSeconds);
        if (loadSeconds is { } load)
        {
            w.WriteNumber("load_seconds", load);   // reading and checking the .onnx file, before the solve
        }

        ReportJson.Rows(w, "solves", run.Solves, s => [("method", MethodNames.Name(s.Method)), ("fallback_method", s.FallbackMethod is { } f ? MethodNames.Name(f) : null),
            ("status", s.Status.ToString()), ("iterations", s.Iterations), ("max_residual", s.MaxResidual), ("sequences", s.Sequences), ("steps", s.Steps), ("message", s.Message)]);
        w.WriteEndObject();
    }

    private static string Methods(IReadOnlyList<SolveSummary> solves) =>
        string.Join(", ", solves.GroupBy(s => (s.Method, s.FallbackMethod)).Select(g => $"{MethodNames.Name(g.Key.Method)}{(g.Key.FallbackMethod is null ? "" : " (sequential fallback)")} ×{g.Count()}"));

    /// <summary>Turns a model's failure into one line naming the option and the file.</summary>
    private static TResult Read<TResult>(string path, string option, Func<TResult> read)
    {
        try
        {
            return read();
        }
        catch (OnnxModelException e)
        {
            throw new UsageException($"{option} {path}: {(e.Message.StartsWith(path, StringComparison.Ordinal) ? e.Message[path.Length..].TrimStart(':', ' ') : e.Message)}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"{option} {path}: cannot read it ({(e is FileNotFoundException or DirectoryNotFoundException ? "no such file" : e.Message)}).");
        }
    }
}
