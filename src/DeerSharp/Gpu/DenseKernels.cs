using ILGPU;

namespace DeerSharp.Gpu;

/// <summary>
/// The dense PyTorch cells (tanh RNN, GRU, LSTM) as ILGPU kernels: the recurrent product W_hh h_{t−1} for every row, the
/// fused evaluation (f; per <c>mode</c> nothing more (0), the Jacobian's diagonal (1) or the full Jacobian (2); and the
/// Newton term f − J h_{t−1}), and each cell's sequential loop, one thread per sequence. Rows are (sequence, step) pairs;
/// xp is W_ih x + b_ih, [rows, G·n]; states are [rows, S] with S = n (2n for the LSTM's [h; c]). The same closed forms
/// as <see cref="Cells.TanhRnnCell{T}"/>, <see cref="Cells.GruCell{T}"/> and <see cref="Cells.LstmCell{T}"/>, in plain
/// arithmetic (no fused multiply-add: ilgpu.md §3).
/// </summary>
internal static class DenseKernels
{
    /// <summary>hh[row, g] = Σ_j W_hh[g, j] · h[row, j] for the G·n gate rows, reading h as the first n entries of a state of stride <paramref name="s"/>.</summary>
    public static void RecurrentProduct<T>(Index1D index, ArrayView<T> whh, ArrayView<T> prev, ArrayView<T> hh, int n, int s, int rows)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int g = index % rows;
        long row = index / rows;
        T sum = T.Zero;
        for (int j = 0; j < n; j++)
        {
            sum += whh[((long)g * n) + j] * prev[(row * s) + j];
        }

        hh[index] = sum;
    }

    /// <summary>Tanh RNN, one thread per (row, unit): f = tanh(xp + hh + b_hh), J = diag(1 − f²) W_hh.</summary>
    public static void EvaluateRnn<T>(Index1D index, ArrayView<T> xp, ArrayView<T> hh, ArrayView<T> bhh, ArrayView<T> whh, ArrayView<T> prev,
        ArrayView<T> f, ArrayView<T> jac, ArrayView<T> term, int n, int mode)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = index % n;
        long row = index / n;
        T value = T.Tanh(xp[index] + hh[index] + bhh[i]), slope = T.One - (value * value);
        f[index] = value;
        if (mode == 1)
        {
            T d = slope * whh[((long)i * n) + i];
            jac[index] = d;
            term[index] = value - (d * prev[index]);
        }
        else if (mode == 2)
        {
            term[index] = value - JacobianRows.Rnn(whh, prev, jac, (row * n * n) + ((long)i * n), row * n, i, n, slope);
        }
    }

    /// <summary>
    /// GRU, one thread per (row, unit): PyTorch's r, z, n̂ and h' = (1 − z) n̂ + z h, with J[i, j] = α W_r[i, j] + γ W_n[i, j]
    /// + ε W_z[i, j] + z δ_ij (α = (1 − z)(1 − n̂²) r(1 − r)(W_n h + b_hn), γ = (1 − z)(1 − n̂²) r, ε = (h − n̂) z(1 − z)).
    /// </summary>
    public static void EvaluateGru<T>(Index1D index, ArrayView<T> xp, ArrayView<T> hh, ArrayView<T> bhh, ArrayView<T> whh, ArrayView<T> prev,
        ArrayView<T> f, ArrayView<T> jac, ArrayView<T> term, int n, int mode)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = index % n;
        long row = index / n, g = row * 3 * n;
        T h = prev[index];
        T r = DeviceMath.Sigmoid(xp[g + i] + hh[g + i] + bhh[i]);
        T z = DeviceMath.Sigmoid(xp[g + n + i] + hh[g + n + i] + bhh[n + i]);
        T hn = hh[g + (2 * n) + i] + bhh[(2 * n) + i];
        T candidate = T.Tanh(xp[g + (2 * n) + i] + (r * hn));
        T value = ((T.One - z) * candidate) + (z * h);
        f[index] = value;
        if (mode == 0)
        {
            return;
        }

        T common = (T.One - z) * (T.One - (candidate * candidate)) * r;
        T alpha = common * (T.One - r) * hn, eps = (h - candidate) * z * (T.One - z);
        if (mode == 1)
        {
            T d = (alpha * whh[((long)i * n) + i]) + (common * whh[((long)((2 * n) + i) * n) + i]) + (eps * whh[((long)(n + i) * n) + i]) + z;
            jac[index] = d;
            term[index] = value - (d * h);
            return;
        }

        term[index] = value - JacobianRows.Gru(whh, prev, jac, (row * n * n) + ((long)i * n), row * n, n, i, n, i, alpha, common, eps, z);
    }

    /// <summary>
    /// LSTM, one thread per (row, unit u) of a [h; c] state (S = 2n): i, f, g, o; c' = f c + i g; h' = o tanh(c'); rows u
    /// and n + u of the Jacobian (or their diagonal entries) and both Newton terms.
    /// </summary>
    public static void EvaluateLstm<T>(Index1D index, ArrayView<T> xp, ArrayView<T> hh, ArrayView<T> bhh, ArrayView<T> whh, ArrayView<T> prev,
        ArrayView<T> f, ArrayView<T> jac, ArrayView<T> term, int n, int mode)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int u = index % n, s = 2 * n;
        long row = index / n, state = row * s, g = row * 4 * n;
        T ig = DeviceMath.Sigmoid(xp[g + u] + hh[g + u] + bhh[u]);
        T fg = DeviceMath.Sigmoid(xp[g + n + u] + hh[g + n + u] + bhh[n + u]);
        T gg = T.Tanh(xp[g + (2 * n) + u] + hh[g + (2 * n) + u] + bhh[(2 * n) + u]);
        T og = DeviceMath.Sigmoid(xp[g + (3 * n) + u] + hh[g + (3 * n) + u] + bhh[(3 * n) + u]);
        T cPrev = prev[state + n + u];
        T c = (fg * cPrev) + (ig * gg), t = T.Tanh(c), hValue = og * t;
        f[state + u] = hValue;
        f[state + n + u] = c;
        if (mode == 0)
        {
            return;
        }

        T ci = gg * ig * (T.One - ig), cf = cPrev * fg * (T.One - fg), cg = ig * (T.One - (gg * gg));
        T oPrime = og * (T.One - og) * t, hc = og * (T.One - (t * t));
        if (mode == 1)
        {
            T dc = (cf * whh[((long)(n + u) * n) + u]) + (ci * whh[((long)u * n) + u]) + (cg * whh[((long)((2 * n) + u) * n) + u]);
            T dh = (oPrime * whh[((long)((3 * n) + u) * n) + u]) + (hc * dc);
            jac[state + u] = dh;
            jac[state + n + u] = fg;
            term[state + u] = hValue - (dh * prev[state + u]);
            term[state + n + u] = c - (fg * cPrev);
            return;
        }

        long hRow = (row * s * s) + ((long)u * s), cRow = (row * s * s) + ((long)(n + u) * s);
        (T hProduct, T cProduct) = JacobianRows.Lstm(whh, prev, jac, hRow, cRow, state, state + n, n, u, n, u, ci, cf, cg, oPrime, hc, fg);
        term[state + u] = hValue - hProduct;
        term[state + n + u] = c - cProduct;
    }

    /// <summary>
    /// GILR, one thread per (row, unit): g = σ(xp_g), i = tanh(xp_i), f = g h + (1 − g) i. Linear in h: the Jacobian is
    /// diag(g) and the Newton term (1 − g) i, whatever the iterate, so one diagonal scan is exact.
    /// </summary>
    public static void EvaluateGilr<T>(Index1D index, ArrayView<T> xp, ArrayView<T> hh, ArrayView<T> bhh, ArrayView<T> whh, ArrayView<T> prev,
        ArrayView<T> f, ArrayView<T> jac, ArrayView<T> term, int n, int mode)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = index % n;
        long row = index / n, g = row * 2 * n;
        T gate = DeviceMath.Sigmoid(xp[g + i]), impulse = T.Tanh(xp[g + n + i]);
        T drive = (T.One - gate) * impulse;
        f[index] = (gate * prev[index]) + drive;
        if (mode != 0)
        {
            jac[index] = gate;
            term[index] = drive;
        }
    }

    /// <summary>
    /// SRU, one thread per (row, unit j) of a [h; c] state: with xp = [x̃; f; r; x], c' = f c + (1 − f) x̃ and
    /// h' = r tanh(c') + (1 − r) x. c is linear in c with coefficients from x alone (the Jacobian's c-diagonal is f, the
    /// Newton term (1 − f) x̃); h' depends on c' only, so after the scan one evaluation gives h.
    /// </summary>
    public static void EvaluateSru<T>(Index1D index, ArrayView<T> xp, ArrayView<T> hh, ArrayView<T> bhh, ArrayView<T> whh, ArrayView<T> prev,
        ArrayView<T> f, ArrayView<T> jac, ArrayView<T> term, int n, int mode)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int j = index % n;
        long row = index / n, g = row * 4 * n, state = row * 2 * n;
        T forget = DeviceMath.Sigmoid(xp[g + n + j]), reset = DeviceMath.Sigmoid(xp[g + (2 * n) + j]);
        T drive = (T.One - forget) * xp[g + j];
        T c = (forget * prev[state + n + j]) + drive;
        f[state + n + j] = c;
        f[state + j] = (reset * T.Tanh(c)) + ((T.One - reset) * xp[g + (3 * n) + j]);
        if (mode != 0)
        {
            jac[state + j] = T.Zero;
            term[state + j] = T.Zero;
            jac[state + n + j] = forget;
            term[state + n + j] = drive;
        }
    }

    /// <summary>
    /// GILR-LSTM, one thread per (row, unit j) of a [h; h~; c] state: h~' = g h~ + (1 − g) i (the GILR surrogate), the
    /// LSTM gates from W_ih x + b and W_hh h~ (k-sums inline), c' = f c + i z, h' = o c'. The h~ and c parts are linear
    /// in their own state (Jacobian diagonals g and f, Newton terms (1 − g) i and i z); h' depends on c' alone.
    /// </summary>
    public static void EvaluateGilrLstm<T>(Index1D index, ArrayView<T> xp, ArrayView<T> hh, ArrayView<T> bhh, ArrayView<T> whh, ArrayView<T> prev,
        ArrayView<T> f, ArrayView<T> jac, ArrayView<T> term, int n, int mode)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int j = index % n;
        long row = index / n, g = row * 6 * n, state = row * 3 * n;
        T gate = DeviceMath.Sigmoid(xp[g + j]), impulse = T.Tanh(xp[g + n + j]);
        T drive = (T.One - gate) * impulse;
        T surrogate = (gate * prev[state + n + j]) + drive;
        T ig = DeviceMath.Sigmoid(xp[g + (2 * n) + j] + DeviceMath.RowProduct(whh, prev, j, state + n, n));
        T fg = DeviceMath.Sigmoid(xp[g + (3 * n) + j] + DeviceMath.RowProduct(whh, prev, n + j, state + n, n));
        T zg = T.Tanh(xp[g + (4 * n) + j] + DeviceMath.RowProduct(whh, prev, (2 * n) + j, state + n, n));
        T og = DeviceMath.Sigmoid(xp[g + (5 * n) + j] + DeviceMath.RowProduct(whh, prev, (3 * n) + j, state + n, n));
        T c = (fg * prev[state + (2 * n) + j]) + (ig * zg);
        f[state + j] = og * c;
        f[state + n + j] = surrogate;
        f[state + (2 * n) + j] = c;
        if (mode != 0)
        {
            jac[state + j] = T.Zero;
            term[state + j] = T.Zero;
            jac[state + n + j] = gate;
            term[state + n + j] = drive;
            jac[state + (2 * n) + j] = fg;
            term[state + (2 * n) + j] = ig * zg;
        }
    }

    /// <summary>The sequential loop of a dense cell, one thread per sequence (the GPU's own baseline); kind 0 RNN, 1 GRU, 2 LSTM, 6 GILR, 7 SRU, 8 GILR-LSTM.</summary>
    public static void Loop<T>(Index1D index, ArrayView<T> xp, ArrayView<T> whh, ArrayView<T> bhh, ArrayView<T> h0, ArrayView<T> states,
        int length, int n, int kind)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = kind == 8 ? 3 * n : kind is 2 or 7 ? 2 * n : n, gates = kind == 0 ? 1 : kind == 1 ? 3 : kind == 6 ? 2 : kind == 8 ? 6 : 4;
        long seq = index;
        for (int t = 0; t < length; t++)
        {
            long step = (seq * length) + t, current = step * s, x = step * gates * n;
            long previous = t == 0 ? seq * s : current - s;
            ArrayView<T> source = t == 0 ? h0 : states;
            for (int i = 0; i < n; i++)
            {
                if (kind == 0)
                {
                    states[current + i] = T.Tanh(xp[x + i] + DeviceMath.RowProduct(whh, source, i, previous, n) + bhh[i]);
                }
                else if (kind == 8)
                {
                    T gate = DeviceMath.Sigmoid(xp[x + i]), surrogate = (gate * source[previous + n + i]) + ((T.One - gate) * T.Tanh(xp[x + n + i]));
                    T ig = DeviceMath.Sigmoid(xp[x + (2 * n) + i] + DeviceMath.RowProduct(whh, source, i, previous + n, n));
                    T fg = DeviceMath.Sigmoid(xp[x + (3 * n) + i] + DeviceMath.RowProduct(whh, source, n + i, previous + n, n));
                    T zg = T.Tanh(xp[x + (4 * n) + i] + DeviceMath.RowProduct(whh, source, (2 * n) + i, previous + n, n));
                    T og = DeviceMath.Sigmoid(xp[x + (5 * n) + i] + DeviceMath.RowProduct(whh, source, (3 * n) + i, previous + n, n));
                    T c = (fg * source[previous + (2 * n) + i]) + (ig * zg);
                    states[current + (2 * n) + i] = c;
                    states[current + n + i] = surrogate;
                    states[current + i] = og * c;
                }
                else if (kind == 7)
                {
                    T forget = DeviceMath.Sigmoid(xp[x + n + i]), reset = DeviceMath.Sigmoid(xp[x + (2 * n) + i]);
                    T c = (forget * source[previous + n + i]) + ((T.One - forget) * xp[x + i]);
                    states[current + n + i] = c;
                    states[current + i] = (reset * T.Tanh(c)) + ((T.One - reset) * xp[x + (3 * n) + i]);
                }
                else if (kind == 6)
                {
                    T gate = DeviceMath.Sigmoid(xp[x + i]), impulse = T.Tanh(xp[x + n + i]);
                    states[current + i] = (gate * source[previous + i]) + ((T.One - gate) * impulse);
                }
                else if (kind == 1)
                {
                    T r = DeviceMath.Sigmoid(xp[x + i] + DeviceMath.RowProduct(whh, source, i, previous, n) + bhh[i]);
                    T z = DeviceMath.Sigmoid(xp[x + n + i] + DeviceMath.RowProduct(whh, source, n + i, previous, n) + bhh[n + i]);
                    T hn = DeviceMath.RowProduct(whh, source, (2 * n) + i, previous, n) + bhh[(2 * n) + i];
                    T candidate = T.Tanh(xp[x + (2 * n) + i] + (r * hn));
                    states[current + i] = ((T.One - z) * candidate) + (z * source[previous + i]);
                }
                else
                {
                    T ig = DeviceMath.Sigmoid(xp[x + i] + DeviceMath.RowProduct(whh, source, i, previous, n) + bhh[i]);
                    T fg = DeviceMath.Sigmoid(xp[x + n + i] + DeviceMath.RowProduct(whh, source, n + i, previous, n) + bhh[n + i]);
                    T gg = T.Tanh(xp[x + (2 * n) + i] + DeviceMath.RowProduct(whh, source, (2 * n) + i, previous, n) + bhh[(2 * n) + i]);
                    T og = DeviceMath.Sigmoid(xp[x + (3 * n) + i] + DeviceMath.RowProduct(whh, source, (3 * n) + i, previous, n) + bhh[(3 * n) + i]);
                    T c = (fg * source[previous + n + i]) + (ig * gg);
                    states[current + n + i] = c;
                    states[current + i] = og * T.Tanh(c);
                }
            }
        }
    }
}
