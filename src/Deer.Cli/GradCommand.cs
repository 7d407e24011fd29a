using System.CommandLine;
using System.Globalization;
using DeerSharp.IO;

namespace DeerSharp.Cli;

/// <summary>
/// `deer grad`: the gradients PyTorch's autograd gives for output.backward(C) on a batch_first nn.RNN / nn.GRU / nn.LSTM:
/// one tensor per weight key, named as in the weights file, plus "inputs" (and "h0" / "c0" when they were given).
/// </summary>
internal static class GradCommand
{
    public static Command Create(TextWriter stdout)
    {
        var module = new ModuleOptions("Output safetensors of gradients.");
        var cotangent = new Option<string>("--cotangent") { Description = "dL/d(output) as .npy, shaped like deer run's output.", Required = true };
        var command = new Command("grad", "Gradients of a PyTorch RNN/GRU/LSTM for a given dL/d(output), as autograd's output.backward(C).") { cotangent };
        module.AddTo(command);
        command.SetAction(r => Execute(module.Read(r, report: null), r.GetValue(cotangent)!, stdout));
        return command;
    }

    private static int Execute(RunCommand.Request q, string cotangentPath, TextWriter stdout)
    {
        RunCommand.Validate(q);
        TensorData x = RunCommand.ReadInputs(q);
        string dtype = q.DType ?? (x.IsDouble ? "float64" : "float32");
        return dtype == "float64" ? Execute<double>(q, x, cotangentPath, stdout) : Execute<float>(q, x, cotangentPath, stdout);
    }

    private static int Execute<T>(RunCommand.Request q, TensorData x, string cotangentPath, TextWriter stdout)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        SafetensorsFile file = RunCommand.Wrap(q.Weights, "--weights", () => SafetensorsFile.Read(q.Weights));
        bool batched = x.Rank == 3;
        int batch = batched ? x.Shape[0] : 1, length = x.Shape[batched ? 1 : 0], d = x.Shape[batched ? 2 : 1];
        bool surrogate = SurrogateModules<T>.Handles(q.Cell), structured = StructuredModules<T>.Handles(q.Cell);
        SurrogateModules<T>? module = surrogate ? RunCommand.Wrap(q.Weights, "--weights", () => SurrogateModules<T>.Load(file, q.Cell, q.Prefix)) : null;
        StructuredModules<T>? blocks = structured ? RunCommand.Wrap(q.Weights, "--weights", () => StructuredModules<T>.Load(file, q.Cell, q.Prefix, q.BlockSize)) : null;
        RecurrentKind kind = surrogate || structured ? default : RunCommand.Kind(q.Cell);
        RecurrentWeights<T>[] layers = surrogate || structured ? [] : RunCommand.Wrap(q.Weights, "--weights", () => TorchRecurrentWeights.Load<T>(file, kind, q.Prefix));
        int n = module?.HiddenSize ?? blocks?.HiddenSize ?? layers[^1].HiddenSize, numLayers = module?.Layers ?? blocks?.Layers ?? layers.Length;
        RunCommand.CheckWidth(q, module?.InputSize ?? blocks?.InputSize ?? layers[0].InputSize, d, x);
        TensorData c = RunCommand.ReadNpy(cotangentPath, "--cotangent");
        int[] expected = batched ? [batch, length, n] : [length, n];
        if (!c.Shape.SequenceEqual(expected))
        {
            throw new UsageException($"--cotangent {cotangentPath}: expected shape [{string.Join(", ", expected)}] (the output's), got {c.ShapeText}.");
        }

        if (c.IndexOfNonFinite() is var bad and >= 0)
        {
            throw new UsageException($"--cotangent {cotangentPath}: holds NaN or infinity at flat index {bad}.");
        }

        T[]? initial = module is not null ? module.InitialStates(q, batch, batched)
            : blocks is not null ? blocks.InitialStates(q, batch, batched)
            : RunCommand.InitialStates<T>(q, layers, batch, batched);
        SolveOptions options = RunCommand.Options(q, progress: null);
        T[] inputs = x.ToArray<T>(), cotangent = c.ToArray<T>();
        GradientResult<T> g;
        try
        {
            g = module is not null ? module.Gradient(inputs, batch, length, cotangent, options, initial)
                : blocks is not null ? blocks.Gradient(inputs, batch, length, cotangent, options, initial)
                : kind switch
            {
                RecurrentKind.TanhRnn => Deer.Gradient(new StackedCells<TanhRnnCell<T>, T>([.. layers.Select(w => new TanhRnnCell<T>(w))]), inputs, batch, length, cotangent, options, null, initial),
                RecurrentKind.Gru => Deer.Gradient(new StackedCells<GruCell<T>, T>([.. layers.Select(w => new GruCell<T>(w))]), inputs, batch, length, cotangent, options, null, initial),
                _ => Deer.Gradient(new StackedCells<LstmCell<T>, T>([.. layers.Select(w => new LstmCell<T>(w))]), inputs, batch, length, cotangent, options, null, initial),
            };
        }
        catch (InvalidOperationException e)
        {
            string hint = Engines.SolverSettings<T>.FallbackApplies(options) ? "" : " Pass --fallback sequential to fall back instead.";
            throw new NotConvergedException($"{e.Message} Nothing was written.{hint}");
        }

        var tensors = new Dictionary<string, TensorData>();
        if (module is not null)
        {
            module.AddGradients(g, tensors);
            module.AddInitialStateGradients(q, g, batch, batched, tensors);
        }
        else if (blocks is not null)
        {
            blocks.AddGradients(g, tensors);
            blocks.AddInitialStateGradients(q, g, batch, batched, tensors);
        }
        else
        {
            AddRecurrentGradients(q, file, kind, layers, g, batch, batched, tensors);
        }

        tensors["inputs"] = TensorData.From(g.InputGradient, [.. x.Shape]);
        using var files = new AtomicFiles();
        files.Stage(q.Out, "--out", stream => SafetensorsFile.Write(stream, tensors));
        files.Commit();
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{q.Cell}, {numLayers} layer(s), B = {batch}, T = {length}: forward {MethodNames.Name(g.Forward.Method)} ({g.Forward.Iterations} iteration(s)), adjoint {g.Adjoint}; wrote {tensors.Count} gradient tensors to {q.Out}."));
        return 0;
    }

    private static void AddRecurrentGradients<T>(RunCommand.Request q, SafetensorsFile file, RecurrentKind kind, RecurrentWeights<T>[] layers,
        GradientResult<T> g, int batch, bool batched, Dictionary<string, TensorData> tensors)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int gates = TorchRecurrentWeights.Gates(kind), numLayers = layers.Length, n = layers[^1].HiddenSize;
        for (int k = 0; k < numLayers; k++)
        {
            RecurrentWeights<T> w = layers[k];
            var (gih, ghh, gbi, gbh) = w.SplitGradient(g.LayerParameterGradients[k]);
            string Key(string name) => string.Create(CultureInfo.InvariantCulture, $"{q.Prefix}{name}_l{k}");
            tensors[Key("weight_ih")] = TensorData.From(gih, gates * w.HiddenSize, w.InputSize);
            tensors[Key("weight_hh")] = TensorData.From(ghh, gates * w.HiddenSize, w.HiddenSize);
            if (file.Contains(Key("bias_ih")))
            {
                tensors[Key("bias_ih")] = TensorData.From(gbi, gates * w.HiddenSize);
                tensors[Key("bias_hh")] = TensorData.From(gbh, gates * w.HiddenSize);
            }
        }

        int s = kind == RecurrentKind.Lstm ? 2 * n : n;
        int[] stateShape = batched ? [numLayers, batch, n] : [numLayers, n];
        if (q.H0 is not null)
        {
            tensors["h0"] = TensorData.From(StatePart(g.InitialStateGradient, numLayers * batch, s, 0, n), stateShape);
        }

        if (q.C0 is not null)
        {
            tensors["c0"] = TensorData.From(StatePart(g.InitialStateGradient, numLayers * batch, s, n, n), stateShape);
        }
    }

    private static T[] StatePart<T>(T[] states, int rows, int stride, int offset, int width)
    {
        var part = new T[rows * width];
        for (int r = 0; r < rows; r++)
        {
            states.AsSpan(r * stride + offset, width).CopyTo(part.AsSpan(r * width, width));
        }

        return part;
    }
}
