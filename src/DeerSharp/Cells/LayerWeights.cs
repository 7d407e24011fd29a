
namespace DeerSharp.Cells;

/// <summary>What <see cref="RecurrentWeights{T}"/> and <see cref="StructuredWeights{T}"/> check and draw alike.</summary>
internal static class LayerWeights
{
    /// <summary>
    /// The checks after the shapes of W_ih and W_hh: optional biases of <paramref name="rows"/> values each, and every
    /// tensor finite. Errors name the argument and the expected shape.
    /// </summary>
    public static void CheckBiasesAndValues<T>(T[] weightIH, T[] weightHH, T[]? biasIH, T[]? biasHH, int rows)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (biasIH is not null)
        {
            Require.Length(biasIH, rows, nameof(biasIH), $"[{rows}]");
        }

        if (biasHH is not null)
        {
            Require.Length(biasHH, rows, nameof(biasHH), $"[{rows}]");
        }

        Require.Finite<T>(weightIH, nameof(weightIH));
        Require.Finite<T>(weightHH, nameof(weightHH));
        Require.Finite<T>(biasIH, nameof(biasIH));
        Require.Finite<T>(biasHH, nameof(biasHH));
    }

    /// <summary>Throws unless a cell was given weights (non-null) with the <paramref name="expected"/> number of gate blocks.</summary>
    public static void RequireGates([System.Diagnostics.CodeAnalysis.NotNull] object? weights, int gates, int expected, string what)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (gates != expected)
        {
            throw new ArgumentException($"{what}; these weights have {gates}.", nameof(weights));
        }
    }

    /// <summary><paramref name="count"/> values uniform on [-bound, bound], as PyTorch initialises a recurrent module.</summary>
    public static T[] Uniform<T>(Random random, int count, double bound)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var values = new T[count];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = T.CreateTruncating((random.NextDouble() * 2 - 1) * bound);
        }

        return values;
    }
}
