
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

    /// <summary>A batch [B, T, 128] and its labels (1 for +e₁, 0 for −e₁).</summary>
    public static (T[] Inputs, int[] Labels) Batch<T>(Random random, int batchSize, int length)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(random);
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        var x = new T[(long)batchSize * length * Dimension];
        var labels = new int[batchSize];
        for (int b = 0; b < batchSize; b++)
        {
            labels[b] = random.Next(2);
            x[(long)b * length * Dimension] = labels[b] == 1 ? T.One : T.NegativeOne;
            for (int t = 1; t < length; t++)
            {
                x[((long)b * length + t) * Dimension + 1 + random.Next(Dimension - 1)] = T.One;
            }
        }

        return (x, labels);
    }
}
