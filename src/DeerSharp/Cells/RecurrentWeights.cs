using System.Numerics;

namespace DeerSharp.Cells;

/// <summary>
/// The weights of one layer of a PyTorch recurrent module (nn.RNN, nn.GRU, nn.LSTM), in PyTorch's layout:
/// weight_ih [G·n, d], weight_hh [G·n, n], bias_ih [G·n], bias_hh [G·n], row-major, gates stacked in PyTorch's order.
/// </summary>
/// <typeparam name="T">The element type.</typeparam>
public sealed class RecurrentWeights<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Creates and validates a layer's weights. Null biases mean a module built with bias=False.</summary>
    /// <param name="gates">G: 1 for tanh RNN, 3 for GRU, 4 for LSTM.</param>
    /// <param name="hiddenSize">n.</param>
    /// <param name="inputSize">d.</param>
    /// <param name="weightIH">weight_ih, G·n·d values.</param>
    /// <param name="weightHH">weight_hh, G·n·n values.</param>
    /// <param name="biasIH">bias_ih, G·n values, or null.</param>
    /// <param name="biasHH">bias_hh, G·n values, or null.</param>
    public RecurrentWeights(int gates, int hiddenSize, int inputSize, T[] weightIH, T[] weightHH, T[]? biasIH = null, T[]? biasHH = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(gates, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(hiddenSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(inputSize, 1);
        ArgumentNullException.ThrowIfNull(weightIH);
        ArgumentNullException.ThrowIfNull(weightHH);
        int rows = checked(gates * hiddenSize);
        Require.Length(weightIH, checked(rows * inputSize), nameof(weightIH), $"[{rows}, {inputSize}]");
        Require.Length(weightHH, checked(rows * hiddenSize), nameof(weightHH), $"[{rows}, {hiddenSize}]");
        LayerWeights.CheckBiasesAndValues(weightIH, weightHH, biasIH, biasHH, rows);

        Gates = gates;
        HiddenSize = hiddenSize;
        InputSize = inputSize;
        WeightIH = weightIH;
        WeightHH = weightHH;
        BiasIH = biasIH ?? new T[rows];
        BiasHH = biasHH ?? new T[rows];
        HasBias = biasIH is not null || biasHH is not null;
    }

    /// <summary>G, the number of stacked gates.</summary>
    public int Gates { get; }

    /// <summary>n, the hidden size.</summary>
    public int HiddenSize { get; }

    /// <summary>d, the input size.</summary>
    public int InputSize { get; }

    /// <summary>weight_ih, [G·n, d] row-major.</summary>
    public T[] WeightIH { get; }

    /// <summary>weight_hh, [G·n, n] row-major.</summary>
    public T[] WeightHH { get; }

    /// <summary>bias_ih (zeros when the module has no bias).</summary>
    public T[] BiasIH { get; }

    /// <summary>bias_hh (zeros when the module has no bias).</summary>
    public T[] BiasHH { get; }

    /// <summary>Whether the module was built with biases.</summary>
    public bool HasBias { get; }

    /// <summary>
    /// Random weights drawn as PyTorch initialises them, uniform on [-s/√n, s/√n] with s = <paramref name="scale"/>.
    /// </summary>
    public static RecurrentWeights<T> Random(int gates, int hiddenSize, int inputSize, Random random, double scale = 1.0, bool bias = true)
    {
        ArgumentNullException.ThrowIfNull(random);
        int rows = checked(gates * hiddenSize);
        double bound = scale / Math.Sqrt(hiddenSize);
        T[] Draw(int count) => LayerWeights.Uniform<T>(random, count, bound);

        return new RecurrentWeights<T>(gates, hiddenSize, inputSize,
            Draw(rows * inputSize), Draw(rows * hiddenSize), bias ? Draw(rows) : null, bias ? Draw(rows) : null);
    }

    /// <summary>
    /// Splits a flat parameter gradient of a cell built from these weights ([weight_ih, weight_hh, bias_ih, bias_hh]) into
    /// arrays shaped like the weights.
    /// </summary>
    public (T[] WeightIH, T[] WeightHH, T[] BiasIH, T[] BiasHH) SplitGradient(ReadOnlySpan<T> gradient)
    {
        int rows = Gates * HiddenSize;
        Require.Length(gradient, (long)rows * (InputSize + HiddenSize + 2), nameof(gradient), $"[{rows}·({InputSize} + {HiddenSize} + 2)]");
        return (gradient[..(rows * InputSize)].ToArray(), gradient.Slice(rows * InputSize, rows * HiddenSize).ToArray(),
            gradient.Slice(rows * (InputSize + HiddenSize), rows).ToArray(), gradient.Slice(rows * (InputSize + HiddenSize + 1), rows).ToArray());
    }
}
