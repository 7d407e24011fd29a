using System.Numerics;
using ILGPU;

namespace DeerSharp.Gpu;

/// <summary>
/// A GRU step for every (sequence, step, unit) at once, as ILGPU kernels: the recurrent product W_hh h_{t−1} for all t,
/// then f, the Jacobian's diagonal and the quasi-Newton term f − diag(J) h_{t−1} in one pass (PyTorch's equations, gates
/// r, z, n). Rows are (sequence, step) pairs, [rows, ·] row-major. The second issue #13 piece after the scan.
/// </summary>
internal static class GruKernels
{
    /// <summary>hh[row, g] = Σ_j W_hh[g, j] · prev[row, j], one thread per (row, g), g over the 3n gate rows.</summary>
    public static void RecurrentProduct<T>(Index1D index, ArrayView<T> whh, ArrayView<T> prev, ArrayView<T> hh, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int gates = 3 * n;
        int g = index % gates;
        long row = index / gates;
        T sum = T.Zero;
        for (int j = 0; j < n; j++)
        {
            sum += whh[((long)g * n) + j] * prev[(row * n) + j];
        }

        hh[index] = sum;
    }

    /// <summary>
    /// One thread per (row, unit i): r, z, n̂ from the input projection xp (W_ih x + b_ih), hh and b_hh; f = (1 − z) n̂ + z h;
    /// the exact diagonal ∂f_i/∂h_i; and the quasi-Newton term f − diag · h. (The same closed form as GruCell.)
    /// </summary>
    public static void EvaluateDiagonal<T>(Index1D index, ArrayView<T> xp, ArrayView<T> hh, ArrayView<T> bhh, ArrayView<T> whh,
        ArrayView<T> prev, ArrayView<T> f, ArrayView<T> diagonal, ArrayView<T> newtonTerm, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = index % n;
        long row = index / n, g = row * 3 * n;
        T h = prev[index];
        T hr = hh[g + i] + bhh[i], hz = hh[g + n + i] + bhh[n + i], hn = hh[g + (2 * n) + i] + bhh[(2 * n) + i];
        T r = Sigmoid(xp[g + i] + hr);
        T z = Sigmoid(xp[g + n + i] + hz);
        T candidate = T.Tanh(xp[g + (2 * n) + i] + (r * hn));
        T value = ((T.One - z) * candidate) + (z * h);
        // ∂r_i/∂h_i = r(1−r)·W_r[i,i], ∂z_i/∂h_i = z(1−z)·W_z[i,i], ∂n̂_i/∂h_i = (1−n̂²)(r·W_n[i,i] + hn·∂r_i/∂h_i).
        T dr = r * (T.One - r) * whh[((long)i * n) + i];
        T dz = z * (T.One - z) * whh[((long)(n + i) * n) + i];
        T dn = (T.One - (candidate * candidate)) * ((r * whh[((long)((2 * n) + i) * n) + i]) + (hn * dr));
        T d = ((T.One - z) * dn) + ((h - candidate) * dz) + z;
        f[index] = value;
        diagonal[index] = d;
        newtonTerm[index] = value - (d * h);
    }

    private static T Sigmoid<T>(T x)
        where T : unmanaged, IFloatingPointIeee754<T> => T.One / (T.One + T.Exp(-x));
}
