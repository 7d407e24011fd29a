// Deer's CUDA kernels. NVRTC compiles this file at run time with -DREAL=float or -DREAL=double for the device's
// architecture (-arch=sm_XY); CudaKernels caches the module per (device, type). Layouts are row-major and batch first:
// sequences [B, T, k], dense Jacobians [B, T, n, n], weights as PyTorch stores them ([G·n, n] for weight_hh).
// No kernel allocates; every buffer is the host's, reused across iterations.

#ifndef REAL
#define REAL float
#endif

typedef REAL real;

// Dynamic shared memory. The CPU emulator the tests use defines DEER_SHARED to hand each emulated block its own buffer.
#ifndef DEER_SHARED
#define DEER_SHARED(name) extern __shared__ unsigned char name[]
#endif

__device__ __forceinline__ real sigmoid_(real x) { return real(1) / (real(1) + exp(-x)); }

// Non-negative floating-point values order like their bit patterns as unsigned integers, so the largest residual
// ratio of a whole iteration is one atomicMax; NaN (all exponent bits set, any sign after fabs) orders above +inf.
__device__ __forceinline__ void atomic_max_nonneg(unsigned long long* target, real value)
{
    double v = (double)value;
    if (!(v == v)) v = __longlong_as_double(0x7ff8000000000000LL);
    atomicMax(target, (unsigned long long)__double_as_longlong(fabs(v)));
}

// |h − f| / (atol + rtol |f|), the residual's ratio to its tolerance, for atomic_max_nonneg. A zero residual is within
// tolerance even when atol = 0 and f = 0 (0/0 would be NaN); NaN stays NaN, which orders above +inf. The CPU's rule
// (Solver.ResidualWithin: |h − f| ≤ atol + rtol |f|) gives the same verdict.
__device__ __forceinline__ real residual_ratio(real diff, real atol, real rtol, real f)
{
    return diff == real(0) ? real(0) : diff / (atol + rtol * fabs(f));
}

// ---- Diagonal linear recurrence h_t = a_t ⊙ h_{t-1} + b_t, three phases over many blocks per sequence -------------

// Phase 1: every (sequence, chunk, channel) reduces its chunk to one affine map (P, R): h_out = P h_in + R.
extern "C" __global__ void scan_diag_reduce(const real* a, const real* b, real* chunkP, real* chunkR,
                                            int batch, int length, int n, int chunk, int chunks)
{
    long long id = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long total = (long long)batch * chunks * n;
    if (id >= total) return;
    int j = (int)(id % n);
    long long rest = id / n;
    int c = (int)(rest % chunks);
    int s = (int)(rest / chunks);
    long long t0 = (long long)c * chunk, t1 = min((long long)length, t0 + chunk);
    real p = real(1), r = real(0);
    const real* pa = a + ((long long)s * length) * n + j;
    const real* pb = b + ((long long)s * length) * n + j;
    for (long long t = t0; t < t1; t++)
    {
        real at = pa[t * n];
        r = fma(at, r, pb[t * n]);
        p *= at;
    }
    chunkP[id] = p;
    chunkR[id] = r;
}

// Phase 2: one thread per (sequence, channel) walks the chunk maps in order from h0, writing each chunk's incoming state.
extern "C" __global__ void scan_diag_carry(const real* chunkP, const real* chunkR, const real* h0, real* carry,
                                           int batch, int n, int chunks)
{
    int id = blockIdx.x * blockDim.x + threadIdx.x;
    if (id >= batch * n) return;
    int j = id % n, s = id / n;
    real h = h0[(long long)s * n + j];
    for (int c = 0; c < chunks; c++)
    {
        long long k = ((long long)s * chunks + c) * n + j;
        carry[k] = h;
        h = fma(chunkP[k], h, chunkR[k]);
    }
}

// Phase 3: every (sequence, chunk, channel) re-runs its chunk from its incoming state and writes h.
extern "C" __global__ void scan_diag_apply(const real* a, const real* b, const real* carry, real* h,
                                           int batch, int length, int n, int chunk, int chunks)
{
    long long id = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long total = (long long)batch * chunks * n;
    if (id >= total) return;
    int j = (int)(id % n);
    long long rest = id / n;
    int c = (int)(rest % chunks);
    int s = (int)(rest / chunks);
    long long t0 = (long long)c * chunk, t1 = min((long long)length, t0 + chunk);
    long long base = ((long long)s * length) * n + j;
    real state = carry[id];
    for (long long t = t0; t < t1; t++)
    {
        state = fma(a[base + t * n], state, b[base + t * n]);
        h[base + t * n] = state;
    }
}

// ---- Dense linear recurrence h_t = A_t h_{t-1} + b_t for n ≤ 32: one block of n×n threads per (sequence, chunk) ----

extern "C" __global__ void scan_dense_reduce(const real* A, const real* b, real* chunkP, real* chunkR,
                                             int batch, int length, int n, int chunk, int chunks)
{
    DEER_SHARED(shared_raw);
    real* P = (real*)shared_raw;          // n×n
    real* Pn = P + n * n;                 // n×n
    real* R = Pn + n * n;                 // n
    real* Rn = R + n;                     // n
    int c = blockIdx.x, s = blockIdx.y, tid = threadIdx.x;
    int i = tid / n, k = tid % n;
    bool active = tid < n * n;
    if (active) P[i * n + k] = (i == k) ? real(1) : real(0);
    if (tid < n) R[tid] = real(0);
    __syncthreads();
    long long t0 = (long long)c * chunk, t1 = min((long long)length, t0 + chunk);
    for (long long t = t0; t < t1; t++)
    {
        const real* At = A + (((long long)s * length + t) * n) * n;
        const real* bt = b + ((long long)s * length + t) * n;
        if (active)
        {
            real sum = real(0);
            for (int m = 0; m < n; m++) sum = fma(At[i * n + m], P[m * n + k], sum);
            Pn[i * n + k] = sum;
        }
        if (tid < n)
        {
            real sum = bt[tid];
            for (int m = 0; m < n; m++) sum = fma(At[tid * n + m], R[m], sum);
            Rn[tid] = sum;
        }
        __syncthreads();
        if (active) P[i * n + k] = Pn[i * n + k];
        if (tid < n) R[tid] = Rn[tid];
        __syncthreads();
    }
    long long chunkIndex = (long long)s * chunks + c;
    if (active) chunkP[chunkIndex * n * n + i * n + k] = P[i * n + k];
    if (tid < n) chunkR[chunkIndex * n + tid] = R[tid];
}

// One block of n threads per sequence walks the chunk maps: carry[c] = incoming state of chunk c.
extern "C" __global__ void scan_dense_carry(const real* chunkP, const real* chunkR, const real* h0, real* carry,
                                            int batch, int n, int chunks)
{
    DEER_SHARED(shared_raw);
    real* h = (real*)shared_raw;
    int s = blockIdx.x, i = threadIdx.x;
    if (i < n) h[i] = h0[(long long)s * n + i];
    __syncthreads();
    for (int c = 0; c < chunks; c++)
    {
        long long k = (long long)s * chunks + c;
        real next = real(0);
        if (i < n)
        {
            carry[k * n + i] = h[i];
            next = chunkR[k * n + i];
            for (int m = 0; m < n; m++) next = fma(chunkP[k * n * n + i * n + m], h[m], next);
        }
        __syncthreads();
        if (i < n) h[i] = next;
        __syncthreads();
    }
}

// One block of n threads per (sequence, chunk) re-runs its chunk from its incoming state.
extern "C" __global__ void scan_dense_apply(const real* A, const real* b, const real* carry, real* h,
                                            int batch, int length, int n, int chunk, int chunks)
{
    DEER_SHARED(shared_raw);
    real* state = (real*)shared_raw;
    int c = blockIdx.x, s = blockIdx.y, i = threadIdx.x;
    long long chunkIndex = (long long)s * chunks + c;
    if (i < n) state[i] = carry[chunkIndex * n + i];
    __syncthreads();
    long long t0 = (long long)c * chunk, t1 = min((long long)length, t0 + chunk);
    for (long long t = t0; t < t1; t++)
    {
        real next = real(0);
        if (i < n)
        {
            const real* At = A + (((long long)s * length + t) * n) * n;
            next = b[((long long)s * length + t) * n + i];
            for (int m = 0; m < n; m++) next = fma(At[i * n + m], state[m], next);
            h[((long long)s * length + t) * n + i] = next;
        }
        __syncthreads();
        if (i < n) state[i] = next;
        __syncthreads();
    }
}

// The end of every cell row: the Newton term f − (J h_{t−1}) and the row's residual against the iterate, into stats.
__device__ __forceinline__ void finish_row(real* bterm, unsigned long long* stats, long long id, real y, real jh, real current, int mode,
                                           real atol, real rtol)
{
    if (mode > 0) bterm[id] = y - jh;
    real diff = fabs(current - y);
    atomic_max_nonneg(&stats[0], residual_ratio(diff, atol, rtol, y));
    atomic_max_nonneg(&stats[1], diff);
}

// ---- Cells: f, its Jacobian (full or diagonal), the Newton affine term and the residual, one thread per (b, t, row) ----
// xp: input projections W_ih x_t + b_ih, [B, T, G·n]. hh: W_hh h_{t-1} (no bias), [B, T, G·n], from one cuBLAS GEMM.
// prev: h_{t-1} for every t ([B, T, S], the iterate shifted by one with h0 in front); cur: the iterate h_t.
// mode: 0 value only, 1 diagonal Jacobian, 2 full Jacobian. Outputs: f [B, T, S]; jac; bterm = f − J h_{t-1}.
// Residual: ratio = |cur − f| / (atol + rtol |f|), its maximum atomically into stats[0], max |cur − f| into stats[1].

extern "C" __global__ void rnn_eval(const real* xp, const real* hh, const real* bhh, const real* whh, const real* prev, const real* cur,
                                    real* f, real* jac, real* bterm, unsigned long long* stats, int batch, int length, int n,
                                    int mode, real atol, real rtol)
{
    long long id = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long total = (long long)batch * length * n;
    if (id >= total) return;
    int i = (int)(id % n);
    long long row = id / n;             // (b, t)
    real pre = xp[row * n + i] + hh[row * n + i] + bhh[i];
    real y = tanh(pre);
    f[id] = y;
    real d = real(1) - y * y;
    const real* hp = prev + row * n;
    real jh = real(0);
    if (mode == 2)
    {
        real* J = jac + row * n * n + (long long)i * n;
        for (int k = 0; k < n; k++) { real v = d * whh[i * n + k]; J[k] = v; jh = fma(v, hp[k], jh); }
    }
    else if (mode == 1)
    {
        real v = d * whh[i * n + i];
        jac[id] = v;
        jh = v * hp[i];
    }
    finish_row(bterm, stats, id, y, jh, cur[id], mode, atol, rtol);
}

// PyTorch's GRU: r = σ(x_r + W_hr h + b_hr), z = σ(x_z + W_hz h + b_hz), g = tanh(x_n + r ⊙ (W_hn h + b_hn)),
// h' = (1 − z) ⊙ g + z ⊙ h. Row i of J: (1−z)(1−g²)(hn r(1−r) W_hr + r W_hn) + (h − g) z(1−z) W_hz + z e_i.
extern "C" __global__ void gru_eval(const real* xp, const real* hh, const real* bhh, const real* whh, const real* prev, const real* cur,
                                    real* f, real* jac, real* bterm, unsigned long long* stats, int batch, int length, int n,
                                    int mode, real atol, real rtol)
{
    long long id = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long total = (long long)batch * length * n;
    if (id >= total) return;
    int i = (int)(id % n);
    long long row = id / n;
    const real* x = xp + row * 3 * n;
    const real* w = hh + row * 3 * n;
    real r = sigmoid_(x[i] + w[i] + bhh[i]);
    real z = sigmoid_(x[n + i] + w[n + i] + bhh[n + i]);
    real hn = w[2 * n + i] + bhh[2 * n + i];
    real g = tanh(x[2 * n + i] + r * hn);
    const real* hp = prev + row * n;
    real y = (real(1) - z) * g + z * hp[i];
    f[id] = y;
    real cg = (real(1) - z) * (real(1) - g * g);
    real cr = cg * hn * r * (real(1) - r), cn = cg * r, cz = (hp[i] - g) * z * (real(1) - z);
    const real* Wr = whh + (long long)i * n;
    const real* Wz = whh + ((long long)n + i) * n;
    const real* Wn = whh + (2LL * n + i) * n;
    real jh = real(0);
    if (mode == 2)
    {
        real* J = jac + row * n * n + (long long)i * n;
        for (int k = 0; k < n; k++)
        {
            real v = cr * Wr[k] + cn * Wn[k] + cz * Wz[k] + (k == i ? z : real(0));
            J[k] = v;
            jh = fma(v, hp[k], jh);
        }
    }
    else if (mode == 1)
    {
        real v = cr * Wr[i] + cn * Wn[i] + cz * Wz[i] + z;
        jac[id] = v;
        jh = v * hp[i];
    }
    finish_row(bterm, stats, id, y, jh, cur[id], mode, atol, rtol);
}

// PyTorch's LSTM on the state [h; c] (S = 2n): gates i, f, g, o = σ, σ, tanh, σ of x + W_hh h + b_hh;
// c' = f c + i g, h' = o tanh(c'). Thread (b, t, i) writes rows i (h') and n + i (c') of the 2n×2n Jacobian.
extern "C" __global__ void lstm_eval(const real* xp, const real* hh, const real* bhh, const real* whh, const real* prev, const real* cur,
                                     real* f, real* jac, real* bterm, unsigned long long* stats, int batch, int length, int n,
                                     int mode, real atol, real rtol)
{
    long long id = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long total = (long long)batch * length * n;
    if (id >= total) return;
    int i = (int)(id % n);
    long long row = id / n;
    int S = 2 * n;
    const real* x = xp + row * 4 * n;
    const real* w = hh + row * 4 * n;
    real ig = sigmoid_(x[i] + w[i] + bhh[i]);
    real fg = sigmoid_(x[n + i] + w[n + i] + bhh[n + i]);
    real gg = tanh(x[2 * n + i] + w[2 * n + i] + bhh[2 * n + i]);
    real og = sigmoid_(x[3 * n + i] + w[3 * n + i] + bhh[3 * n + i]);
    const real* sp = prev + row * S;     // [h_{t-1}; c_{t-1}]
    real c = fg * sp[n + i] + ig * gg;
    real tc = tanh(c);
    real h = og * tc;
    real* fo = f + row * S;
    fo[i] = h;
    fo[n + i] = c;
    // ∂c'_i/∂h_k = c_prev f(1−f) W_f + g i(1−i) W_i + i(1−g²) W_g; ∂h'_i/∂h_k = o(1−o) tanh(c') W_o + o(1−tanh²c') ∂c'_i/∂h_k.
    real af = sp[n + i] * fg * (real(1) - fg), ai = gg * ig * (real(1) - ig), ag = ig * (real(1) - gg * gg);
    real ao = og * (real(1) - og) * tc, dc = og * (real(1) - tc * tc);
    const real* Wi = whh + (long long)i * n;
    const real* Wf = whh + ((long long)n + i) * n;
    const real* Wg = whh + (2LL * n + i) * n;
    const real* Wo = whh + (3LL * n + i) * n;
    real jhh = real(0), jcc = real(0);
    if (mode == 2)
    {
        real* Jh = jac + row * S * S + (long long)i * S;
        real* Jc = jac + row * S * S + (long long)(n + i) * S;
        for (int k = 0; k < n; k++)
        {
            real dcdh = af * Wf[k] + ai * Wi[k] + ag * Wg[k];
            real dhdh = ao * Wo[k] + dc * dcdh;
            Jh[k] = dhdh;
            Jc[k] = dcdh;
            Jh[n + k] = (k == i) ? dc * fg : real(0);
            Jc[n + k] = (k == i) ? fg : real(0);
            jhh = fma(dhdh, sp[k], jhh);
            jcc = fma(dcdh, sp[k], jcc);
        }
        jhh += dc * fg * sp[n + i];
        jcc += fg * sp[n + i];
    }
    else if (mode == 1)
    {
        real dcdh = af * Wf[i] + ai * Wi[i] + ag * Wg[i];
        jac[row * S + i] = ao * Wo[i] + dc * dcdh;       // ∂h'_i/∂h_i
        jac[row * S + n + i] = fg;                       // ∂c'_i/∂c_i
        jhh = jac[row * S + i] * sp[i];
        jcc = fg * sp[n + i];
    }
    if (mode > 0)
    {
        bterm[row * S + i] = h - jhh;
        bterm[row * S + n + i] = c - jcc;
    }
    const real* cu = cur + row * S;
    real dh = fabs(cu[i] - h), dcr = fabs(cu[n + i] - c);
    // Two atomics rather than fmax, which would drop a NaN from either half.
    atomic_max_nonneg(&stats[0], residual_ratio(dh, atol, rtol, h));
    atomic_max_nonneg(&stats[0], residual_ratio(dcr, atol, rtol, c));
    atomic_max_nonneg(&stats[1], dh);
    atomic_max_nonneg(&stats[1], dcr);
}

// GILR (Martin & Cundy): g = σ(U x + b_g), i = tanh(V x + b_z) from the projections xp = [U x + b_g; V x + b_z];
// h_t = g ⊙ h_{t-1} + (1 − g) ⊙ i: the diagonal scan's coefficients a = g, b = (1 − g) i.
extern "C" __global__ void gilr_coefficients(const real* xp, real* a, real* b, int batch, int length, int n)
{
    long long id = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long total = (long long)batch * length * n;
    if (id >= total) return;
    int i = (int)(id % n);
    long long row = id / n;
    real g = sigmoid_(xp[row * 2 * n + i]);
    real z = tanh(xp[row * 2 * n + n + i]);
    a[id] = g;
    b[id] = (real(1) - g) * z;
}

// The residual of a diagonal linear recurrence's solution: |h_t − (a_t h_{t−1} + b_t)|, prev holding h_{t−1}. Checks the
// GILR scan's states as every other method's are checked.
extern "C" __global__ void linear_residual(const real* a, const real* b, const real* prev, const real* cur, unsigned long long* stats,
                                           long long total, real atol, real rtol)
{
    long long id = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (id >= total) return;
    real f = a[id] * prev[id] + b[id];
    real diff = fabs(cur[id] - f);
    atomic_max_nonneg(&stats[0], residual_ratio(diff, atol, rtol, f));
    atomic_max_nonneg(&stats[1], diff);
}

// rows += bias, for [rows, cols] row-major: the input projections' b_ih after the cuBLAS product.
extern "C" __global__ void add_bias(real* x, const real* bias, long long rows, int cols)
{
    long long id = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (id >= rows * cols) return;
    x[id] += bias[id % cols];
}

// h_{t-1} for every t: prev[b, 0] = h0[b], prev[b, t] = cur[b, t − 1].
extern "C" __global__ void shift_states(const real* cur, const real* h0, real* prev, int batch, int length, int S)
{
    long long id = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long total = (long long)batch * length * S;
    if (id >= total) return;
    int k = (int)(id % S);
    long long row = id / S;
    long long t = row % length, s = row / length;
    prev[id] = t == 0 ? h0[s * S + k] : cur[id - S];
}

// ---- The GPU's own sequential loop: one block per sequence, threads over rows; the baseline DEER is measured against ----
// gates: 1 (RNN), 3 (GRU) or 4 (LSTM); S = n, or 2n for the LSTM. Needs n ≤ blockDim.x and (S + G·n)·sizeof(real) shared.
extern "C" __global__ void sequential_cell(const real* xp, const real* whh, const real* bhh, const real* h0, real* out,
                                           int batch, int length, int n, int gates)
{
    DEER_SHARED(shared_raw);
    int S = gates == 4 ? 2 * n : n;
    real* state = (real*)shared_raw;       // S
    real* pre = state + S;                 // G·n: W_hh h + b_hh
    int s = blockIdx.x;
    for (int k = threadIdx.x; k < S; k += (int)blockDim.x) state[k] = h0[(long long)s * S + k];
    __syncthreads();
    for (long long t = 0; t < length; t++)
    {
        for (int r = threadIdx.x; r < gates * n; r += (int)blockDim.x)
        {
            real sum = bhh[r];
            const real* W = whh + (long long)r * n;
            for (int k = 0; k < n; k++) sum = fma(W[k], state[k], sum);
            pre[r] = sum;
        }
        __syncthreads();
        const real* x = xp + ((long long)s * length + t) * gates * n;
        real* o = out + ((long long)s * length + t) * S;
        real newH = real(0), newC = real(0);
        int i = threadIdx.x;
        if (i < n)
        {
            if (gates == 1)
            {
                newH = tanh(x[i] + pre[i]);
            }
            else if (gates == 3)
            {
                real r = sigmoid_(x[i] + pre[i]);
                real z = sigmoid_(x[n + i] + pre[n + i]);
                real g = tanh(x[2 * n + i] + r * pre[2 * n + i]);
                newH = (real(1) - z) * g + z * state[i];
            }
            else
            {
                real ig = sigmoid_(x[i] + pre[i]), fg = sigmoid_(x[n + i] + pre[n + i]);
                real gg = tanh(x[2 * n + i] + pre[2 * n + i]), og = sigmoid_(x[3 * n + i] + pre[3 * n + i]);
                newC = fg * state[n + i] + ig * gg;
                newH = og * tanh(newC);
            }
        }
        __syncthreads();
        if (i < n)
        {
            state[i] = newH;
            o[i] = newH;
            if (gates == 4) { state[n + i] = newC; o[n + i] = newC; }
        }
        __syncthreads();
    }
}
