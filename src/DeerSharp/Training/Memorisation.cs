
namespace DeerSharp.Training;

/// <summary>
/// The memorisation task (Hochreiter &amp; Schmidhuber 1997, problem 2b, as Martin &amp; Cundy use it; reference §10):
/// one-hot inputs of dimension 128; the first is +e₁ or −e₁ and the rest are random other symbols; the model must output
/// that first sign after the whole sequence. "Converged" means 5 consecutive minibatches at 100% accuracy.
/// </summary>
public static class Memorisation
{
    /// <summary>The input dimension.</summary>
    public const int Dimension = 128;

    /// <summary>Consecutive perfect minibatches that count as solving the task.</summary>
    public const int PerfectBatchesToConverge = 5;

    /// <summary>A batch [B, T, 128] and its labels (1 for +e₁, 0 for −e₁): <see cref="SparseBatch"/>'s draws, dense.</summary>
    public static (T[] Inputs, int[] Labels) Batch<T>(Random random, int batchSize, int length)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var (inputs, labels) = SparseBatch(random, batchSize, length);
        return (inputs.ToDense<T>(), labels);
    }

    /// <summary>
    /// A batch as one-hot symbols (8 bytes a step instead of 512: what a million steps needs) and its labels. The same
    /// draws from <paramref name="random"/> as <see cref="Batch{T}"/>: per sequence the label, then each later step's symbol.
    /// </summary>
    public static (OneHotSequences Inputs, int[] Labels) SparseBatch(Random random, int batchSize, int length)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        var inputs = new OneHotSequences(batchSize, length, Dimension, new int[(long)batchSize * length], new float[(long)batchSize * length]);
        return (inputs, Refill(random, inputs));
    }

    /// <summary>
    /// Draws a new batch into <paramref name="inputs"/> (its arrays reused: at a million steps a fresh batch is 128 MB of
    /// new pages) with the draws of <see cref="SparseBatch"/>, and returns its labels.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="inputs"/> is not of dimension <see cref="Dimension"/>.</exception>
    public static int[] Refill(Random random, OneHotSequences inputs)
    {
        ArgumentNullException.ThrowIfNull(random);
        ArgumentNullException.ThrowIfNull(inputs);
        if (inputs.Dimension != Dimension)
        {
            throw new ArgumentException($"inputs has dimension {inputs.Dimension}; the task's is {Dimension}.", nameof(inputs));
        }

        int length = inputs.Length;
        int[] symbols = inputs.Symbols;
        float[] values = inputs.Values;
        var labels = new int[inputs.BatchSize];
        for (int b = 0; b < labels.Length; b++)
        {
            long at = (long)b * length;
            labels[b] = random.Next(2);
            symbols[at] = 0;
            values[at] = labels[b] == 1 ? 1f : -1f;
            for (int t = 1; t < length; t++)
            {
                symbols[at + t] = 1 + random.Next(Dimension - 1);
                values[at + t] = 1f;
            }
        }

        return labels;
    }
}
