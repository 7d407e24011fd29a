
namespace DeerSharp;

/// <summary>Argument checks that name the argument and state the expected against the actual shape.</summary>
internal static class Require
{
    public static void Length<T>(ReadOnlySpan<T> values, long expected, string argument, string shape)
    {
        if (values.Length != expected)
        {
            throw new ArgumentException(
                $"{argument} must hold {expected} values (shape {shape}); it holds {values.Length}.", argument);
        }
    }

    public static void Length<T>(T[] values, long expected, string argument, string shape) =>
        Length((ReadOnlySpan<T>)values, expected, argument, shape);

    /// <summary>Throws if any value is NaN or infinite, naming the flat index and its coordinates in <paramref name="shape"/>.</summary>
    public static void Finite<T>(ReadOnlySpan<T> values, string argument, params int[] shape)
        where T : IFloatingPointIeee754<T> => Finite(values, argument, parallel: false, shape);

    /// <summary>As <see cref="Finite{T}(ReadOnlySpan{T}, string, int[])"/>; a large span on two cores when <paramref name="parallel"/>.</summary>
    public static void Finite<T>(ReadOnlySpan<T> values, string argument, bool parallel, params int[] shape)
        where T : IFloatingPointIeee754<T>
    {
        int i = NonFinite.IndexOf(values, parallel);
        if (i >= 0)
        {
            throw new ArgumentException(
                $"{argument} holds a non-finite value ({values[i]}) at {Coordinates(i, shape)}; inputs and weights must be finite.",
                argument);
        }
    }

    public static void Finite<T>(T[]? values, string argument)
        where T : IFloatingPointIeee754<T>
    {
        if (values is not null)
        {
            Finite((ReadOnlySpan<T>)values, argument);
        }
    }

    private static string Coordinates(int flat, int[] shape)
    {
        if (shape.Length == 0)
        {
            return $"index {flat}";
        }

        var coords = new int[shape.Length];
        for (int k = shape.Length - 1; k >= 0; k--)
        {
            coords[k] = flat % shape[k];
            flat /= shape[k];
        }

        return $"[{string.Join(", ", coords)}]";
    }
}
