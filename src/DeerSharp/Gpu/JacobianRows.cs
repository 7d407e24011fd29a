using ILGPU;

namespace DeerSharp.Gpu;

/// <summary>
/// One thread's rows of a cell's state Jacobian, written into a block of the Jacobian and multiplied with h_{t−1} for the
/// Newton term. A dense cell is the structured cell with one block of k = n units: the dense kernels
/// (<see cref="DenseKernels"/>) call these with k = n and the whole state as the block, the structured kernels
/// (<see cref="StructuredKernels"/>) with their k. W_hh's row r holds k entries from r·k; <c>first</c> is the block's first
/// state index in prev; <c>own</c> is the thread's unit within the block.
/// </summary>
internal static class JacobianRows
{
    /// <summary>Tanh RNN row i: (1 − f²) W_hh[i, c]. Returns Σ_c J[i, c] h_{t−1}[c].</summary>
    public static T Rnn<T>(ArrayView<T> whh, ArrayView<T> prev, ArrayView<T> jac, long jrow, long first, int i, int k, T slope)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T product = T.Zero;
        for (int c = 0; c < k; c++)
        {
            T entry = slope * whh[((long)i * k) + c];
            jac[jrow + c] = entry;
            product += entry * prev[first + c];
        }

        return product;
    }

    /// <summary>GRU row i: α W_r[i, c] + γ W_n[i, c] + ε W_z[i, c] + z δ(c, own). Returns Σ_c J[i, c] h_{t−1}[c].</summary>
    public static T Gru<T>(ArrayView<T> whh, ArrayView<T> prev, ArrayView<T> jac, long jrow, long first, int n, int i, int k, int own, T alpha, T common,
        T eps, T z)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T product = T.Zero;
        for (int c = 0; c < k; c++)
        {
            T entry = (alpha * whh[((long)i * k) + c]) + (common * whh[((long)((2 * n) + i) * k) + c]) + (eps * whh[((long)(n + i) * k) + c]);
            if (c == own)
            {
                entry += z;
            }

            jac[jrow + c] = entry;
            product += entry * prev[first + c];
        }

        return product;
    }

    /// <summary>
    /// LSTM rows h'_u (at <paramref name="hRow"/>) and c'_u (at <paramref name="cRow"/>) of a block of side 2k (the block's h,
    /// then its c): ∂/∂h through the gates, and ∂/∂c = diag(h_c f, f) on the thread's own unit. Returns both rows' products
    /// with h_{t−1} and c_{t−1}.
    /// </summary>
    public static (T H, T C) Lstm<T>(ArrayView<T> whh, ArrayView<T> prev, ArrayView<T> jac, long hRow, long cRow, long first, long cellFirst, int n, int u,
        int k, int own, T ci, T cf, T cg, T oPrime, T hc, T fg)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T hProduct = T.Zero, cProduct = T.Zero;
        for (int col = 0; col < k; col++)
        {
            T dc = (cf * whh[((long)(n + u) * k) + col]) + (ci * whh[((long)u * k) + col]) + (cg * whh[((long)((2 * n) + u) * k) + col]);
            T dh = (oPrime * whh[((long)((3 * n) + u) * k) + col]) + (hc * dc);
            jac[hRow + col] = dh;
            jac[cRow + col] = dc;
            hProduct += dh * prev[first + col];
            cProduct += dc * prev[first + col];
        }

        for (int col = 0; col < k; col++)
        {
            jac[hRow + k + col] = col == own ? hc * fg : T.Zero;
            jac[cRow + k + col] = col == own ? fg : T.Zero;
        }

        T cPrev = prev[cellFirst + own];
        return (hProduct + (hc * fg * cPrev), cProduct + (fg * cPrev));
    }
}
