using System.Runtime.CompilerServices;

namespace DeerSharp.Cells;

/// <summary>
/// The diagonal GRU's backpropagation-through-time loop (<see cref="IBackpropagationLoop{T}"/>), the GRU's with W_hh in k×k
/// blocks: the gates of every step once, in parallel; per step the gates' δ and the block product A_hᵀ δ (O(3 n k)); the
/// weight and input gradients from the stored δ, in parallel.
/// </summary>
public readonly partial struct DiagonalGruCell<T>
{
    /// <summary>r, z, A_n h + b_hn and the candidate n of each step.</summary>
    int IBackpropagationLoop<T>.BackpropagationCacheSize => 4 * _c.HiddenSize;

    /// <summary>One step's next state.</summary>
    int IBackpropagationLoop<T>.PrepareWorkspaceSize(int count) => _c.HiddenSize;

    /// <inheritdoc/>
    int IBackpropagationLoop<T>.BackpropagationScratchSize => 0;

    /// <summary>δ_ih (what multiplies W_ih x and b_ih), then δ_hh (what multiplies A h and b_hh): 3n each.</summary>
    int IBackpropagationLoop<T>.DeltaSize => 6 * _c.HiddenSize;

    /// <inheritdoc/>
    int IBackpropagationLoop<T>.GradientWorkspaceSize(int count) => 0;

    /// <summary>Each step's gates by the forward's own <see cref="Gates"/>.</summary>
    void IBackpropagationLoop<T>.PrepareBackpropagation(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> cache, Span<T> workspace, int count)
    {
        int n = _c.HiddenSize, rows = 3 * n;
        Span<T> next = workspace[..n];
        for (int s = 0; s < count; s++)
        {
            Span<T> c = cache.Slice(s * 4 * n, 4 * n);
            Gates(states.Slice(s * n, n), projections.Slice(s * rows, rows), c[..rows], c[rows..], next);
        }
    }

    /// <summary>Per step, from the end: v = g + carry, δ as <see cref="BackwardBlock"/> computes it, carry = v ⊙ z + A_blocksᵀ δ_hh.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void IBackpropagationLoop<T>.Backpropagate(ReadOnlySpan<T> states, ReadOnlySpan<T> cache, ReadOnlySpan<T> g, Span<T> deltas, Span<T> carry,
        Span<T> scratch, int count)
    {
        int n = _c.HiddenSize;
        for (int t = count - 1; t >= 0; t--)
        {
            ReadOnlySpan<T> h = states.Slice(t * n, n), c = cache.Slice(t * 4 * n, 4 * n), gt = g.Slice(t * n, n);
            Span<T> di = deltas.Slice(t * 6 * n, 3 * n), dh = deltas.Slice((t * 6 * n) + (3 * n), 3 * n);
            GateDeltas.Gru(h, c, gt, carry, di, dh, n);
            _c.AddTransposedProduct(dh, carry[..n]);
        }
    }

    /// <summary>δ_ih W_ih, δ_ihᵀ X, the blocks of δ_hhᵀ H and the bias sums from the stored δ (rows of 6n).</summary>
    void IBackpropagationLoop<T>.Gradients(ReadOnlySpan<T> states, ReadOnlySpan<T> inputs, ReadOnlySpan<T> deltas, Span<T> inputAdjoints, Span<T> gradient,
        Span<T> workspace, int count)
    {
        int n = _c.HiddenSize;
        _c.Backward(deltas, deltas[(3 * n)..], inputs, states, n, default, inputAdjoints, gradient, count, deltaStride: 6 * n);
    }
}
