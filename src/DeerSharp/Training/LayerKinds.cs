using System.Globalization;

namespace DeerSharp.Training;

/// <summary>How a <see cref="SequenceClassifier{TLayers, TCell, T}"/> makes, names and rebuilds the layers of one cell type.</summary>
public interface ILayerKind<TCell, T>
    where TCell : IDifferentiableCell<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Adds layer <paramref name="layer"/>'s randomly initialised parameters to <paramref name="parameters"/>.</summary>
    void Add(ParameterSet<T> parameters, int layer, int inputSize, int hiddenSize, Random random);

    /// <summary>Builds layer <paramref name="layer"/>'s cell from the current parameter values.</summary>
    TCell Build(ParameterSet<T> parameters, int layer, int inputSize, int hiddenSize);

    /// <summary>Copies the cell's flat gradient into layer <paramref name="layer"/>'s arrays of <paramref name="gradients"/>.</summary>
    void Scatter(ReadOnlySpan<T> gradient, ParameterSet<T> gradients, int layer);

    /// <summary>
    /// Chrono initialisation (Tallec &amp; Ollivier, 2018): sets the biases of the gates that keep the state (forget, update,
    /// GILR's gate) to log U(1, <paramref name="maxTimescale"/> - 1) and of the input gates to minus that, so the layer
    /// starts out remembering over timescales up to <paramref name="maxTimescale"/>. Long-memory tasks need it.
    /// </summary>
    void Chrono(ParameterSet<T> parameters, int layer, int hiddenSize, double maxTimescale, Random random);
}

/// <summary>Chrono initialisation's draws: log U(1, T - 1).</summary>
internal static class Chrono
{
    public static T Draw<T>(Random random, double maxTimescale)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        T.CreateTruncating(Math.Log(1 + random.NextDouble() * Math.Max(0, maxTimescale - 2)));
}

/// <summary>Names layer parameters as PyTorch's recurrent modules do: weight_ih_l0, …</summary>
internal static class LayerNames
{
    public static string Of(string name, int layer) => string.Create(CultureInfo.InvariantCulture, $"{name}_l{layer}");

    public static void Scatter<T>(ReadOnlySpan<T> gradient, ParameterSet<T> gradients, int layer, params string[] names)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int offset = 0;
        foreach (string name in names)
        {
            T[] target = gradients[Of(name, layer)];
            gradient.Slice(offset, target.Length).CopyTo(target);
            offset += target.Length;
        }
    }
}

/// <summary>PyTorch-style GRU layers.</summary>
public readonly struct GruLayers<T> : ILayerKind<GruCell<T>, T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public void Add(ParameterSet<T> parameters, int layer, int inputSize, int hiddenSize, Random random) =>
        RecurrentLayers.Add(parameters, layer, 3, inputSize, hiddenSize, random);

    /// <inheritdoc/>
    public GruCell<T> Build(ParameterSet<T> parameters, int layer, int inputSize, int hiddenSize) =>
        new(RecurrentLayers.Weights(parameters, layer, 3, inputSize, hiddenSize));

    /// <inheritdoc/>
    public void Scatter(ReadOnlySpan<T> gradient, ParameterSet<T> gradients, int layer) =>
        LayerNames.Scatter(gradient, gradients, layer, "weight_ih", "weight_hh", "bias_ih", "bias_hh");

    /// <summary>The update gate z keeps the state (h' = (1 - z) n + z h): its biases get the chrono draws.</summary>
    public void Chrono(ParameterSet<T> parameters, int layer, int hiddenSize, double maxTimescale, Random random)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        T[] bi = parameters[LayerNames.Of("bias_ih", layer)], bh = parameters[LayerNames.Of("bias_hh", layer)];
        for (int j = 0; j < hiddenSize; j++)
        {
            bi[hiddenSize + j] = Training.Chrono.Draw<T>(random, maxTimescale);
            bh[hiddenSize + j] = T.Zero;
        }
    }
}

/// <summary>PyTorch-style LSTM layers.</summary>
public readonly struct LstmLayers<T> : ILayerKind<LstmCell<T>, T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public void Add(ParameterSet<T> parameters, int layer, int inputSize, int hiddenSize, Random random) =>
        RecurrentLayers.Add(parameters, layer, 4, inputSize, hiddenSize, random);

    /// <inheritdoc/>
    public LstmCell<T> Build(ParameterSet<T> parameters, int layer, int inputSize, int hiddenSize) =>
        new(RecurrentLayers.Weights(parameters, layer, 4, inputSize, hiddenSize));

    /// <inheritdoc/>
    public void Scatter(ReadOnlySpan<T> gradient, ParameterSet<T> gradients, int layer) =>
        LayerNames.Scatter(gradient, gradients, layer, "weight_ih", "weight_hh", "bias_ih", "bias_hh");

    /// <summary>Forget-gate biases (b_ih + b_hh) get the chrono draws, input-gate biases minus them.</summary>
    public void Chrono(ParameterSet<T> parameters, int layer, int hiddenSize, double maxTimescale, Random random)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        T[] bi = parameters[LayerNames.Of("bias_ih", layer)], bh = parameters[LayerNames.Of("bias_hh", layer)];
        for (int j = 0; j < hiddenSize; j++)
        {
            T v = Training.Chrono.Draw<T>(random, maxTimescale);
            bi[hiddenSize + j] = v;
            bi[j] = -v;
            bh[hiddenSize + j] = bh[j] = T.Zero;
        }
    }
}

/// <summary>GILR-LSTM layers (Martin &amp; Cundy): a GILR surrogate, then LSTM-style gates reading it.</summary>
public readonly struct GilrLstmLayers<T> : ILayerKind<GilrLstmCell<T>, T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private static readonly string[] Names =
        ["surrogate.gate.weight", "surrogate.gate.bias", "surrogate.impulse.weight", "surrogate.impulse.bias", "weight_ih", "weight_hh", "bias"];

    /// <inheritdoc/>
    public void Add(ParameterSet<T> parameters, int layer, int inputSize, int hiddenSize, Random random)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var w = GilrLstmWeights<T>.Random(hiddenSize, inputSize, random);
        int n = hiddenSize, d = inputSize;
        parameters.Add(LayerNames.Of(Names[0], layer), w.Surrogate.GateWeight, n, d);
        parameters.Add(LayerNames.Of(Names[1], layer), w.Surrogate.GateBias, n);
        parameters.Add(LayerNames.Of(Names[2], layer), w.Surrogate.ImpulseWeight, n, d);
        parameters.Add(LayerNames.Of(Names[3], layer), w.Surrogate.ImpulseBias, n);
        parameters.Add(LayerNames.Of(Names[4], layer), w.WeightIH, 4 * n, d);
        parameters.Add(LayerNames.Of(Names[5], layer), w.WeightHH, 4 * n, n);
        parameters.Add(LayerNames.Of(Names[6], layer), w.Bias, 4 * n);
    }

    /// <inheritdoc/>
    public GilrLstmCell<T> Build(ParameterSet<T> parameters, int layer, int inputSize, int hiddenSize)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        T[] P(int k) => parameters[LayerNames.Of(Names[k], layer)];
        var surrogate = new GilrWeights<T>(hiddenSize, inputSize, P(0), P(1), P(2), P(3));
        return new GilrLstmCell<T>(new GilrLstmWeights<T>(surrogate, P(4), P(5), P(6)));
    }

    /// <inheritdoc/>
    public void Scatter(ReadOnlySpan<T> gradient, ParameterSet<T> gradients, int layer) => LayerNames.Scatter(gradient, gradients, layer, Names);

    /// <summary>The surrogate's gate and the forget gate get the chrono draws, the input gate minus the forget gate's.</summary>
    public void Chrono(ParameterSet<T> parameters, int layer, int hiddenSize, double maxTimescale, Random random)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        T[] gate = parameters[LayerNames.Of(Names[1], layer)], bias = parameters[LayerNames.Of(Names[6], layer)];
        for (int j = 0; j < hiddenSize; j++)
        {
            gate[j] = Training.Chrono.Draw<T>(random, maxTimescale);
            T v = Training.Chrono.Draw<T>(random, maxTimescale);
            bias[hiddenSize + j] = v;
            bias[j] = -v;
        }
    }
}

/// <summary>IndRNN layers with W_hh in k×k blocks (<see cref="IndRnnCell{T}"/>); the default is diagonal (k = 1).</summary>
/// <param name="blockSize">k, which must divide the hidden size; 0 means 1.</param>
public readonly struct IndRnnLayers<T>(int blockSize) : ILayerKind<IndRnnCell<T>, T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>k.</summary>
    public int BlockSize => Math.Max(1, blockSize);

    /// <inheritdoc/>
    public void Add(ParameterSet<T> parameters, int layer, int inputSize, int hiddenSize, Random random) =>
        StructuredLayers.Add(parameters, layer, 1, inputSize, hiddenSize, BlockSize, random);

    /// <inheritdoc/>
    public IndRnnCell<T> Build(ParameterSet<T> parameters, int layer, int inputSize, int hiddenSize) =>
        new(StructuredLayers.Weights(parameters, layer, 1, inputSize, hiddenSize, BlockSize));

    /// <inheritdoc/>
    public void Scatter(ReadOnlySpan<T> gradient, ParameterSet<T> gradients, int layer) =>
        LayerNames.Scatter(gradient, gradients, layer, "weight_ih", "weight_hh", "bias_ih", "bias_hh");

    /// <summary>IndRNN has no gate to hold its state: nothing to set.</summary>
    public void Chrono(ParameterSet<T> parameters, int layer, int hiddenSize, double maxTimescale, Random random)
    {
    }
}

/// <summary>Diagonal GRU layers with W_hh in k×k blocks (<see cref="DiagonalGruCell{T}"/>); the default is diagonal (k = 1).</summary>
/// <param name="blockSize">k, which must divide the hidden size; 0 means 1.</param>
public readonly struct DiagonalGruLayers<T>(int blockSize) : ILayerKind<DiagonalGruCell<T>, T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>k.</summary>
    public int BlockSize => Math.Max(1, blockSize);

    /// <inheritdoc/>
    public void Add(ParameterSet<T> parameters, int layer, int inputSize, int hiddenSize, Random random) =>
        StructuredLayers.Add(parameters, layer, 3, inputSize, hiddenSize, BlockSize, random);

    /// <inheritdoc/>
    public DiagonalGruCell<T> Build(ParameterSet<T> parameters, int layer, int inputSize, int hiddenSize) =>
        new(StructuredLayers.Weights(parameters, layer, 3, inputSize, hiddenSize, BlockSize));

    /// <inheritdoc/>
    public void Scatter(ReadOnlySpan<T> gradient, ParameterSet<T> gradients, int layer) =>
        LayerNames.Scatter(gradient, gradients, layer, "weight_ih", "weight_hh", "bias_ih", "bias_hh");

    /// <summary>As <see cref="GruLayers{T}"/>: the update gate's biases get the chrono draws.</summary>
    public void Chrono(ParameterSet<T> parameters, int layer, int hiddenSize, double maxTimescale, Random random) =>
        default(GruLayers<T>).Chrono(parameters, layer, hiddenSize, maxTimescale, random);
}

/// <summary>Diagonal LSTM layers with W_hh in k×k blocks (<see cref="DiagonalLstmCell{T}"/>); the default is diagonal (k = 1).</summary>
/// <param name="blockSize">k, which must divide the hidden size; 0 means 1.</param>
public readonly struct DiagonalLstmLayers<T>(int blockSize) : ILayerKind<DiagonalLstmCell<T>, T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>k.</summary>
    public int BlockSize => Math.Max(1, blockSize);

    /// <inheritdoc/>
    public void Add(ParameterSet<T> parameters, int layer, int inputSize, int hiddenSize, Random random) =>
        StructuredLayers.Add(parameters, layer, 4, inputSize, hiddenSize, BlockSize, random);

    /// <inheritdoc/>
    public DiagonalLstmCell<T> Build(ParameterSet<T> parameters, int layer, int inputSize, int hiddenSize) =>
        new(StructuredLayers.Weights(parameters, layer, 4, inputSize, hiddenSize, BlockSize));

    /// <inheritdoc/>
    public void Scatter(ReadOnlySpan<T> gradient, ParameterSet<T> gradients, int layer) =>
        LayerNames.Scatter(gradient, gradients, layer, "weight_ih", "weight_hh", "bias_ih", "bias_hh");

    /// <summary>As <see cref="LstmLayers{T}"/>: forget-gate biases get the chrono draws, input-gate biases minus them.</summary>
    public void Chrono(ParameterSet<T> parameters, int layer, int hiddenSize, double maxTimescale, Random random) =>
        default(LstmLayers<T>).Chrono(parameters, layer, hiddenSize, maxTimescale, random);
}

internal static class StructuredLayers
{
    public static void Add<T>(ParameterSet<T> parameters, int layer, int gates, int inputSize, int hiddenSize, int blockSize, Random random)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var w = StructuredWeights<T>.Random(gates, hiddenSize, inputSize, blockSize, random);
        parameters.Add(LayerNames.Of("weight_ih", layer), w.WeightIH, gates * hiddenSize, inputSize);
        parameters.Add(LayerNames.Of("weight_hh", layer), w.WeightHH, gates * hiddenSize, blockSize);
        parameters.Add(LayerNames.Of("bias_ih", layer), w.BiasIH, gates * hiddenSize);
        parameters.Add(LayerNames.Of("bias_hh", layer), w.BiasHH, gates * hiddenSize);
    }

    public static StructuredWeights<T> Weights<T>(ParameterSet<T> parameters, int layer, int gates, int inputSize, int hiddenSize, int blockSize)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(parameters);
        return new StructuredWeights<T>(gates, hiddenSize, inputSize, blockSize, parameters[LayerNames.Of("weight_ih", layer)],
            parameters[LayerNames.Of("weight_hh", layer)], parameters[LayerNames.Of("bias_ih", layer)], parameters[LayerNames.Of("bias_hh", layer)]);
    }
}

internal static class RecurrentLayers
{
    /// <summary>A dense layer is the structured one with a single block of k = n units: the same tensors, drawn alike.</summary>
    public static void Add<T>(ParameterSet<T> parameters, int layer, int gates, int inputSize, int hiddenSize, Random random)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        StructuredLayers.Add(parameters, layer, gates, inputSize, hiddenSize, hiddenSize, random);

    public static RecurrentWeights<T> Weights<T>(ParameterSet<T> parameters, int layer, int gates, int inputSize, int hiddenSize)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(parameters);
        return new RecurrentWeights<T>(gates, hiddenSize, inputSize, parameters[LayerNames.Of("weight_ih", layer)],
            parameters[LayerNames.Of("weight_hh", layer)], parameters[LayerNames.Of("bias_ih", layer)], parameters[LayerNames.Of("bias_hh", layer)]);
    }
}
