namespace DeerSharp.Training;

/// <summary>
/// A batch of sequences whose every input is a scaled one-hot vector: at step t of sequence b, the input is
/// Values[b·T + t]·e_{Symbols[b·T + t]} in ℝ^Dimension. It holds 8 bytes a step where the dense batch would hold
/// 4·Dimension, which is what makes the memorisation task at a million steps fit in memory (16 × 2²⁰ steps: 128 MB
/// against 8.6 GB), and lets the first layer's input projection be a column gather instead of a GEMM.
/// </summary>
public sealed class OneHotSequences
{
    /// <summary>Wraps <paramref name="symbols"/> and <paramref name="values"/>, [batchSize, length] each, row-major.</summary>
    /// <exception cref="ArgumentException">A length does not match, or a symbol is outside [0, <paramref name="dimension"/>).</exception>
    public OneHotSequences(int batchSize, int length, int dimension, int[] symbols, float[] values)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(dimension, 1);
        ArgumentNullException.ThrowIfNull(symbols);
        ArgumentNullException.ThrowIfNull(values);
        long count = (long)batchSize * length;
        Require.Length<int>(symbols, count, nameof(symbols), $"[{batchSize}, {length}]");
        Require.Length<float>(values, count, nameof(values), $"[{batchSize}, {length}]");
        for (long i = 0; i < count; i++)
        {
            if ((uint)symbols[i] >= (uint)dimension)
            {
                throw new ArgumentException(
                    $"symbols[{i / length}, {i % length}] is {symbols[i]}; symbols must lie in [0, {dimension}).", nameof(symbols));
            }
        }

        (BatchSize, Length, Dimension, Symbols, Values) = (batchSize, length, dimension, symbols, values);
    }

    /// <summary>B.</summary>
    public int BatchSize { get; }

    /// <summary>T.</summary>
    public int Length { get; }

    /// <summary>The dense input's size d.</summary>
    public int Dimension { get; }

    /// <summary>Which unit is set at each step, [B, T].</summary>
    public int[] Symbols { get; }

    /// <summary>Its value, [B, T].</summary>
    public float[] Values { get; }

    /// <summary>The dense batch [B, T, d] these stand for (for short sequences: it is 4·d bytes a step).</summary>
    public T[] ToDense<T>()
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var x = new T[(long)BatchSize * Length * Dimension];
        for (long i = 0; i < Symbols.LongLength; i++)
        {
            x[i * Dimension + Symbols[i]] = T.CreateTruncating(Values[i]);
        }

        return x;
    }
}
