using System.Runtime.CompilerServices;

namespace DeerSharp.Cells;

/// <summary>The tanh RNN's backpropagation-through-time loop (<see cref="IBackpropagationLoop{T}"/>).</summary>
public readonly partial struct TanhRnnCell<T>
{
    /// <summary>1 - h'² of each step.</summary>
    int IBackpropagationLoop<T>.BackpropagationCacheSize => _c.HiddenSize;

    /// <summary>W_hh h of every step.</summary>
    int IBackpropagationLoop<T>.PrepareWorkspaceSize(int count) => count * _c.HiddenSize;

    /// <summary>None: W_hhᵀ δ goes straight into the carry.</summary>
    int IBackpropagationLoop<T>.BackpropagationScratchSize => 0;

    /// <summary>δ of the pre-activation (the same for W_ih x and W_hh h).</summary>
    int IBackpropagationLoop<T>.DeltaSize => _c.HiddenSize;

    /// <inheritdoc/>
    int IBackpropagationLoop<T>.GradientWorkspaceSize(int count) => _c.BackwardScratch(count);

    /// <summary>W_hh h of the block's steps by one matrix product, then h' = tanh(p + W_hh h) as the forward step computes it, kept as 1 - h'².</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void IBackpropagationLoop<T>.PrepareBackpropagation(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> cache, Span<T> workspace, int count)
    {
        int m = count * _c.HiddenSize, v = Vector<T>.Count;
        Span<T> hh = workspace[..m];
        _c.Hidden(states, hh, count, _c.HiddenSize);
        AddTanh(projections[..m], hh, cache[..m]);
        int i = 0;
        for (; i + v <= m; i += v)
        {
            var h = new Vector<T>(cache[i..]);
            (Vector<T>.One - (h * h)).CopyTo(cache[i..]);
        }

        for (; i < m; i++)
        {
            cache[i] = T.One - (cache[i] * cache[i]);
        }
    }

    /// <summary>Per step, from the end: v = g + carry, δ = v ⊙ (1 - h'²), carry = W_hhᵀ δ.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void IBackpropagationLoop<T>.Backpropagate(ReadOnlySpan<T> states, ReadOnlySpan<T> cache, ReadOnlySpan<T> g, Span<T> deltas, Span<T> carry,
        Span<T> scratch, int count)
    {
        _ = states;
        _ = scratch;
        int n = _c.HiddenSize, v = Vector<T>.Count;
        ReadOnlySpan<T> w = _c.HiddenRows;
        for (int t = count - 1; t >= 0; t--)
        {
            ReadOnlySpan<T> c = cache.Slice(t * n, n), gt = g.Slice(t * n, n);
            Span<T> delta = deltas.Slice(t * n, n);
            int i = 0;
            for (; i + v <= n; i += v)
            {
                ((new Vector<T>(gt[i..]) + new Vector<T>(carry[i..])) * new Vector<T>(c[i..])).CopyTo(delta[i..]);
            }

            for (; i < n; i++)
            {
                delta[i] = (gt[i] + carry[i]) * c[i];
            }

            Kernels.MatVec(delta, w, carry[..n]);
        }
    }

    /// <summary>δ W_ih, δᵀ X, δᵀ H and the bias sums from the stored δ.</summary>
    void IBackpropagationLoop<T>.Gradients(ReadOnlySpan<T> states, ReadOnlySpan<T> inputs, ReadOnlySpan<T> deltas, Span<T> inputAdjoints, Span<T> gradient,
        Span<T> workspace, int count) =>
        _c.Backward(deltas, deltas, inputs, states, _c.HiddenSize, default, inputAdjoints, gradient, workspace, count);
}
