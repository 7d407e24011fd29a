using ILGPU;

namespace DeerSharp.Gpu;

/// <summary>
/// The gradient on the device for the dense and structured cells (reference §7, the CPU's Adjoint.ScanAdjoint): the reversed, transposed
/// recurrence w_u = J_{T−u}ᵀ w_{u−1} + g_{T−1−u} set up for the block scan, the adjoints v_t back in time order, each
/// cell's pre-activation gradients δ (recomputing its gates from the solution), and the products and sums that turn δ
/// into ∂L/∂θ, ∂L/∂x and ∂L/∂h_{t−1}. Arrays are [B, L, ·]; rows are (sequence, step) pairs.
/// </summary>
internal static class AdjointKernels
{
    /// <summary>
    /// a[seq, u] = J[seq, L − u]ᵀ for u ≥ 1 and 0 for u = 0, block by block: one thread per (seq, u, block, r, c) of the
    /// S/side blocks of side × side per step (<see cref="Cells.JacobianMode.Block"/> layout; one S×S block when side = S).
    /// </summary>
    public static void ReverseTranspose<T>(Index1D index, ArrayView<T> jac, ArrayView<T> a, int length, int s, int side)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int perStep = s * side, e = index % perStep;
        int block = e / (side * side), r = e / side % side, c = e % side;
        long row = index / perStep, seq = row / length;
        int u = (int)(row % length);
        a[index] = u == 0 ? T.Zero : jac[(((seq * length) + (length - u)) * perStep) + ((long)block * side * side) + ((long)c * side) + r];
    }

    /// <summary>hh[row, g] = Σ_c W_hh[g, c] h[row, ⌊i/k⌋k + c] (i = g mod n): a structured cell's recurrent pre-activations at the solution.</summary>
    public static void BlockProduct<T>(Index1D index, ArrayView<T> whh, ArrayView<T> prev, ArrayView<T> hh, int gates, int n, int k, int s)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int g = index % gates, i = g % n;
        long row = index / gates, first = (row * s) + (i / k * k);
        T sum = T.Zero;
        for (int c = 0; c < k; c++)
        {
            sum += whh[((long)g * k) + c] * prev[first + c];
        }

        hh[index] = sum;
    }

    /// <summary>Stage 1 of ∂L/∂W_hh[g, c] = Σ_rows δ_hh[row, g] h[row, ⌊i/k⌋k + c] for a structured W_hh [G·n, k]: one thread per (chunk of rows, g, c).</summary>
    public static void AccumulateBlocks<T>(Index1D index, ArrayView<T> delta, ArrayView<T> prev, ArrayView<T> partial, int gates, int n, int k, int s,
        int rows, int chunkRows)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int outputs = gates * k, o = index % outputs, chunk = index / outputs;
        int g = o / k, j = (g % n / k * k) + (o % k);
        long first = (long)chunk * chunkRows, last = Math.Min(rows, first + chunkRows);
        T sum = T.Zero;
        for (long row = first; row < last; row++)
        {
            sum += delta[(row * gates) + g] * prev[(row * s) + j];
        }

        partial[index] = sum;
    }

    /// <summary>∂L/∂h_{t−1}[row, j] += Σ_g W_hh[g, j mod k] δ_hh[row, g] over the gate rows g of j's block: a structured W_hhᵀ δ_hh.</summary>
    public static void ProductBlocks<T>(Index1D index, ArrayView<T> delta, ArrayView<T> whh, ArrayView<T> y, int gates, int n, int k, int s)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int j = index % n, start = j / k * k, c = j % k;
        long row = index / n;
        T sum = T.Zero;
        for (int part = 0; part < gates; part += n)
        {
            for (int r = 0; r < k; r++)
            {
                int g = part + start + r;
                sum += delta[(row * gates) + g] * whh[((long)g * k) + c];
            }
        }

        y[(row * s) + j] += sum;
    }

    /// <summary>b[seq, u] = g[seq, L − 1 − u] in state space: the output cotangent in the first <paramref name="o"/> entries, zero after.</summary>
    public static void ReverseCotangent<T>(Index1D index, ArrayView<T> cotangent, ArrayView<T> b, int length, int s, int o)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = index % s;
        long row = index / s, seq = row / length;
        int u = (int)(row % length);
        b[index] = i < o ? cotangent[(((seq * length) + (length - 1 - u)) * o) + i] : T.Zero;
    }

    /// <summary>∂L/∂h0[seq, j] = Σ_i J[seq, 0][i, j] v[seq, 0, i]: the full Jacobian's transpose at each sequence's first step.</summary>
    public static void InitialStateAdjoint<T>(Index1D index, ArrayView<T> jac, ArrayView<T> v, ArrayView<T> dh0, int length, int s)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int j = index % s;
        long first = index / s * length;
        T sum = T.Zero;
        for (int i = 0; i < s; i++)
        {
            sum += jac[(((first * s) + i) * s) + j] * v[(first * s) + i];
        }

        dh0[index] = sum;
    }

    /// <summary>
    /// The reversed diagonal recurrence of a linear surrogate's adjoint, w_u = a_u w_{u−1} + b_u over its n linear
    /// channels, one thread per (seq, u, channel) with t = L − 1 − u. GILR (kind 0): v_t = g_t + gate_{t+1} v_{t+1}, so
    /// a_u = gate_{t+1}, b_u = g_t. SRU (kind 1): the adjoint of c through c and h, u_t = g_t r_t (1 − tanh² c_t)
    /// + f_{t+1} u_{t+1} (h' reads no earlier h). a_0 = 0.
    /// </summary>
    public static void SurrogateCoefficients<T>(Index1D index, ArrayView<T> xp, ArrayView<T> states, ArrayView<T> cotangent, ArrayView<T> a,
        ArrayView<T> b, int length, int n, int kind)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = index % n;
        long row = index / n, seq = row / length;
        int u = (int)(row % length);
        long t = (seq * length) + (length - 1 - u), next = t + 1;
        int width = kind == 0 ? 2 * n : 4 * n, coefficient = kind == 0 ? i : n + i;
        a[index] = u == 0 ? T.Zero : DeviceMath.Sigmoid(xp[(next * width) + coefficient]);
        T g = cotangent[(t * n) + i];
        if (kind == 0)
        {
            b[index] = g;
        }
        else
        {
            T r = DeviceMath.Sigmoid(xp[(t * width) + (2 * n) + i]), tc = T.Tanh(states[(t * 2 * n) + n + i]);
            b[index] = g * r * (T.One - (tc * tc));
        }
    }

    /// <summary>
    /// δ for one (row, channel) of a linear surrogate from its channel adjoint u, over its projection rows: GILR (kind 0)
    /// [∂gate; ∂impulse] pre-activations and ∂h_{t−1} = gate u; SRU (kind 1) [∂x̃; ∂f; ∂r; the highway's ∂x] with
    /// ∂c_{t−1} = f u (its projection's identity rows carry the highway, so W_ihᵀ δ is all of ∂L/∂x).
    /// </summary>
    public static void SurrogateDelta<T>(Index1D index, ArrayView<T> xp, ArrayView<T> states, ArrayView<T> prev, ArrayView<T> v, ArrayView<T> cotangent,
        ArrayView<T> dih, ArrayView<T> direct, int n, int kind)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = index % n;
        long row = index / n;
        T u = v[index];
        if (kind == 0)
        {
            long g = row * 2 * n;
            T gate = DeviceMath.Sigmoid(xp[g + i]), impulse = T.Tanh(xp[g + n + i]);
            dih[g + i] = u * (prev[index] - impulse) * gate * (T.One - gate);
            dih[g + n + i] = u * (T.One - gate) * (T.One - (impulse * impulse));
            direct[index] = gate * u;
        }
        else
        {
            long g = row * 4 * n, state = row * 2 * n;
            T candidate = xp[g + i], f = DeviceMath.Sigmoid(xp[g + n + i]), r = DeviceMath.Sigmoid(xp[g + (2 * n) + i]), x = xp[g + (3 * n) + i];
            T tc = T.Tanh(states[state + n + i]), gh = cotangent[index];
            dih[g + i] = u * (T.One - f);
            dih[g + n + i] = u * (prev[state + n + i] - candidate) * f * (T.One - f);
            dih[g + (2 * n) + i] = gh * (tc - x) * r * (T.One - r);
            dih[g + (3 * n) + i] = gh * (T.One - r);
            direct[state + i] = T.Zero;
            direct[state + n + i] = f * u;
        }
    }

    /// <summary>
    /// GILR-LSTM's two reversed diagonal recurrences (state [h; h~; c], xp = [gate; impulse; W_ih x + b], hh = W_hh h~_{t−1}
    /// [rows, 4n]), one thread per (seq, u, channel), t = L − 1 − u. Level 0, c: dc_t = g_t o_t + f_{t+1} dc_{t+1} (h = o c
    /// reads no earlier h). Level 1, h~: v~_t = q_{t+1} + gate_{t+1} v~_{t+1}, with q = W_hhᵀ δ_gates (the gates at t + 1
    /// read h~_t). a_0 = b's q-part at u = 0 = 0.
    /// </summary>
    public static void GilrLstmCoefficients<T>(Index1D index, ArrayView<T> xp, ArrayView<T> hh, ArrayView<T> cotangent, ArrayView<T> q, ArrayView<T> a,
        ArrayView<T> b, int length, int n, int level)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int j = index % n;
        long row = index / n, seq = row / length;
        int u = (int)(row % length);
        long t = (seq * length) + (length - 1 - u), next = t + 1;
        if (level == 0)
        {
            a[index] = u == 0 ? T.Zero : DeviceMath.Sigmoid(xp[(next * 6 * n) + (3 * n) + j] + hh[(next * 4 * n) + n + j]);
            b[index] = cotangent[(t * n) + j] * DeviceMath.Sigmoid(xp[(t * 6 * n) + (5 * n) + j] + hh[(t * 4 * n) + (3 * n) + j]);
        }
        else
        {
            a[index] = u == 0 ? T.Zero : DeviceMath.Sigmoid(xp[(next * 6 * n) + j]);
            b[index] = u == 0 ? T.Zero : q[(next * n) + j];
        }
    }

    /// <summary>
    /// GILR-LSTM's gate δ for one (row, channel) from dc and the output cotangent: into dih's LSTM rows [2n, 6n) and,
    /// contiguous, dhh [rows, 4n] (for W_hh's sums and W_hhᵀ δ); ∂c_{t−1} = dc f.
    /// </summary>
    public static void GilrLstmDelta<T>(Index1D index, ArrayView<T> xp, ArrayView<T> hh, ArrayView<T> states, ArrayView<T> prev, ArrayView<T> dc,
        ArrayView<T> cotangent, ArrayView<T> dih, ArrayView<T> dhh, ArrayView<T> direct, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int j = index % n;
        long row = index / n, g = row * 6 * n, r = row * 4 * n, state = row * 3 * n;
        T ig = DeviceMath.Sigmoid(xp[g + (2 * n) + j] + hh[r + j]);
        T fg = DeviceMath.Sigmoid(xp[g + (3 * n) + j] + hh[r + n + j]);
        T zg = T.Tanh(xp[g + (4 * n) + j] + hh[r + (2 * n) + j]);
        T og = DeviceMath.Sigmoid(xp[g + (5 * n) + j] + hh[r + (3 * n) + j]);
        T d = dc[index], gh = cotangent[index];
        T di = d * zg * ig * (T.One - ig), df = d * prev[state + (2 * n) + j] * fg * (T.One - fg), dz = d * ig * (T.One - (zg * zg));
        T dout = gh * states[state + (2 * n) + j] * og * (T.One - og);
        dih[g + (2 * n) + j] = di;
        dih[g + (3 * n) + j] = df;
        dih[g + (4 * n) + j] = dz;
        dih[g + (5 * n) + j] = dout;
        dhh[r + j] = di;
        dhh[r + n + j] = df;
        dhh[r + (2 * n) + j] = dz;
        dhh[r + (3 * n) + j] = dout;
        direct[state + j] = T.Zero;
        direct[state + (2 * n) + j] = d * fg;
    }

    /// <summary>GILR-LSTM's surrogate δ from v~ (as GILR's), and ∂h~_{t−1} = gate v~ + q.</summary>
    public static void GilrLstmSurrogateDelta<T>(Index1D index, ArrayView<T> xp, ArrayView<T> prev, ArrayView<T> vs, ArrayView<T> q, ArrayView<T> dih,
        ArrayView<T> direct, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int j = index % n;
        long row = index / n, g = row * 6 * n, state = row * 3 * n;
        T gate = DeviceMath.Sigmoid(xp[g + j]), impulse = T.Tanh(xp[g + n + j]), u = vs[index];
        dih[g + j] = u * (prev[state + n + j] - impulse) * gate * (T.One - gate);
        dih[g + n + j] = u * (T.One - gate) * (T.One - (impulse * impulse));
        direct[state + n + j] = (gate * u) + q[index];
    }

    /// <summary>v[seq, t] = w[seq, L − 1 − t].</summary>
    public static void Unreverse<T>(Index1D index, ArrayView<T> w, ArrayView<T> v, int length, int s)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = index % s;
        long row = index / s, seq = row / length;
        int t = (int)(row % length);
        v[index] = w[(((seq * length) + (length - 1 - t)) * s) + i];
    }

    /// <summary>
    /// δ for one (row, unit) of a dense cell (kind 0 RNN, 1 GRU, 2 LSTM), from the adjoint v at the step and the gates
    /// recomputed at the solution: δ_ih (multiplying W_ih x and b_ih), δ_hh (multiplying W_hh h and b_hh), and the direct
    /// part of ∂L/∂h_{t−1} that does not go through W_hh (GRU: v z; LSTM: the c part, ∂c' f).
    /// </summary>
    public static void Delta<T>(Index1D index, ArrayView<T> xp, ArrayView<T> hh, ArrayView<T> bhh, ArrayView<T> prev, ArrayView<T> v,
        ArrayView<T> dih, ArrayView<T> dhh, ArrayView<T> direct, int n, int kind)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = index % n;
        long row = index / n;
        if (kind == 0)
        {
            T value = T.Tanh(xp[index] + hh[index] + bhh[i]);
            T delta = v[index] * (T.One - (value * value));
            dih[index] = delta;
            dhh[index] = delta;
            direct[index] = T.Zero;
        }
        else if (kind == 1)
        {
            long g = row * 3 * n;
            T h = prev[index], vi = v[index];
            T r = DeviceMath.Sigmoid(xp[g + i] + hh[g + i] + bhh[i]);
            T z = DeviceMath.Sigmoid(xp[g + n + i] + hh[g + n + i] + bhh[n + i]);
            T hn = hh[g + (2 * n) + i] + bhh[(2 * n) + i];
            T candidate = T.Tanh(xp[g + (2 * n) + i] + (r * hn));
            T dan = vi * (T.One - z) * (T.One - (candidate * candidate));
            T dar = dan * hn * r * (T.One - r);
            T daz = vi * (h - candidate) * z * (T.One - z);
            dih[g + i] = dar;
            dih[g + n + i] = daz;
            dih[g + (2 * n) + i] = dan;
            dhh[g + i] = dar;
            dhh[g + n + i] = daz;
            dhh[g + (2 * n) + i] = dan * r;
            direct[index] = vi * z;
        }
        else
        {
            long g = row * 4 * n, state = row * 2 * n;
            T ig = DeviceMath.Sigmoid(xp[g + i] + hh[g + i] + bhh[i]);
            T fg = DeviceMath.Sigmoid(xp[g + n + i] + hh[g + n + i] + bhh[n + i]);
            T gg = T.Tanh(xp[g + (2 * n) + i] + hh[g + (2 * n) + i] + bhh[(2 * n) + i]);
            T og = DeviceMath.Sigmoid(xp[g + (3 * n) + i] + hh[g + (3 * n) + i] + bhh[(3 * n) + i]);
            T cPrev = prev[state + n + i];
            T t = T.Tanh((fg * cPrev) + (ig * gg));
            T vh = v[state + i], vc = v[state + n + i];
            T dc = vc + (vh * og * (T.One - (t * t)));
            T dai = dc * gg * ig * (T.One - ig), daf = dc * cPrev * fg * (T.One - fg), dag = dc * ig * (T.One - (gg * gg)), dao = vh * t * og * (T.One - og);
            dih[g + i] = dai;
            dih[g + n + i] = daf;
            dih[g + (2 * n) + i] = dag;
            dih[g + (3 * n) + i] = dao;
            dhh[g + i] = dai;
            dhh[g + n + i] = daf;
            dhh[g + (2 * n) + i] = dag;
            dhh[g + (3 * n) + i] = dao;
            direct[state + i] = T.Zero;
            direct[state + n + i] = dc * fg;
        }
    }

    /// <summary>
    /// Stage 1 of out[g, j] = Σ_rows δ[row, g] · m[row·stride + j] (∂L/∂W_ih with m = x, ∂L/∂W_hh with m = h_{t−1}), or,
    /// with <paramref name="columns"/> = 0, of out[g] = Σ_rows δ[row, g] (the bias): one thread per (chunk of rows,
    /// output) writes its chunk's partial sum to partial[chunk, output]. Stage 2 (<see cref="SumChunks"/>) adds the chunks
    /// in order, so the result does not depend on scheduling and a GPU gets chunks × outputs threads, not outputs alone.
    /// </summary>
    public static void Accumulate<T>(Index1D index, ArrayView<T> delta, ArrayView<T> m, ArrayView<T> partial, int gates, int columns, int stride,
        int rows, int chunkRows)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int outputs = columns == 0 ? gates : gates * columns;
        int o = index % outputs, chunk = index / outputs;
        int g = columns == 0 ? o : o / columns, j = columns == 0 ? 0 : o % columns;
        long first = (long)chunk * chunkRows, last = Math.Min(rows, first + chunkRows);
        T sum = T.Zero;
        for (long row = first; row < last; row++)
        {
            T d = delta[(row * gates) + g];
            sum += columns == 0 ? d : d * m[(row * stride) + j];
        }

        partial[index] = sum;
    }

    /// <summary>Stage 2: out[o] = Σ_chunk partial[chunk, o], in chunk order.</summary>
    public static void SumChunks<T>(Index1D index, ArrayView<T> partial, ArrayView<T> output, int outputs, int chunks)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T sum = T.Zero;
        for (int c = 0; c < chunks; c++)
        {
            sum += partial[((long)c * outputs) + index];
        }

        output[index] = sum;
    }

    /// <summary>
    /// y[row, j] = Σ_g δ[row, g] · W[g, j] written at row stride <paramref name="stride"/>, added to what is there when
    /// <paramref name="accumulate"/> (∂L/∂x with W_ih; ∂L/∂h_{t−1} += W_hhᵀ δ_hh).
    /// </summary>
    public static void Product<T>(Index1D index, ArrayView<T> delta, ArrayView<T> w, ArrayView<T> y, int gates, int columns, int stride, int accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int j = index % columns;
        long row = index / columns;
        T sum = T.Zero;
        for (int g = 0; g < gates; g++)
        {
            sum += delta[(row * gates) + g] * w[((long)g * columns) + j];
        }

        long k = (row * stride) + j;
        y[k] = accumulate != 0 ? y[k] + sum : sum;
    }
}
