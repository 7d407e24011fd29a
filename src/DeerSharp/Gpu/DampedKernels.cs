using System.Numerics;
using ILGPU;

namespace DeerSharp.Gpu;

/// <summary>
/// quasi-ELK on the device (reference §6, the CPU's Solver.SolveDamped): the residual r = h − f with its sum of squares
/// (the Levenberg-Marquardt merit, accumulated in double), the damped tridiagonal step per state channel by the Thomas
/// algorithm (one thread per (sequence, channel), sequential in t), and the update.
/// </summary>
internal static class DampedKernels
{
    /// <summary>r = h − f, and Σ r² added to <paramref name="sum"/>[0] (float values, a double sum).</summary>
    public static void MeritSingle(Index1D index, ArrayView<float> current, ArrayView<float> f, ArrayView<float> residual, ArrayView<double> sum)
    {
        float r = current[index] - f[index];
        residual[index] = r;
        Atomic.Add(ref sum[0], (double)r * r);
    }

    /// <summary>As <see cref="MeritSingle"/>, in double.</summary>
    public static void MeritDouble(Index1D index, ArrayView<double> current, ArrayView<double> f, ArrayView<double> residual, ArrayView<double> sum)
    {
        double r = current[index] - f[index];
        residual[index] = r;
        Atomic.Add(ref sum[0], r * r);
    }

    /// <summary>
    /// One channel's damped step: (1 + λ + d_{t+1}²) δ_t − d_t δ_{t−1} − d_{t+1} δ_{t+1} = −(r_t − d_{t+1} r_{t+1}), by the
    /// Thomas algorithm (the system is symmetric positive definite). Arrays are [B, L, S]; one thread per (sequence, channel).
    /// </summary>
    public static void Thomas<T>(Index1D index, ArrayView<T> r, ArrayView<T> d, ArrayView<T> sweep, ArrayView<T> step, T lambda, int length, int s)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = index % s;
        long seq = index / s;
        for (int t = 0; t < length; t++)
        {
            long k = (((seq * length) + t) * s) + i;
            bool hasNext = t + 1 < length;
            T dNext = hasNext ? d[k + s] : T.Zero, rNext = hasNext ? r[k + s] : T.Zero;
            T diagonal = T.One + lambda + (dNext * dNext);
            T below = t > 0 ? -d[k] : T.Zero;
            T rhs = -(r[k] - (dNext * rNext));
            T cPrevious = t > 0 ? sweep[k - s] : T.Zero, ePrevious = t > 0 ? step[k - s] : T.Zero;
            T pivot = diagonal - (below * cPrevious);
            sweep[k] = -dNext / pivot;
            step[k] = (rhs - (below * ePrevious)) / pivot;
        }

        for (int t = length - 2; t >= 0; t--)
        {
            long k = (((seq * length) + t) * s) + i;
            step[k] -= sweep[k] * step[k + s];
        }
    }

    /// <summary>target += delta.</summary>
    public static void Add<T>(Index1D index, ArrayView<T> target, ArrayView<T> delta)
        where T : unmanaged, IFloatingPointIeee754<T> => target[index] += delta[index];
}
