using System.Runtime.CompilerServices;

namespace DeerSharp.Cells;

/// <summary>The GRU's backpropagation-through-time loop (<see cref="IBackpropagationLoop{T}"/>).</summary>
public readonly partial struct GruCell<T>
{
    /// <summary>r, z, W_hn h + b_hn and n of each step.</summary>
    int IBackpropagationLoop<T>.BackpropagationCacheSize => 4 * _c.HiddenSize;

    /// <summary>W_hh h of every step.</summary>
    int IBackpropagationLoop<T>.PrepareWorkspaceSize(int count) => count * 3 * _c.HiddenSize;

    /// <summary>W_hhᵀ δ.</summary>
    int IBackpropagationLoop<T>.BackpropagationScratchSize => _c.HiddenSize;

    /// <summary>δ of W_ih x + b_ih, then of W_hh h + b_hh: [δ_r, δ_z, δ_n] and [δ_r, δ_z, δ_n ⊙ r].</summary>
    int IBackpropagationLoop<T>.DeltaSize => 6 * _c.HiddenSize;

    /// <inheritdoc/>
    int IBackpropagationLoop<T>.GradientWorkspaceSize(int count) => _c.BackwardScratch(count);

    /// <summary>W_hh h of the block's steps by one matrix product, then each step's gates, as the forward step computes them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void IBackpropagationLoop<T>.PrepareBackpropagation(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> cache, Span<T> workspace, int count)
    {
        int n = _c.HiddenSize, rows = 3 * n, v = Vector<T>.Count;
        Span<T> hhAll = workspace[..(count * rows)];
        _c.Hidden(states, hhAll, count, n);
        ReadOnlySpan<T> bhn = _c.HiddenBias.AsSpan(2 * n, n);
        for (int s = 0; s < count; s++)
        {
            ReadOnlySpan<T> p = projections.Slice(s * rows, rows), hh = hhAll.Slice(s * rows, rows);
            Span<T> c = cache.Slice(s * 4 * n, 4 * n);
            int i = 0;
            for (; i + v <= n; i += v)
            {
                (Vector<T> r, Vector<T> z, Vector<T> hn, Vector<T> gi) = GateLanes(p, hh, bhn, n, i);
                r.CopyTo(c[i..]);
                z.CopyTo(c[(n + i)..]);
                hn.CopyTo(c[(2 * n + i)..]);
                gi.CopyTo(c[(3 * n + i)..]);
            }

            for (; i < n; i++)
            {
                (c[i], c[n + i], c[2 * n + i], c[3 * n + i]) = GateLane(p, hh, bhn, n, i);
            }
        }
    }

    /// <summary>
    /// Per step, from the end: v = g + carry, the gates' δ as <see cref="BackwardBlock"/> computes them, and
    /// carry = v ⊙ z + W_hhᵀ [δ_r; δ_z; δ_n ⊙ r].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void IBackpropagationLoop<T>.Backpropagate(ReadOnlySpan<T> states, ReadOnlySpan<T> cache, ReadOnlySpan<T> g, Span<T> deltas, Span<T> carry,
        Span<T> scratch, int count)
    {
        int n = _c.HiddenSize;
        Span<T> product = scratch[..n];
        ReadOnlySpan<T> w = _c.HiddenRows;
        for (int t = count - 1; t >= 0; t--)
        {
            ReadOnlySpan<T> h = states.Slice(t * n, n), c = cache.Slice(t * 4 * n, 4 * n), gt = g.Slice(t * n, n);
            Span<T> di = deltas.Slice(t * 6 * n, 3 * n), delta = deltas.Slice((t * 6 * n) + (3 * n), 3 * n);
            GateDeltas.Gru(h, c, gt, carry, di, delta, n);
            Kernels.MatVec(delta, w, product);
            System.Numerics.Tensors.TensorPrimitives.Add(carry, product, carry);
        }
    }

    /// <summary>δ_ih W_ih, δ_ihᵀ X, δ_hhᵀ H and the bias sums from the stored δ (rows of 6n: δ_ih, then δ_hh).</summary>
    void IBackpropagationLoop<T>.Gradients(ReadOnlySpan<T> states, ReadOnlySpan<T> inputs, ReadOnlySpan<T> deltas, Span<T> inputAdjoints, Span<T> gradient,
        Span<T> workspace, int count)
    {
        int n = _c.HiddenSize;
        _c.Backward(deltas, deltas[(3 * n)..], inputs, states, n, default, inputAdjoints, gradient, workspace, count, deltaStride: 6 * n);
    }
}
