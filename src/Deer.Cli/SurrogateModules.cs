using DeerSharp.IO;

namespace DeerSharp.Cli;

/// <summary>`deer run` and `deer grad` for the linear-surrogate cells, GILR and GILR-LSTM (DeerSharp.IO.LinearSurrogateWeights).</summary>
internal sealed class SurrogateModules<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly GilrWeights<T>[] _gilr = [];
    private readonly GilrLstmWeights<T>[] _lstm = [];
    private readonly IReadOnlyList<string> _prefixes;

    private SurrogateModules(GilrWeights<T>[] gilr, GilrLstmWeights<T>[] lstm, IReadOnlyList<string> prefixes) =>
        (_gilr, _lstm, _prefixes) = (gilr, lstm, prefixes);

    public static bool Handles(string cell) => cell is "gilr" or "gilr-lstm";

    public static SurrogateModules<T> Load(SafetensorsFile file, string cell, string prefix) => cell == "gilr"
        ? new(LinearSurrogateWeights.LoadGilr<T>(file, prefix), [], LinearSurrogateWeights.Layers(file, prefix, "gate.weight"))
        : new([], LinearSurrogateWeights.LoadGilrLstm<T>(file, prefix), LinearSurrogateWeights.Layers(file, prefix, "surrogate.gate.weight"));

    private bool IsLstm => _lstm.Length > 0;

    public int Layers => IsLstm ? _lstm.Length : _gilr.Length;

    public int InputSize => IsLstm ? _lstm[0].InputSize : _gilr[0].InputSize;

    public int HiddenSize => IsLstm ? _lstm[^1].HiddenSize : _gilr[^1].HiddenSize;

    private int StateSize => IsLstm ? 3 * HiddenSize : HiddenSize;

    public SolveResult<T> Solve(T[] inputs, int batch, int length, SolveOptions options, T[]? initial) => IsLstm
        ? Deer.Solve(new StackedCells<GilrLstmCell<T>, T>([.. _lstm.Select(w => new GilrLstmCell<T>(w))]), inputs, batch, length, options, initial)
        : Deer.Solve(new StackedCells<GilrCell<T>, T>([.. _gilr.Select(w => new GilrCell<T>(w))]), inputs, batch, length, options, initial);

    public GradientResult<T> Gradient(T[] inputs, int batch, int length, T[] cotangent, SolveOptions options, T[]? initial) => IsLstm
        ? Deer.Gradient(new StackedCells<GilrLstmCell<T>, T>([.. _lstm.Select(w => new GilrLstmCell<T>(w))]), inputs, batch, length, cotangent, options, null, initial)
        : Deer.Gradient(new StackedCells<GilrCell<T>, T>([.. _gilr.Select(w => new GilrCell<T>(w))]), inputs, batch, length, cotangent, options, null, initial);

    /// <summary>Gradient tensors named as the weights file names them.</summary>
    public void AddGradients(GradientResult<T> g, Dictionary<string, TensorData> tensors)
    {
        for (int k = 0; k < Layers; k++)
        {
            string p = _prefixes[k];
            if (IsLstm)
            {
                GilrLstmWeights<T> w = _lstm[k];
                var (surrogate, wih, whh, bias) = w.SplitGradient(g.LayerParameterGradients[k]);
                AddGilr(w.Surrogate, surrogate, p + "surrogate.", tensors);
                tensors[p + "weight_ih"] = TensorData.From(wih, 4 * w.HiddenSize, w.InputSize);
                tensors[p + "weight_hh"] = TensorData.From(whh, 4 * w.HiddenSize, w.HiddenSize);
                tensors[p + "bias"] = TensorData.From(bias, 4 * w.HiddenSize);
            }
            else
            {
                AddGilr(_gilr[k], g.LayerParameterGradients[k], p, tensors);
            }
        }
    }

    private static void AddGilr(GilrWeights<T> w, ReadOnlySpan<T> gradient, string p, Dictionary<string, TensorData> tensors)
    {
        var (gw, gb, iw, ib) = w.SplitGradient(gradient);
        tensors[p + "gate.weight"] = TensorData.From(gw, w.HiddenSize, w.InputSize);
        tensors[p + "gate.bias"] = TensorData.From(gb, w.HiddenSize);
        tensors[p + "impulse.weight"] = TensorData.From(iw, w.HiddenSize, w.InputSize);
        tensors[p + "impulse.bias"] = TensorData.From(ib, w.HiddenSize);
    }

    /// <summary>
    /// [layers, B, S] from --h0 (GILR's h; GILR-LSTM's surrogate h~, its h never feeding back) and --c0 (GILR-LSTM's c),
    /// each [num_layers, B, n] or [num_layers, n] unbatched.
    /// </summary>
    public T[]? InitialStates(RunCommand.Request q, int batch, bool batched)
    {
        if (q.C0 is not null && !IsLstm)
        {
            throw new UsageException("--c0 is only meaningful for --cell gilr-lstm (or lstm), not gilr.");
        }

        return ModuleStates.Read<T>(q, Layers, batch, HiddenSize, StateSize, hOffset: IsLstm ? HiddenSize : 0, cOffset: 2 * HiddenSize, batched);
    }

    /// <summary>∂L/∂h0 and ∂L/∂c0 in the shapes of --h0 and --c0.</summary>
    public void AddInitialStateGradients(RunCommand.Request q, GradientResult<T> g, int batch, bool batched, Dictionary<string, TensorData> tensors)
    {
        ModuleStates.AddGradients(q, g, Layers, batch, HiddenSize, StateSize, hOffset: IsLstm ? HiddenSize : 0, cOffset: 2 * HiddenSize, batched, tensors);
    }
}
