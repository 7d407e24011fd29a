
namespace DeerSharp.Cells;

/// <summary>
/// GILR-LSTM's weights (reference §9): the GILR surrogate (keys surrogate.gate.weight, surrogate.gate.bias,
/// surrogate.impulse.weight, surrogate.impulse.bias), then weight_ih [4n, d], weight_hh [4n, n] and bias [4n], gates in
/// the order i, f, z, o.
/// </summary>
public sealed class GilrLstmWeights<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Validates and wraps the weights.</summary>
    public GilrLstmWeights(GilrWeights<T> surrogate, T[] weightIH, T[] weightHH, T[] bias)
    {
        ArgumentNullException.ThrowIfNull(surrogate);
        int n = surrogate.HiddenSize, d = surrogate.InputSize;
        ArgumentNullException.ThrowIfNull(weightIH);
        ArgumentNullException.ThrowIfNull(weightHH);
        ArgumentNullException.ThrowIfNull(bias);
        Require.Length(weightIH, 4L * n * d, nameof(weightIH), $"[{4 * n}, {d}]");
        Require.Length(weightHH, 4L * n * n, nameof(weightHH), $"[{4 * n}, {n}]");
        Require.Length(bias, 4 * n, nameof(bias), $"[{4 * n}]");
        Require.Finite<T>(weightIH, nameof(weightIH));
        Require.Finite<T>(weightHH, nameof(weightHH));
        Require.Finite<T>(bias, nameof(bias));
        Surrogate = surrogate;
        WeightIH = weightIH;
        WeightHH = weightHH;
        Bias = bias;
    }

    /// <summary>Random weights: the surrogate as <see cref="GilrWeights{T}.Random"/>, the rest uniform on ±s/√n.</summary>
    public static GilrLstmWeights<T> Random(int hiddenSize, int inputSize, Random random, double scale = 1.0)
    {
        ArgumentNullException.ThrowIfNull(random);
        GilrWeights<T> surrogate = GilrWeights<T>.Random(hiddenSize, inputSize, random, scale);
        var lstm = RecurrentWeights<T>.Random(4, hiddenSize, inputSize, random, scale);
        return new GilrLstmWeights<T>(surrogate, lstm.WeightIH, lstm.WeightHH, lstm.BiasIH);
    }

    /// <summary>The GILR surrogate h~.</summary>
    public GilrWeights<T> Surrogate { get; }

    /// <summary>weight_ih, [4n, d].</summary>
    public T[] WeightIH { get; }

    /// <summary>weight_hh, [4n, n], multiplying h~_{t-1}.</summary>
    public T[] WeightHH { get; }

    /// <summary>bias, [4n].</summary>
    public T[] Bias { get; }

    /// <summary>n.</summary>
    public int HiddenSize => Surrogate.HiddenSize;

    /// <summary>d.</summary>
    public int InputSize => Surrogate.InputSize;

    /// <summary>[surrogate (GILR layout), weight_ih, weight_hh, bias] flat.</summary>
    public int ParameterCount => Surrogate.ParameterCount + 4 * HiddenSize * (InputSize + HiddenSize + 1);

    /// <summary>Splits a flat gradient into the surrogate's part and weight_ih, weight_hh, bias.</summary>
    public (T[] Surrogate, T[] WeightIH, T[] WeightHH, T[] Bias) SplitGradient(ReadOnlySpan<T> gradient)
    {
        int s = Surrogate.ParameterCount, n = HiddenSize, d = InputSize;
        Require.Length(gradient, ParameterCount, nameof(gradient), $"[{ParameterCount}]");
        return (gradient[..s].ToArray(), gradient.Slice(s, 4 * n * d).ToArray(), gradient.Slice(s + 4 * n * d, 4 * n * n).ToArray(),
            gradient.Slice(s + 4 * n * (d + n), 4 * n).ToArray());
    }
}
