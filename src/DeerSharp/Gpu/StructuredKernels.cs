using ILGPU;

namespace DeerSharp.Gpu;

/// <summary>
/// The structured cells' fused evaluation as ILGPU kernels (issue #15): one thread per (row, unit) computes the block
/// recurrent product (k multiply-adds per gate), f, its row(s) of the block Jacobian in <see cref="Cells.JacobianMode.Block"/>
/// layout, and the Newton term f − J h_{t−1} — one launch per iteration. Rows are (sequence, step) pairs; xp is the input
/// projection W_ih x + b_ih, [rows, G·n]; W_hh is [G·n, k] and b_hh [G·n], as in <see cref="Cells.StructuredWeights{T}"/>.
/// The same equations as <see cref="Cells.IndRnnCell{T}"/>, <see cref="Cells.DiagonalGruCell{T}"/> and
/// <see cref="Cells.DiagonalLstmCell{T}"/>, in plain arithmetic (no fused multiply-add: ilgpu.md §3).
/// </summary>
internal static class StructuredKernels
{
    /// <summary>IndRNN: f = tanh(xp + A h + b_hh), J[i, c] = (1 − f²) W_hh[i, c].</summary>
    public static void EvaluateIndRnn<T>(Index1D index, ArrayView<T> xp, ArrayView<T> whh, ArrayView<T> bhh, ArrayView<T> prev,
        ArrayView<T> f, ArrayView<T> jac, ArrayView<T> term, int n, int k)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = index % n;
        long row = index / n, state = row * n, first = state + (i / k * k);
        T a = xp[index] + bhh[i] + DeviceMath.RowProduct(whh, prev, i, first, k);
        T value = T.Tanh(a), slope = T.One - (value * value);
        f[index] = value;
        term[index] = value - JacobianRows.Rnn(whh, prev, jac, (row * n * k) + ((long)i * k), first, i, k, slope);
    }

    /// <summary>
    /// The diagonal GRU: r, z from xp and the block products, n̂ = tanh(xp_n + r (A_n h + b_hn)), f = (1 − z) n̂ + z h, and
    /// J[i, c] = α A_r[i, c] + γ A_n[i, c] + ε A_z[i, c] + z δ(c, i mod k).
    /// </summary>
    public static void EvaluateDiagonalGru<T>(Index1D index, ArrayView<T> xp, ArrayView<T> whh, ArrayView<T> bhh, ArrayView<T> prev,
        ArrayView<T> f, ArrayView<T> jac, ArrayView<T> term, int n, int k)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = index % n;
        long row = index / n, first = (row * n) + (i / k * k), g = row * 3 * n;
        T h = prev[index];
        T r = DeviceMath.Sigmoid(xp[g + i] + bhh[i] + DeviceMath.RowProduct(whh, prev, i, first, k));
        T z = DeviceMath.Sigmoid(xp[g + n + i] + bhh[n + i] + DeviceMath.RowProduct(whh, prev, n + i, first, k));
        T hn = DeviceMath.RowProduct(whh, prev, (2 * n) + i, first, k) + bhh[(2 * n) + i];
        T candidate = T.Tanh(xp[g + (2 * n) + i] + (r * hn));
        T value = ((T.One - z) * candidate) + (z * h);
        T common = (T.One - z) * (T.One - (candidate * candidate)) * r;
        T alpha = common * (T.One - r) * hn, eps = (h - candidate) * z * (T.One - z);
        f[index] = value;
        term[index] = value - JacobianRows.Gru(whh, prev, jac, (row * n * k) + ((long)i * k), first, n, i, k, i % k, alpha, common, eps, z);
    }

    /// <summary>
    /// The diagonal LSTM, one thread per (row, unit u) of a [h; c] state: h' and c', rows u mod k (h'_u) and k + u mod k
    /// (c'_u) of block ⌊u/k⌋ (side 2k: the block's h, then its c), and both Newton terms.
    /// </summary>
    public static void EvaluateDiagonalLstm<T>(Index1D index, ArrayView<T> xp, ArrayView<T> whh, ArrayView<T> bhh, ArrayView<T> prev,
        ArrayView<T> f, ArrayView<T> jac, ArrayView<T> term, int n, int k)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int u = index % n, own = u % k, side = 2 * k;
        long row = index / n, state = row * 2 * n, first = state + (u - own), g = row * 4 * n;
        T ig = DeviceMath.Sigmoid(xp[g + u] + bhh[u] + DeviceMath.RowProduct(whh, prev, u, first, k));
        T fg = DeviceMath.Sigmoid(xp[g + n + u] + bhh[n + u] + DeviceMath.RowProduct(whh, prev, n + u, first, k));
        T gg = T.Tanh(xp[g + (2 * n) + u] + bhh[(2 * n) + u] + DeviceMath.RowProduct(whh, prev, (2 * n) + u, first, k));
        T og = DeviceMath.Sigmoid(xp[g + (3 * n) + u] + bhh[(3 * n) + u] + DeviceMath.RowProduct(whh, prev, (3 * n) + u, first, k));
        T cPrev = prev[state + n + u];
        T c = (fg * cPrev) + (ig * gg), t = T.Tanh(c), hValue = og * t;
        T ci = gg * ig * (T.One - ig), cf = cPrev * fg * (T.One - fg), cg = ig * (T.One - (gg * gg));
        T oPrime = og * (T.One - og) * t, hc = og * (T.One - (t * t));
        long block = (row * 2 * n * side) + ((long)(u / k) * side * side), hRow = block + ((long)own * side), cRow = block + ((long)(k + own) * side);
        (T hProduct, T cProduct) = JacobianRows.Lstm(whh, prev, jac, hRow, cRow, first, state + n + (u - own), n, u, k, own, ci, cf, cg, oPrime, hc, fg);
        f[state + u] = hValue;
        f[state + n + u] = c;
        term[state + u] = hValue - hProduct;
        term[state + n + u] = c - cProduct;
    }
}

/// <summary>
/// The block-diagonal linear recurrence h_t = A_t h_{t−1} + b_t as ILGPU kernels: the three phases of
/// <see cref="DiagonalScanKernels"/> with K×K blocks (K = P·k ≤ <see cref="MaxSide"/>), A in
/// <see cref="Cells.JacobianMode.Block"/> layout [B, L, S/K, K, K], states [B, L, S]. A block's row r is state index
/// (r / k)·(S/P) + block·k + r mod k. Chunk maps are [B, chunks, blocks, K + 1, K]: K columns of the map's matrix, then its
/// offset. Each thread keeps two K-vectors in local memory.
/// </summary>
internal static class BlockScanKernels
{
    /// <summary>The largest block side the kernels take (local memory is sized at compile time).</summary>
    public const int MaxSide = 32;

    /// <summary>Phase 1: one thread per (sequence, chunk, block, column j ≤ K) folds column j of the chunk's map (j = K: the offset).</summary>
    public static void Reduce<T>(Index1D index, ArrayView<T> a, ArrayView<T> b, ArrayView<T> maps, int length, int s, int k, int parts, int chunk, int chunks)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int side = k * parts, blocks = s / side, units = s / parts;
        int j = index % (side + 1);
        long rest = index / (side + 1);
        int blk = (int)(rest % blocks), c = (int)(rest / blocks % chunks);
        long seq = rest / blocks / chunks;
        ArrayView<T> x = LocalMemory.Allocate<T>(MaxSide), y = LocalMemory.Allocate<T>(MaxSide);
        for (int r = 0; r < side; r++)
        {
            x[r] = r == j ? T.One : T.Zero;
        }

        int t0 = c * chunk, t1 = Math.Min(length, t0 + chunk);
        for (int t = t0; t < t1; t++)
        {
            long step = (seq * length) + t, ablock = (step * s * side) + ((long)blk * side * side);
            for (int r = 0; r < side; r++)
            {
                T sum = j == side ? b[(step * s) + Index(blk, r, k, units)] : T.Zero;
                for (int col = 0; col < side; col++)
                {
                    sum += a[ablock + ((long)r * side) + col] * x[col];
                }

                y[r] = sum;
            }

            for (int r = 0; r < side; r++)
            {
                x[r] = y[r];
            }
        }

        for (int r = 0; r < side; r++)
        {
            maps[(((long)(int)index) * side) + r] = x[r];
        }
    }

    /// <summary>Phase 2: one thread per (sequence, block) runs through the chunk maps in order, writing each chunk's incoming block state.</summary>
    public static void Carry<T>(Index1D index, ArrayView<T> maps, ArrayView<T> h0, ArrayView<T> carry, int s, int k, int parts, int chunks)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int side = k * parts, blocks = s / side, units = s / parts;
        int blk = index % blocks;
        long seq = index / blocks;
        ArrayView<T> x = LocalMemory.Allocate<T>(MaxSide), y = LocalMemory.Allocate<T>(MaxSide);
        for (int r = 0; r < side; r++)
        {
            x[r] = h0[(seq * s) + Index(blk, r, k, units)];
        }

        for (int c = 0; c < chunks; c++)
        {
            long map = ((seq * chunks) + c) * blocks + blk;
            for (int r = 0; r < side; r++)
            {
                carry[(map * side) + r] = x[r];
            }

            long columns = map * (side + 1) * side;
            for (int r = 0; r < side; r++)
            {
                T sum = maps[columns + ((long)side * side) + r];
                for (int col = 0; col < side; col++)
                {
                    sum += maps[columns + ((long)col * side) + r] * x[col];
                }

                y[r] = sum;
            }

            for (int r = 0; r < side; r++)
            {
                x[r] = y[r];
            }
        }
    }

    /// <summary>Phase 3: one thread per (sequence, chunk, block) re-runs its chunk from its incoming state and writes h.</summary>
    public static void Apply<T>(Index1D index, ArrayView<T> a, ArrayView<T> b, ArrayView<T> carry, ArrayView<T> h, int length, int s, int k, int parts, int chunk, int chunks)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int side = k * parts, blocks = s / side, units = s / parts;
        int blk = index % blocks, c = index / blocks % chunks;
        long seq = index / blocks / chunks;
        ArrayView<T> x = LocalMemory.Allocate<T>(MaxSide), y = LocalMemory.Allocate<T>(MaxSide);
        for (int r = 0; r < side; r++)
        {
            x[r] = carry[(((long)(int)index) * side) + r];
        }

        int t0 = c * chunk, t1 = Math.Min(length, t0 + chunk);
        for (int t = t0; t < t1; t++)
        {
            long step = (seq * length) + t, ablock = (step * s * side) + ((long)blk * side * side);
            for (int r = 0; r < side; r++)
            {
                T sum = b[(step * s) + Index(blk, r, k, units)];
                for (int col = 0; col < side; col++)
                {
                    sum += a[ablock + ((long)r * side) + col] * x[col];
                }

                y[r] = sum;
            }

            for (int r = 0; r < side; r++)
            {
                x[r] = y[r];
                h[(step * s) + Index(blk, r, k, units)] = y[r];
            }
        }
    }

    private static int Index(int block, int r, int k, int units) => (r / k * units) + (block * k) + (r % k);
}
