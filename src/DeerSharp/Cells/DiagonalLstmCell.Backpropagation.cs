using System.Runtime.CompilerServices;

namespace DeerSharp.Cells;

/// <summary>
/// The diagonal LSTM's backpropagation-through-time loop (<see cref="IBackpropagationLoop{T}"/>), the LSTM's with W_hh in
/// k×k blocks: the gates of every step once, in parallel; per step the gates' δ and the block product W_hhᵀ δ (O(4 n k));
/// the weight and input gradients from the stored δ, in parallel.
/// </summary>
public readonly partial struct DiagonalLstmCell<T>
{
    /// <summary>i, f, g, o and tanh(c') of each step.</summary>
    int IBackpropagationLoop<T>.BackpropagationCacheSize => 5 * _c.HiddenSize;

    /// <summary>One step's next state.</summary>
    int IBackpropagationLoop<T>.PrepareWorkspaceSize(int count) => 2 * _c.HiddenSize;

    /// <inheritdoc/>
    int IBackpropagationLoop<T>.BackpropagationScratchSize => 0;

    /// <summary>δ of the four gates' pre-activations (the same for W_ih x and for A h).</summary>
    int IBackpropagationLoop<T>.DeltaSize => 4 * _c.HiddenSize;

    /// <inheritdoc/>
    int IBackpropagationLoop<T>.GradientWorkspaceSize(int count) => 0;

    /// <summary>Each step's gates and tanh(c'), by the forward's own <see cref="Gates"/>.</summary>
    void IBackpropagationLoop<T>.PrepareBackpropagation(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> cache, Span<T> workspace, int count)
    {
        int n = _c.HiddenSize, rows = 4 * n, s2 = 2 * n;
        Span<T> next = workspace[..s2];
        for (int s = 0; s < count; s++)
        {
            Span<T> c = cache.Slice(s * 5 * n, 5 * n);
            Gates(states.Slice(s * s2, s2), projections.Slice(s * rows, rows), c[..rows], c[rows..], next);
        }
    }

    /// <summary>
    /// Per step, from the end: [v_h; v_c] = g + carry, the gates' δ as <see cref="BackwardBlock"/> computes them, and
    /// carry = [A_blocksᵀ δ; ∂c' ⊙ f].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void IBackpropagationLoop<T>.Backpropagate(ReadOnlySpan<T> states, ReadOnlySpan<T> cache, ReadOnlySpan<T> g, Span<T> deltas, Span<T> carry,
        Span<T> scratch, int count)
    {
        int n = _c.HiddenSize, s2 = 2 * n;
        for (int t = count - 1; t >= 0; t--)
        {
            ReadOnlySpan<T> state = states.Slice(t * s2, s2), c = cache.Slice(t * 5 * n, 5 * n), gt = g.Slice(t * s2, s2);
            Span<T> delta = deltas.Slice(t * 4 * n, 4 * n);
            GateDeltas.Lstm(state, c, gt, carry, delta, n);
            carry[..n].Clear();
            _c.AddTransposedProduct(delta, carry[..n]);
        }
    }

    /// <summary>δ W_ih, δᵀ X, the blocks of δᵀ H and the bias sums from the stored δ.</summary>
    void IBackpropagationLoop<T>.Gradients(ReadOnlySpan<T> states, ReadOnlySpan<T> inputs, ReadOnlySpan<T> deltas, Span<T> inputAdjoints, Span<T> gradient,
        Span<T> workspace, int count) =>
        _c.Backward(deltas, deltas, inputs, states, 2 * _c.HiddenSize, default, inputAdjoints, gradient, count);
}
