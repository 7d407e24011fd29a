using DeerSharp.IO;

namespace DeerSharp.Onnx;

/// <summary>What a <see cref="RecurrentModule{T}"/> returns, as PyTorch's module does: output, h_n and (LSTM) c_n.</summary>
/// <param name="Output">[B, T, D·n] batch-first, or [T, B, D·n] time-major.</param>
/// <param name="FinalHidden">h_n, [L·D, B, n].</param>
/// <param name="FinalCell">c_n for an LSTM, else null.</param>
/// <param name="Run">The run: every solve, and the time.</param>
public sealed record RecurrentModuleResult(TensorData Output, TensorData FinalHidden, TensorData? FinalCell, OnnxRunResult Run);

/// <summary>
/// A PyTorch recurrent module as saved in a state_dict (nn.RNN with tanh, nn.GRU, nn.LSTM; any number of layers;
/// bidirectional or not), run by Deer as PyTorch runs it: batch_first or time-major inputs, optional h0 and c0, and
/// output, h_n and c_n. It runs as the ONNX graph <see cref="OnnxExport"/> writes for it, so a module and its ONNX export
/// compute the same thing by construction.
/// </summary>
public sealed class RecurrentModule<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly OnnxModel _model;
    private readonly OnnxModel _withStates;

    /// <summary>A module from its layers' weights: [layer][0] forward, [layer][1] reverse when bidirectional.</summary>
    public RecurrentModule(RecurrentKind kind, IReadOnlyList<IReadOnlyList<RecurrentWeights<T>>> layers, bool batchFirst = true)
    {
        Kind = kind;
        Layers = layers;
        BatchFirst = batchFirst;
        _model = OnnxModel.FromProto(OnnxExport.Build(kind, layers, batchFirst, initialStates: false), "the module");
        _withStates = OnnxModel.FromProto(OnnxExport.Build(kind, layers, batchFirst, initialStates: true), "the module");
    }

    /// <summary>Reads a PyTorch state_dict (safetensors): every layer, and both directions of a bidirectional module.</summary>
    public static RecurrentModule<T> Load(SafetensorsFile file, RecurrentKind kind, string prefix = "", bool batchFirst = true) =>
        new(kind, TorchRecurrentWeights.LoadDirections<T>(file, kind, prefix), batchFirst);

    /// <summary>The module type.</summary>
    public RecurrentKind Kind { get; }

    /// <summary>The weights, [layer][direction].</summary>
    public IReadOnlyList<IReadOnlyList<RecurrentWeights<T>>> Layers { get; }

    /// <summary>Whether inputs and outputs are [B, T, ·] (else [T, B, ·]).</summary>
    public bool BatchFirst { get; }

    /// <summary>D: 2 for a bidirectional module.</summary>
    public int Directions => Layers[0].Count;

    /// <summary>n.</summary>
    public int HiddenSize => Layers[0][0].HiddenSize;

    /// <summary>d, the input size.</summary>
    public int InputSize => Layers[0][0].InputSize;

    /// <summary>
    /// Runs the module on <paramref name="input"/> ([B, T, d] batch-first, [T, B, d] time-major) from
    /// <paramref name="h0"/> and <paramref name="c0"/> ([L·D, B, n]; null for zeros), every recurrence solved by
    /// <see cref="Deer"/>.Solve with <paramref name="options"/> (default: <see cref="SolveMethod.Auto"/>).
    /// </summary>
    public RecurrentModuleResult Run(TensorData input, TensorData? h0 = null, TensorData? c0 = null, SolveOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        bool lstm = Kind == RecurrentKind.Lstm;
        if (c0 is not null && !lstm)
        {
            throw new ArgumentException("c0 is an LSTM's initial cell state; this module is not an LSTM.", nameof(c0));
        }

        var inputs = new Dictionary<string, TensorData> { ["input"] = input };
        OnnxModel model = _model;
        if (h0 is not null || c0 is not null)
        {
            int batch = input.Rank == 3 ? input.Shape[BatchFirst ? 0 : 1] : 0;
            var zeros = TensorData.From(new T[Layers.Count * Directions * batch * HiddenSize], Layers.Count * Directions, batch, HiddenSize);
            inputs["h0"] = h0 ?? zeros;
            if (lstm)
            {
                inputs["c0"] = c0 ?? zeros;
            }

            model = _withStates;
        }

        OnnxRunResult run = model.Run(inputs, options);
        return new RecurrentModuleResult(run.Outputs["output"], run.Outputs["h_n"], lstm ? run.Outputs["c_n"] : null, run);
    }

    /// <summary>Writes the module as an ONNX model (<see cref="OnnxExport"/>), with h0 (and c0) as inputs when <paramref name="initialStates"/>.</summary>
    public void ExportOnnx(string path, bool initialStates = false) => OnnxExport.Write(path, Kind, Layers, BatchFirst, initialStates);
}
