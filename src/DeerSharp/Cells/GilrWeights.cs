
namespace DeerSharp.Cells;

/// <summary>
/// GILR's weights (reference §9): gate.weight U [n, d], gate.bias [n], impulse.weight V [n, d], impulse.bias [n], row-major.
/// </summary>
public sealed class GilrWeights<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Validates and wraps the four arrays.</summary>
    public GilrWeights(int hiddenSize, int inputSize, T[] gateWeight, T[] gateBias, T[] impulseWeight, T[] impulseBias)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(hiddenSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(inputSize, 1);
        ArgumentNullException.ThrowIfNull(gateWeight);
        ArgumentNullException.ThrowIfNull(gateBias);
        ArgumentNullException.ThrowIfNull(impulseWeight);
        ArgumentNullException.ThrowIfNull(impulseBias);
        Require.Length(gateWeight, (long)hiddenSize * inputSize, nameof(gateWeight), $"[{hiddenSize}, {inputSize}]");
        Require.Length(gateBias, hiddenSize, nameof(gateBias), $"[{hiddenSize}]");
        Require.Length(impulseWeight, (long)hiddenSize * inputSize, nameof(impulseWeight), $"[{hiddenSize}, {inputSize}]");
        Require.Length(impulseBias, hiddenSize, nameof(impulseBias), $"[{hiddenSize}]");
        Require.Finite<T>(gateWeight, nameof(gateWeight));
        Require.Finite<T>(gateBias, nameof(gateBias));
        Require.Finite<T>(impulseWeight, nameof(impulseWeight));
        Require.Finite<T>(impulseBias, nameof(impulseBias));
        HiddenSize = hiddenSize;
        InputSize = inputSize;
        GateWeight = gateWeight;
        GateBias = gateBias;
        ImpulseWeight = impulseWeight;
        ImpulseBias = impulseBias;
    }

    /// <summary>Uniform on ±s/√d (PyTorch's nn.Linear initialisation, scaled by <paramref name="scale"/>).</summary>
    public static GilrWeights<T> Random(int hiddenSize, int inputSize, Random random, double scale = 1.0)
    {
        ArgumentNullException.ThrowIfNull(random);
        double bound = scale / Math.Sqrt(inputSize);
        T[] Draw(int count) => [.. Enumerable.Range(0, count).Select(_ => T.CreateTruncating((random.NextDouble() * 2 - 1) * bound))];
        return new GilrWeights<T>(hiddenSize, inputSize, Draw(hiddenSize * inputSize), Draw(hiddenSize), Draw(hiddenSize * inputSize), Draw(hiddenSize));
    }

    /// <summary>n.</summary>
    public int HiddenSize { get; }

    /// <summary>d.</summary>
    public int InputSize { get; }

    /// <summary>gate.weight, U, [n, d].</summary>
    public T[] GateWeight { get; }

    /// <summary>gate.bias, [n].</summary>
    public T[] GateBias { get; }

    /// <summary>impulse.weight, V, [n, d].</summary>
    public T[] ImpulseWeight { get; }

    /// <summary>impulse.bias, [n].</summary>
    public T[] ImpulseBias { get; }

    /// <summary>[gate.weight, gate.bias, impulse.weight, impulse.bias] flat: 2n(d + 1) values.</summary>
    public int ParameterCount => 2 * HiddenSize * (InputSize + 1);

    /// <summary>Splits a flat gradient in <see cref="ParameterCount"/> layout into arrays shaped like the weights.</summary>
    public (T[] GateWeight, T[] GateBias, T[] ImpulseWeight, T[] ImpulseBias) SplitGradient(ReadOnlySpan<T> gradient)
    {
        int n = HiddenSize, nd = n * InputSize;
        Require.Length(gradient, ParameterCount, nameof(gradient), $"[{ParameterCount}]");
        return (gradient[..nd].ToArray(), gradient.Slice(nd, n).ToArray(), gradient.Slice(nd + n, nd).ToArray(), gradient.Slice(2 * nd + n, n).ToArray());
    }
}
