using ILGPU;

namespace DeerSharp.Gpu;

/// <summary>The cell-independent kernels of a Newton iteration: input projection, the shift to h_{t−1}, and the residual.</summary>
internal static class NewtonKernels
{
    /// <summary>xp[row, g] = b_ih[g] + Σ_j W_ih[g, j] · x[row, j]: the part of f that depends on x alone, computed once.</summary>
    public static void InputProjection<T>(Index1D index, ArrayView<T> wih, ArrayView<T> bih, ArrayView<T> x, ArrayView<T> xp, int d, int gates)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int g = index % gates;
        long row = index / gates;
        T sum = bih[g];
        for (int j = 0; j < d; j++)
        {
            sum += wih[((long)g * d) + j] * x[(row * d) + j];
        }

        xp[index] = sum;
    }

    /// <summary>prev[b, t] = h_{t−1}: h0[b] at t = 0, the current iterate's state t − 1 after. [B, L, S].</summary>
    public static void Shift<T>(Index1D index, ArrayView<T> current, ArrayView<T> h0, ArrayView<T> previous, int length, int s)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int k = index % s;
        long row = index / s;
        long t = row % length, b = row / length;
        previous[index] = t == 0 ? h0[(b * s) + k] : current[index - s];
    }

    /// <summary>The initial iterate h0 broadcast: current[b, t] = h0[b] for every t (InitialGuess.BroadcastInitialState). [B, L, S].</summary>
    public static void Broadcast<T>(Index1D index, ArrayView<T> h0, ArrayView<T> current, int length, int s)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        long row = index / s;
        current[index] = h0[(row / length * s) + (index % s)];
    }

    /// <summary>
    /// The fixed-point residual of the iterate, reduced on the device per sequence (every <paramref name="perSequence"/>
    /// values): stats[2q] = max |h − f| / (atol + rtol |f|), stats[2q + 1] = max |h − f| over sequence q, as float bit
    /// patterns (non-negative floats order like their bits; NaN orders above +∞). A zero residual is within tolerance even
    /// when atol = 0 and f = 0 (ResultContract's rule).
    /// </summary>
    public static void ResidualSingle(Index1D index, ArrayView<float> current, ArrayView<float> f, ArrayView<uint> stats, float atol, float rtol, int perSequence)
    {
        float diff = MathF.Abs(current[index] - f[index]);
        float ratio = diff == 0 ? 0 : diff / (atol + (rtol * MathF.Abs(f[index])));
        int q = 2 * (index / perSequence);
        Atomic.Max(ref stats[q], float.IsNaN(ratio) ? 0x7FC00000u : Interop.FloatAsInt(ratio));
        Atomic.Max(ref stats[q + 1], float.IsNaN(diff) ? 0x7FC00000u : Interop.FloatAsInt(diff));
    }

    /// <summary>As <see cref="ResidualSingle"/>, in double.</summary>
    public static void ResidualDouble(Index1D index, ArrayView<double> current, ArrayView<double> f, ArrayView<ulong> stats, double atol, double rtol, int perSequence)
    {
        double diff = Math.Abs(current[index] - f[index]);
        double ratio = diff == 0 ? 0 : diff / (atol + (rtol * Math.Abs(f[index])));
        int q = 2 * (index / perSequence);
        Atomic.Max(ref stats[q], double.IsNaN(ratio) ? 0x7FF8000000000000ul : Interop.FloatAsInt(ratio));
        Atomic.Max(ref stats[q + 1], double.IsNaN(diff) ? 0x7FF8000000000000ul : Interop.FloatAsInt(diff));
    }
}
