namespace DeerSharp.Cells;

/// <summary>
/// IndRNN's backpropagation-through-time loop (<see cref="IBackpropagationLoop{T}"/>): h' of every step once, in parallel;
/// per step δ = v ⊙ (1 - h'²) and the block product A_blocksᵀ δ (O(n k)); the weight and input gradients from the stored
/// δ, in parallel.
/// </summary>
public readonly partial struct IndRnnCell<T>
{
    /// <summary>h' of each step.</summary>
    int IBackpropagationLoop<T>.BackpropagationCacheSize => _c.HiddenSize;

    /// <summary>The block evaluation's own workspace.</summary>
    int IBackpropagationLoop<T>.PrepareWorkspaceSize(int count) => BlockWorkspaceSize(count);

    /// <inheritdoc/>
    int IBackpropagationLoop<T>.BackpropagationScratchSize => 0;

    /// <summary>δ of the pre-activation.</summary>
    int IBackpropagationLoop<T>.DeltaSize => _c.HiddenSize;

    /// <inheritdoc/>
    int IBackpropagationLoop<T>.GradientWorkspaceSize(int count) => 0;

    /// <summary>h' of the block's steps by the forward's own block evaluation.</summary>
    void IBackpropagationLoop<T>.PrepareBackpropagation(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> cache, Span<T> workspace, int count) =>
        EvaluateBlock(states, projections, cache[..(count * _c.HiddenSize)], default, JacobianMode.None, workspace, count);

    /// <summary>Per step, from the end: v = g + carry, δ = v ⊙ (1 - h'²), carry = A_blocksᵀ δ.</summary>
    void IBackpropagationLoop<T>.Backpropagate(ReadOnlySpan<T> states, ReadOnlySpan<T> cache, ReadOnlySpan<T> g, Span<T> deltas, Span<T> carry,
        Span<T> scratch, int count)
    {
        int n = _c.HiddenSize, v = Vector<T>.Count;
        for (int t = count - 1; t >= 0; t--)
        {
            ReadOnlySpan<T> h = cache.Slice(t * n, n), gt = g.Slice(t * n, n);
            Span<T> delta = deltas.Slice(t * n, n);
            int j = 0;
            for (; j + v <= n; j += v)
            {
                var hj = new Vector<T>(h[j..]);
                ((new Vector<T>(gt[j..]) + new Vector<T>(carry[j..])) * (Vector<T>.One - (hj * hj))).CopyTo(delta[j..]);
            }

            for (; j < n; j++)
            {
                delta[j] = (gt[j] + carry[j]) * (T.One - (h[j] * h[j]));
            }

            carry[..n].Clear();
            _c.AddTransposedProduct(delta, carry[..n]);
        }
    }

    /// <summary>δ W_ih, δᵀ X, the blocks of δᵀ H and the bias sums from the stored δ.</summary>
    void IBackpropagationLoop<T>.Gradients(ReadOnlySpan<T> states, ReadOnlySpan<T> inputs, ReadOnlySpan<T> deltas, Span<T> inputAdjoints, Span<T> gradient,
        Span<T> workspace, int count) =>
        _c.Backward(deltas, deltas, inputs, states, _c.HiddenSize, default, inputAdjoints, gradient, count);
}
