using System.Globalization;
using DeerSharp.IO;

namespace DeerSharp.Cli;

/// <summary>
/// `deer run` and `deer grad` for the structured cells: indrnn (<see cref="IndRnnCell{T}"/>), diag-gru
/// (<see cref="DiagonalGruCell{T}"/>) and diag-lstm (<see cref="DiagonalLstmCell{T}"/>), whose weight_hh is [G·n, k].
/// </summary>
internal sealed class StructuredModules<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly string _cell;
    private readonly StructuredWeights<T>[] _layers;
    private readonly SafetensorsFile _file;
    private readonly string _prefix;

    private StructuredModules(string cell, StructuredWeights<T>[] layers, SafetensorsFile file, string prefix) =>
        (_cell, _layers, _file, _prefix) = (cell, layers, file, prefix);

    public static bool Handles(string cell) => cell is "indrnn" or "diag-gru" or "diag-lstm";

    private static int Gates(string cell) => cell switch { "indrnn" => 1, "diag-gru" => 3, _ => 4 };

    public static StructuredModules<T> Load(SafetensorsFile file, string cell, string prefix, int? blockSize) =>
        new(cell, StructuredRecurrentWeights.Load<T>(file, Gates(cell), prefix, blockSize), file, prefix);

    private bool IsLstm => _cell == "diag-lstm";

    public int Layers => _layers.Length;

    public int InputSize => _layers[0].InputSize;

    public int HiddenSize => _layers[^1].HiddenSize;

    public int BlockSize => _layers[0].BlockSize;

    private int StateSize => IsLstm ? 2 * HiddenSize : HiddenSize;

    public SolveResult<T> Solve(T[] inputs, int batch, int length, SolveOptions options, T[]? initial) => _cell switch
    {
        "indrnn" => Deer.Solve(new StackedCells<IndRnnCell<T>, T>([.. _layers.Select(w => new IndRnnCell<T>(w))]), inputs, batch, length, options, initial),
        "diag-gru" => Deer.Solve(new StackedCells<DiagonalGruCell<T>, T>([.. _layers.Select(w => new DiagonalGruCell<T>(w))]), inputs, batch, length, options, initial),
        _ => Deer.Solve(new StackedCells<DiagonalLstmCell<T>, T>([.. _layers.Select(w => new DiagonalLstmCell<T>(w))]), inputs, batch, length, options, initial),
    };

    public GradientResult<T> Gradient(T[] inputs, int batch, int length, T[] cotangent, SolveOptions options, T[]? initial) => _cell switch
    {
        "indrnn" => Deer.Gradient(new StackedCells<IndRnnCell<T>, T>([.. _layers.Select(w => new IndRnnCell<T>(w))]), inputs, batch, length, cotangent, options, null, initial),
        "diag-gru" => Deer.Gradient(new StackedCells<DiagonalGruCell<T>, T>([.. _layers.Select(w => new DiagonalGruCell<T>(w))]), inputs, batch, length, cotangent, options, null, initial),
        _ => Deer.Gradient(new StackedCells<DiagonalLstmCell<T>, T>([.. _layers.Select(w => new DiagonalLstmCell<T>(w))]), inputs, batch, length, cotangent, options, null, initial),
    };

    /// <summary>Gradient tensors named and shaped as the weights file holds them (a 1-D weight_hh stays 1-D).</summary>
    public void AddGradients(GradientResult<T> g, Dictionary<string, TensorData> tensors)
    {
        for (int k = 0; k < Layers; k++)
        {
            StructuredWeights<T> w = _layers[k];
            var (gih, ghh, gbi, gbh) = w.SplitGradient(g.LayerParameterGradients[k]);
            string Key(string name) => string.Create(CultureInfo.InvariantCulture, $"{_prefix}{name}_l{k}");
            int rows = w.Gates * w.HiddenSize;
            tensors[Key("weight_ih")] = TensorData.From(gih, rows, w.InputSize);
            tensors[Key("weight_hh")] = _file.Describe(Key("weight_hh")).Shape.Count == 1 ? TensorData.From(ghh, [rows]) : TensorData.From(ghh, rows, w.BlockSize);
            if (_file.Contains(Key("bias_ih")))
            {
                tensors[Key("bias_ih")] = TensorData.From(gbi, rows);
                tensors[Key("bias_hh")] = TensorData.From(gbh, rows);
            }
        }
    }

    /// <summary>[layers, B, S] from --h0 (and --c0 for diag-lstm), each [num_layers, B, n] or [num_layers, n] unbatched.</summary>
    public T[]? InitialStates(RunCommand.Request q, int batch, bool batched)
    {
        return ModuleStates.Read<T>(q, Layers, batch, HiddenSize, StateSize, hOffset: 0, cOffset: HiddenSize, batched);
    }

    /// <summary>∂L/∂h0 and ∂L/∂c0 in the shapes of --h0 and --c0.</summary>
    public void AddInitialStateGradients(RunCommand.Request q, GradientResult<T> g, int batch, bool batched, Dictionary<string, TensorData> tensors)
    {
        ModuleStates.AddGradients(q, g, Layers, batch, HiddenSize, StateSize, hOffset: 0, cOffset: HiddenSize, batched, tensors);
    }
}
