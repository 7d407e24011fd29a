
namespace DeerSharp.Cells;

/// <summary>
/// The weights of one layer of a structured cell (<see cref="IndRnnCell{T}"/>, <see cref="DiagonalGruCell{T}"/>,
/// <see cref="DiagonalLstmCell{T}"/>): PyTorch's layout with W_hh restricted to k×k blocks along the diagonal.
/// weight_ih [G·n, d], weight_hh [G·n, k], bias_ih [G·n], bias_hh [G·n], row-major, gates in PyTorch's order. Row
/// g·n + i of weight_hh holds the weights of unit i in gate g on the k units of i's block (units ⌊i/k⌋·k … ⌊i/k⌋·k + k - 1).
/// </summary>
/// <typeparam name="T">The element type.</typeparam>
public sealed class StructuredWeights<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Creates and validates a layer's weights. Null biases mean a module built with bias=False.</summary>
    /// <param name="gates">G: 1 for IndRNN, 3 for the GRU, 4 for the LSTM.</param>
    /// <param name="hiddenSize">n.</param>
    /// <param name="inputSize">d.</param>
    /// <param name="blockSize">k, which must divide n: 1 for a diagonal W_hh.</param>
    /// <param name="weightIH">weight_ih, G·n·d values.</param>
    /// <param name="weightHH">weight_hh, G·n·k values.</param>
    /// <param name="biasIH">bias_ih, G·n values, or null.</param>
    /// <param name="biasHH">bias_hh, G·n values, or null.</param>
    public StructuredWeights(int gates, int hiddenSize, int inputSize, int blockSize, T[] weightIH, T[] weightHH, T[]? biasIH = null, T[]? biasHH = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(gates, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(hiddenSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(inputSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        if (hiddenSize % blockSize != 0)
        {
            throw new ArgumentException($"The block size k = {blockSize} must divide the hidden size n = {hiddenSize}.", nameof(blockSize));
        }

        ArgumentNullException.ThrowIfNull(weightIH);
        ArgumentNullException.ThrowIfNull(weightHH);
        int rows = checked(gates * hiddenSize);
        Require.Length(weightIH, checked(rows * inputSize), nameof(weightIH), $"[{rows}, {inputSize}]");
        Require.Length(weightHH, checked(rows * blockSize), nameof(weightHH), $"[{rows}, {blockSize}]");
        LayerWeights.CheckBiasesAndValues(weightIH, weightHH, biasIH, biasHH, rows);
        Gates = gates;
        HiddenSize = hiddenSize;
        InputSize = inputSize;
        BlockSize = blockSize;
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

    /// <summary>k, the units per block of W_hh.</summary>
    public int BlockSize { get; }

    /// <summary>weight_ih, [G·n, d] row-major.</summary>
    public T[] WeightIH { get; }

    /// <summary>weight_hh, [G·n, k] row-major.</summary>
    public T[] WeightHH { get; }

    /// <summary>bias_ih (zeros when the module has no bias).</summary>
    public T[] BiasIH { get; }

    /// <summary>bias_hh (zeros when the module has no bias).</summary>
    public T[] BiasHH { get; }

    /// <summary>Whether the module was built with biases.</summary>
    public bool HasBias { get; }

    /// <summary>The flat parameter length: G·n·(d + k + 2).</summary>
    public int ParameterCount => Gates * HiddenSize * (InputSize + BlockSize + 2);

    /// <summary>
    /// Random weights drawn as PyTorch initialises a recurrent module of hidden size n: uniform on [-s/√n, s/√n] with
    /// s = <paramref name="scale"/>, for every tensor.
    /// </summary>
    public static StructuredWeights<T> Random(int gates, int hiddenSize, int inputSize, int blockSize, Random random, double scale = 1.0, bool bias = true)
    {
        ArgumentNullException.ThrowIfNull(random);
        int rows = checked(gates * hiddenSize);
        double bound = scale / Math.Sqrt(hiddenSize);
        T[] Draw(int count) => LayerWeights.Uniform<T>(random, count, bound);

        return new StructuredWeights<T>(gates, hiddenSize, inputSize, blockSize,
            Draw(rows * inputSize), Draw(rows * blockSize), bias ? Draw(rows) : null, bias ? Draw(rows) : null);
    }

    /// <summary>Splits a flat parameter gradient ([weight_ih, weight_hh, bias_ih, bias_hh]) into arrays shaped like the weights.</summary>
    public (T[] WeightIH, T[] WeightHH, T[] BiasIH, T[] BiasHH) SplitGradient(ReadOnlySpan<T> gradient)
    {
        int rows = Gates * HiddenSize;
        Require.Length(gradient, ParameterCount, nameof(gradient), $"[{rows}·({InputSize} + {BlockSize} + 2)]");
        return (gradient[..(rows * InputSize)].ToArray(), gradient.Slice(rows * InputSize, rows * BlockSize).ToArray(),
            gradient.Slice(rows * (InputSize + BlockSize), rows).ToArray(), gradient.Slice(rows * (InputSize + BlockSize + 1), rows).ToArray());
    }
}
