using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DeerSharp.Cells;

/// <summary>
/// GILR-LSTM's backpropagation through time (<see cref="IBackpropagationLoop{T}"/>). Its adjoint is two diagonal
/// recurrences: c's, v_c ← g_c + ∂c' ⊙ f, which gives the gates' δ; then h~'s, v_h~ ← g_h~ + g ⊙ v_h~ + W_hhᵀ δ, whose
/// only matrix term reads δ alone. So the loop runs c's chain over a run of steps, W_hhᵀ δ for the whole run as one
/// matrix product, then h~'s chain: no product per step.
/// </summary>
public readonly partial struct GilrLstmCell<T>
{
    /// <summary>Steps per run of the backward loop: W_hhᵀ δ of a run is one product into a [run, n] scratch.</summary>
    private const int BackwardRun = 256;

    /// <summary>i, f, z, o, c', g and the impulse ĩ of each step.</summary>
    int IBackpropagationLoop<T>.BackpropagationCacheSize => 7 * N;

    /// <summary>W_hh h~ of every step, and one step's next state.</summary>
    int IBackpropagationLoop<T>.PrepareWorkspaceSize(int count) => (count * 4 * N) + (3 * N);

    /// <summary>W_hhᵀ δ of one run.</summary>
    int IBackpropagationLoop<T>.BackpropagationScratchSize => BackwardRun * N;

    /// <summary>δ of the LSTM gates' pre-activations (4n), then the surrogate's [∂(U x + b_g); ∂(V x + b_i)] (2n).</summary>
    int IBackpropagationLoop<T>.DeltaSize => 6 * N;

    /// <inheritdoc/>
    int IBackpropagationLoop<T>.GradientWorkspaceSize(int count) =>
        _c.ParameterCount + (2 * N * count) + _c.BackwardScratch(count);

    /// <summary>W_hh h~ of the block's steps by one product, then each step's gates and c' by the forward's own <see cref="Step"/>.</summary>
    void IBackpropagationLoop<T>.PrepareBackpropagation(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> cache, Span<T> workspace, int count)
    {
        int n = N, s = 3 * n, p = 6 * n;
        Span<T> all = workspace[..(count * 4 * n)], next = workspace.Slice(count * 4 * n, s);
        _c.Hidden(states[n..], all, count, s);
        for (int k = 0; k < count; k++)
        {
            ReadOnlySpan<T> proj = projections.Slice(k * p, p);
            Span<T> gates = all.Slice(k * 4 * n, 4 * n), c = cache.Slice(k * 7 * n, 7 * n);
            Step(states.Slice(k * s, s), proj, gates, next);
            gates.CopyTo(c);
            next[(2 * n)..].CopyTo(c[(4 * n)..]);
            proj[..(2 * n)].CopyTo(c[(5 * n)..]);
        }
    }

    /// <summary>
    /// Per run of steps from the end: c's chain (v_h = g_h, v_c = g_c + carry_c, ∂c' = v_c + v_h ⊙ o, δ as
    /// <see cref="BackwardBlock"/> computes it, carry_c = ∂c' ⊙ f); W_hhᵀ δ of the run; then h~'s chain (v_h~ = g_h~ +
    /// carry_h~, the surrogate's pre-activation gradients, carry_h~ = g ⊙ v_h~ + W_hhᵀ δ). carry_h is zero: h_{t-1}
    /// feeds nothing.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void IBackpropagationLoop<T>.Backpropagate(ReadOnlySpan<T> states, ReadOnlySpan<T> cache, ReadOnlySpan<T> g, Span<T> deltas, Span<T> carry,
        Span<T> scratch, int count)
    {
        int n = N, s = 3 * n, e = 6 * n, k = 7 * n, v = Vector<T>.Count;
        ref T rs = ref MemoryMarshal.GetReference(states[..(count * s)]);
        ref T rk = ref MemoryMarshal.GetReference(cache[..(count * k)]);
        ref T rg = ref MemoryMarshal.GetReference(g[..(count * s)]);
        ref T rd = ref MemoryMarshal.GetReference(deltas[..(count * e)]);
        ref T carryH = ref MemoryMarshal.GetReference(carry[..s]);
        ref T carryS = ref Unsafe.Add(ref carryH, n);
        ref T carryC = ref Unsafe.Add(ref carryH, 2 * n);
        Span<T> run = scratch[..(BackwardRun * n)];
        for (int t1 = count; t1 > 0; t1 -= BackwardRun)
        {
            int t0 = Math.Max(0, t1 - BackwardRun);
            for (int t = t1 - 1; t >= t0; t--)
            {
                ref T c = ref Unsafe.Add(ref rk, t * k);
                ref T gt = ref Unsafe.Add(ref rg, t * s);
                ref T cPrevious = ref Unsafe.Add(ref rs, (t * s) + (2 * n));
                ref T delta = ref Unsafe.Add(ref rd, t * e);
                int j = 0;
                for (; j + v <= n; j += v)
                {
                    Vector<T> ig = Vector.LoadUnsafe(ref c, (nuint)j), fg = Vector.LoadUnsafe(ref c, (nuint)(n + j));
                    Vector<T> zg = Vector.LoadUnsafe(ref c, (nuint)((2 * n) + j)), og = Vector.LoadUnsafe(ref c, (nuint)((3 * n) + j));
                    Vector<T> vh = Vector.LoadUnsafe(ref gt, (nuint)j) + Vector.LoadUnsafe(ref carryH, (nuint)j);
                    Vector<T> dc = Vector.LoadUnsafe(ref gt, (nuint)((2 * n) + j)) + Vector.LoadUnsafe(ref carryC, (nuint)j) + (vh * og);
                    (dc * zg * ig * (Vector<T>.One - ig)).StoreUnsafe(ref delta, (nuint)j);
                    (dc * Vector.LoadUnsafe(ref cPrevious, (nuint)j) * fg * (Vector<T>.One - fg)).StoreUnsafe(ref delta, (nuint)(n + j));
                    (dc * ig * (Vector<T>.One - (zg * zg))).StoreUnsafe(ref delta, (nuint)((2 * n) + j));
                    (vh * Vector.LoadUnsafe(ref c, (nuint)((4 * n) + j)) * og * (Vector<T>.One - og)).StoreUnsafe(ref delta, (nuint)((3 * n) + j));
                    (dc * fg).StoreUnsafe(ref carryC, (nuint)j);
                    Vector<T>.Zero.StoreUnsafe(ref carryH, (nuint)j);
                }

                for (; j < n; j++)
                {
                    T ig = Unsafe.Add(ref c, j), fg = Unsafe.Add(ref c, n + j), zg = Unsafe.Add(ref c, (2 * n) + j), og = Unsafe.Add(ref c, (3 * n) + j);
                    T vh = Unsafe.Add(ref gt, j) + Unsafe.Add(ref carryH, j);
                    T dc = Unsafe.Add(ref gt, (2 * n) + j) + Unsafe.Add(ref carryC, j) + (vh * og);
                    Unsafe.Add(ref delta, j) = dc * zg * ig * (T.One - ig);
                    Unsafe.Add(ref delta, n + j) = dc * Unsafe.Add(ref cPrevious, j) * fg * (T.One - fg);
                    Unsafe.Add(ref delta, (2 * n) + j) = dc * ig * (T.One - (zg * zg));
                    Unsafe.Add(ref delta, (3 * n) + j) = vh * Unsafe.Add(ref c, (4 * n) + j) * og * (T.One - og);
                    Unsafe.Add(ref carryC, j) = dc * fg;
                    Unsafe.Add(ref carryH, j) = T.Zero;
                }
            }

            // W_hhᵀ δ_t of the run's steps, rows t - t0.
            Kernels.Gemm<T>(deltas[(t0 * e)..], _c.HiddenRows, run, t1 - t0, 4 * n, n, e);
            ref T u0 = ref MemoryMarshal.GetReference(run);
            for (int t = t1 - 1; t >= t0; t--)
            {
                ref T c = ref Unsafe.Add(ref rk, t * k);
                ref T gs = ref Unsafe.Add(ref rg, (t * s) + n);
                ref T hPrevious = ref Unsafe.Add(ref rs, (t * s) + n);
                ref T da = ref Unsafe.Add(ref rd, (t * e) + (4 * n));
                ref T u = ref Unsafe.Add(ref u0, (t - t0) * n);
                int j = 0;
                for (; j + v <= n; j += v)
                {
                    Vector<T> gate = Vector.LoadUnsafe(ref c, (nuint)((5 * n) + j)), impulse = Vector.LoadUnsafe(ref c, (nuint)((6 * n) + j));
                    Vector<T> vs = Vector.LoadUnsafe(ref gs, (nuint)j) + Vector.LoadUnsafe(ref carryS, (nuint)j);
                    (vs * (Vector.LoadUnsafe(ref hPrevious, (nuint)j) - impulse) * gate * (Vector<T>.One - gate)).StoreUnsafe(ref da, (nuint)j);
                    (vs * (Vector<T>.One - gate) * (Vector<T>.One - (impulse * impulse))).StoreUnsafe(ref da, (nuint)(n + j));
                    ((gate * vs) + Vector.LoadUnsafe(ref u, (nuint)j)).StoreUnsafe(ref carryS, (nuint)j);
                }

                for (; j < n; j++)
                {
                    T gate = Unsafe.Add(ref c, (5 * n) + j), impulse = Unsafe.Add(ref c, (6 * n) + j);
                    T vs = Unsafe.Add(ref gs, j) + Unsafe.Add(ref carryS, j);
                    Unsafe.Add(ref da, j) = vs * (Unsafe.Add(ref hPrevious, j) - impulse) * gate * (T.One - gate);
                    Unsafe.Add(ref da, n + j) = vs * (T.One - gate) * (T.One - (impulse * impulse));
                    Unsafe.Add(ref carryS, j) = (gate * vs) + Unsafe.Add(ref u, j);
                }
            }
        }
    }

    /// <summary>The LSTM's δ W_ih, δᵀ X, δᵀ H~ and bias sums, then the surrogate's gradient from its stored pre-activation gradients.</summary>
    void IBackpropagationLoop<T>.Gradients(ReadOnlySpan<T> states, ReadOnlySpan<T> inputs, ReadOnlySpan<T> deltas, Span<T> inputAdjoints, Span<T> gradient,
        Span<T> workspace, int count)
    {
        int n = N, e = 6 * n;
        Span<T> lstmGradient = workspace[.._c.ParameterCount], da = workspace.Slice(_c.ParameterCount, 2 * n * count);
        Span<T> scratch = workspace[(_c.ParameterCount + (2 * n * count))..];
        lstmGradient.Clear();
        _c.Backward(deltas, deltas, inputs, states[n..], 3 * n, default, inputAdjoints, lstmGradient, scratch, count, deltaStride: e);
        AddLstmGradient(lstmGradient, gradient);
        for (int k = 0; k < count; k++)
        {
            deltas.Slice((k * e) + (4 * n), 2 * n).CopyTo(da[(k * 2 * n)..]);
        }

        _s.Backward(da, inputs, inputAdjoints, gradient[..Weights.Surrogate.ParameterCount], count, accumulateInputs: true);
    }

    /// <summary>Adds the LSTM part's gradient (CellWeights' layout, two bias sums) to the cell's: its W_ih, W_hh and single bias, after the surrogate's parameters.</summary>
    private void AddLstmGradient(ReadOnlySpan<T> lstmGradient, Span<T> gradient)
    {
        int rows = 4 * N, weights = rows * (_c.InputSize + N);
        Span<T> own = gradient[Weights.Surrogate.ParameterCount..];
        for (int i = 0; i < weights + rows; i++)
        {
            own[i] += lstmGradient[i];
        }
    }
}
