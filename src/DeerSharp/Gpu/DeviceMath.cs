using ILGPU;

namespace DeerSharp.Gpu;

/// <summary>The small device functions every kernel file shares (inlined by ILGPU into the kernels that call them).</summary>
internal static class DeviceMath
{
    /// <summary>σ(x) = 1 / (1 + e^{−x}).</summary>
    public static T Sigmoid<T>(T x)
        where T : unmanaged, IFloatingPointIeee754<T> => T.One / (T.One + T.Exp(-x));

    /// <summary>
    /// Σ_c W_hh[gateRow, c] · state[first + c] over a row of k entries: a structured cell's block product, or with k = n a
    /// dense cell's whole row.
    /// </summary>
    public static T RowProduct<T>(ArrayView<T> whh, ArrayView<T> state, int gateRow, long first, int k)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T sum = T.Zero;
        for (int c = 0; c < k; c++)
        {
            sum += whh[((long)gateRow * k) + c] * state[first + c];
        }

        return sum;
    }
}
