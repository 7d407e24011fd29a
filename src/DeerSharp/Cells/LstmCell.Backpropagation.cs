using System.Runtime.CompilerServices;

namespace DeerSharp.Cells;

/// <summary>The LSTM's backpropagation-through-time loop (<see cref="IBackpropagationLoop{T}"/>).</summary>
public readonly partial struct LstmCell<T>
{
    /// <summary>i, f, g, o and tanh(c') of each step.</summary>
    int IBackpropagationLoop<T>.BackpropagationCacheSize => 5 * _c.HiddenSize;

    /// <summary>W_hh h of every step.</summary>
    int IBackpropagationLoop<T>.PrepareWorkspaceSize(int count) => count * 4 * _c.HiddenSize;

    /// <summary>None: W_hhᵀ δ goes straight into the carry.</summary>
    int IBackpropagationLoop<T>.BackpropagationScratchSize => 0;

    /// <summary>δ of the four gates' pre-activations (the same for W_ih x and W_hh h).</summary>
    int IBackpropagationLoop<T>.DeltaSize => 4 * _c.HiddenSize;

    /// <inheritdoc/>
    int IBackpropagationLoop<T>.GradientWorkspaceSize(int count) => _c.BackwardScratch(count);

    /// <summary>W_hh h of the block's steps by one matrix product, then each step's gates and tanh(c'), as the forward step computes them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void IBackpropagationLoop<T>.PrepareBackpropagation(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> cache, Span<T> workspace, int count)
    {
        int n = _c.HiddenSize, s2 = 2 * n, rows = 4 * n, v = Vector<T>.Count;
        Span<T> hhAll = workspace[..(count * rows)];
        _c.Hidden(states, hhAll, count, s2);
        for (int s = 0; s < count; s++)
        {
            ReadOnlySpan<T> p = projections.Slice(s * rows, rows), hh = hhAll.Slice(s * rows, rows), state = states.Slice(s * s2, s2);
            Span<T> c = cache.Slice(s * 5 * n, 5 * n);
            int k = 0;
            for (; k + v <= n; k += v)
            {
                (Vector<T> ig, Vector<T> fg, Vector<T> gg, Vector<T> og) = GateLanes(p, hh, n, k);
                ig.CopyTo(c[k..]);
                fg.CopyTo(c[(n + k)..]);
                gg.CopyTo(c[(2 * n + k)..]);
                og.CopyTo(c[(3 * n + k)..]);
                Activations.Tanh(Kernels.Fma(fg, new Vector<T>(state[(n + k)..]), ig * gg)).CopyTo(c[(4 * n + k)..]);
            }

            for (; k < n; k++)
            {
                T ig = Activations.Sigmoid(p[k] + hh[k]);
                T fg = Activations.Sigmoid(p[n + k] + hh[n + k]);
                T gg = Activations.Tanh(p[2 * n + k] + hh[2 * n + k]);
                c[k] = ig;
                c[n + k] = fg;
                c[2 * n + k] = gg;
                c[3 * n + k] = Activations.Sigmoid(p[3 * n + k] + hh[3 * n + k]);
                c[4 * n + k] = Activations.Tanh(T.FusedMultiplyAdd(fg, state[n + k], ig * gg));
            }
        }
    }

    /// <summary>
    /// Per step, from the end: [v_h; v_c] = g + carry, the gates' δ as <see cref="BackwardBlock"/> computes them, and
    /// carry = [W_hhᵀ δ; ∂c' ⊙ f].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void IBackpropagationLoop<T>.Backpropagate(ReadOnlySpan<T> states, ReadOnlySpan<T> cache, ReadOnlySpan<T> g, Span<T> deltas, Span<T> carry,
        Span<T> scratch, int count)
    {
        _ = scratch;
        int n = _c.HiddenSize, s2 = 2 * n;
        ReadOnlySpan<T> w = _c.HiddenRows;
        for (int t = count - 1; t >= 0; t--)
        {
            ReadOnlySpan<T> state = states.Slice(t * s2, s2), c = cache.Slice(t * 5 * n, 5 * n), gt = g.Slice(t * s2, s2);
            Span<T> delta = deltas.Slice(t * 4 * n, 4 * n);
            GateDeltas.Lstm(state, c, gt, carry, delta, n);
            Kernels.MatVec(delta, w, carry[..n]);
        }
    }

    /// <summary>δ W_ih, δᵀ X, δᵀ H and the bias sums from the stored δ.</summary>
    void IBackpropagationLoop<T>.Gradients(ReadOnlySpan<T> states, ReadOnlySpan<T> inputs, ReadOnlySpan<T> deltas, Span<T> inputAdjoints, Span<T> gradient,
        Span<T> workspace, int count) =>
        _c.Backward(deltas, deltas, inputs, states, 2 * _c.HiddenSize, default, inputAdjoints, gradient, workspace, count);
}
