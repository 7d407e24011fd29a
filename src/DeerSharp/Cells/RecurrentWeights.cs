
namespace DeerSharp.Cells;

/// <summary>
/// The weights of one layer of a PyTorch recurrent module (nn.RNN, nn.GRU, nn.LSTM), in PyTorch's layout:
/// weight_ih [G·n, d], weight_hh [G·n, n], bias_ih [G·n], bias_hh [G·n], row-major, gates stacked in PyTorch's order.
/// </summary>
/// <typeparam name="T">The element type.</typeparam>
public sealed class RecurrentWeights<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly StructuredWeights<T> _blocks;

    /// <summary>Creates and validates a layer's weights. Null biases mean a module built with bias=False.</summary>
    /// <param name="gates">G: 1 for tanh RNN, 3 for GRU, 4 for LSTM.</param>
    /// <param name="hiddenSize">n.</param>
    /// <param name="inputSize">d.</param>
    /// <param name="weightIH">weight_ih, G·n·d values.</param>
    /// <param name="weightHH">weight_hh, G·n·n values.</param>
    /// <param name="biasIH">bias_ih, G·n values, or null.</param>
    /// <param name="biasHH">bias_hh, G·n values, or null.</param>
    public RecurrentWeights(int gates, int hiddenSize, int inputSize, T[] weightIH, T[] weightHH, T[]? biasIH = null, T[]? biasHH = null)
        : this(new StructuredWeights<T>(gates, hiddenSize, inputSize, hiddenSize, weightIH, weightHH, biasIH, biasHH))
    {
    }

    private RecurrentWeights(StructuredWeights<T> blocks) => _blocks = blocks;

    /// <summary>The same weights as a structured layer with one block of k = n units: a dense W_hh is the block-diagonal one with a single block.</summary>
    public StructuredWeights<T> AsBlocks => _blocks;

    /// <summary>G, the number of stacked gates.</summary>
    public int Gates => _blocks.Gates;

    /// <summary>n, the hidden size.</summary>
    public int HiddenSize => _blocks.HiddenSize;

    /// <summary>d, the input size.</summary>
    public int InputSize => _blocks.InputSize;

    /// <summary>weight_ih, [G·n, d] row-major.</summary>
    public T[] WeightIH => _blocks.WeightIH;

    /// <summary>weight_hh, [G·n, n] row-major.</summary>
    public T[] WeightHH => _blocks.WeightHH;

    /// <summary>bias_ih (zeros when the module has no bias).</summary>
    public T[] BiasIH => _blocks.BiasIH;

    /// <summary>bias_hh (zeros when the module has no bias).</summary>
    public T[] BiasHH => _blocks.BiasHH;

    /// <summary>Whether the module was built with biases.</summary>
    public bool HasBias => _blocks.HasBias;

    /// <summary>
    /// Random weights drawn as PyTorch initialises them, uniform on [-s/√n, s/√n] with s = <paramref name="scale"/>.
    /// </summary>
    public static RecurrentWeights<T> Random(int gates, int hiddenSize, int inputSize, Random random, double scale = 1.0, bool bias = true) =>
        new(StructuredWeights<T>.Random(gates, hiddenSize, inputSize, hiddenSize, random, scale, bias));

    /// <summary>
    /// Splits a flat parameter gradient of a cell built from these weights ([weight_ih, weight_hh, bias_ih, bias_hh]) into
    /// arrays shaped like the weights.
    /// </summary>
    public (T[] WeightIH, T[] WeightHH, T[] BiasIH, T[] BiasHH) SplitGradient(ReadOnlySpan<T> gradient) => _blocks.SplitGradient(gradient);
}
