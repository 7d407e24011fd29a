namespace DeerSharp.Training;

/// <summary>
/// A generated sequence-classification task (the samples' benchmark): a sine of one of four frequency bands plus a weaker
/// sine of random frequency and noise, one channel; the class is the band of the dominant sine. Long sequences help
/// (low bands complete few periods), so it exercises a recurrent model's memory over thousands of steps.
/// </summary>
public static class FrequencyBands
{
    /// <summary>The number of classes.</summary>
    public const int Classes = 4;

    /// <summary>A batch of inputs [B, T, 1] and labels [B] in [0, <see cref="Classes"/>).</summary>
    public static (double[] Inputs, int[] Labels) Batch(Random random, int batchSize, int length)
    {
        ArgumentNullException.ThrowIfNull(random);
        ArgumentOutOfRangeException.ThrowIfNegative(batchSize);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        var x = new double[batchSize * length];
        var labels = new int[batchSize];
        for (int b = 0; b < batchSize; b++)
        {
            labels[b] = random.Next(Classes);
            double f = (0.004 + 0.012 * labels[b]) * (1 + 0.25 * random.NextDouble());
            double f2 = 0.001 + 0.05 * random.NextDouble(), p1 = random.NextDouble() * 6.28, p2 = random.NextDouble() * 6.28;
            for (int t = 0; t < length; t++)
            {
                x[b * length + t] = Math.Sin(2 * Math.PI * f * t + p1) + 0.3 * Math.Sin(2 * Math.PI * f2 * t + p2) + 0.3 * (random.NextDouble() - 0.5);
            }
        }

        return (x, labels);
    }
}
