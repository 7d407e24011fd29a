using ILGPU;

namespace DeerSharp.Gpu;

/// <summary>
/// quasi-ELK on the device (reference §6, the CPU's Solver.SolveDamped): the residual r = h − f with its sum of squares
/// (the Levenberg-Marquardt merit, accumulated in double), the damped tridiagonal step per state channel, and the update.
/// The step is solved by parallel cyclic reduction (⌈log2 L⌉ launches, each parallel over every (sequence, step, channel))
/// when the sequences and channels alone are too few to fill a GPU, else by the Thomas algorithm (one thread per
/// (sequence, channel), sequential in t, O(L) work).
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

    /// <summary>
    /// The same system as <see cref="Thomas{T}"/> written out for parallel cyclic reduction, one thread per (sequence,
    /// step, channel): lower_t = −d_t (0 at t = 0), main_t = 1 + λ + d_{t+1}², upper_t = −d_{t+1} (0 at the end),
    /// rhs_t = −(r_t − d_{t+1} r_{t+1}).
    /// </summary>
    public static void CyclicSetup<T>(Index1D index, ArrayView<T> r, ArrayView<T> d, ArrayView<T> lower, ArrayView<T> main, ArrayView<T> upper,
        ArrayView<T> rhs, T lambda, int length, int s)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int t = (int)(index / s % length);
        bool hasNext = t + 1 < length;
        T dNext = hasNext ? d[index + s] : T.Zero, rNext = hasNext ? r[index + s] : T.Zero;
        lower[index] = t > 0 ? -d[index] : T.Zero;
        main[index] = T.One + lambda + (dNext * dNext);
        upper[index] = -dNext;
        rhs[index] = -(r[index] - (dNext * rNext));
    }

    /// <summary>
    /// One step of parallel cyclic reduction at distance <paramref name="delta"/>: equation t eliminates its couplings to
    /// t ± δ with equations t ± δ, and couples to t ± 2δ instead. After ⌈log2 L⌉ steps every equation stands alone. The
    /// system is symmetric positive definite, and each step keeps it so (the new equations are Schur complements), so no
    /// pivoting is needed. Reads one set of arrays, writes the other.
    /// </summary>
    public static void CyclicStep<T>(Index1D index, ArrayView<T> lower, ArrayView<T> main, ArrayView<T> upper, ArrayView<T> rhs,
        ArrayView<T> lowerOut, ArrayView<T> mainOut, ArrayView<T> upperOut, ArrayView<T> rhsOut, int delta, int length, int s)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int t = (int)(index / s % length);
        long back = index - ((long)delta * s), ahead = index + ((long)delta * s);
        T b = main[index], y = rhs[index], newLower = T.Zero, newUpper = T.Zero;
        if (t >= delta)
        {
            T k = lower[index] / main[back];
            newLower = -lower[back] * k;
            b -= upper[back] * k;
            y -= rhs[back] * k;
        }

        if (t + delta < length)
        {
            T k = upper[index] / main[ahead];
            newUpper = -upper[ahead] * k;
            b -= lower[ahead] * k;
            y -= rhs[ahead] * k;
        }

        lowerOut[index] = newLower;
        mainOut[index] = b;
        upperOut[index] = newUpper;
        rhsOut[index] = y;
    }

    /// <summary>The decoupled equations' solution: step = rhs / main.</summary>
    public static void CyclicSolve<T>(Index1D index, ArrayView<T> main, ArrayView<T> rhs, ArrayView<T> step)
        where T : unmanaged, IFloatingPointIeee754<T> => step[index] = rhs[index] / main[index];

    /// <summary>target += delta.</summary>
    public static void Add<T>(Index1D index, ArrayView<T> target, ArrayView<T> delta)
        where T : unmanaged, IFloatingPointIeee754<T> => target[index] += delta[index];
}
