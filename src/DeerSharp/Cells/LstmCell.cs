using System.Numerics;

namespace DeerSharp.Cells;

/// <summary>
/// PyTorch's nn.LSTM cell, gates in PyTorch's order i, f, g, o, on the state s = [h; c] of size 2n:
/// (i, f, g, o) = (σ, σ, tanh, σ)(W_ih x + b_ih + W_hh h + b_hh), c' = f ⊙ c + i ⊙ g, h' = o ⊙ tanh(c').
/// </summary>
/// <remarks>
/// The output is h, the first n entries of the state. Jacobian blocks, with τ = tanh(c'):
/// ∂c'/∂h = diag(c f(1-f)) W_hf + diag(g i(1-i)) W_hi + diag(i(1-g²)) W_hg; ∂c'/∂c = diag(f);
/// ∂h'/∂h = diag(τ o(1-o)) W_ho + diag(o(1-τ²)) ∂c'/∂h; ∂h'/∂c = diag(o(1-τ²) f).
/// </remarks>
public readonly struct LstmCell<T> : IRecurrentCell<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly RecurrentWeights<T> _w;

    /// <summary>Wraps one layer's weights (G = 4).</summary>
    public LstmCell(RecurrentWeights<T> weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (weights.Gates != 4)
        {
            throw new ArgumentException($"An LSTM layer has 4 gate blocks (i, f, g, o); these weights have {weights.Gates}.", nameof(weights));
        }

        _w = weights;
    }

    /// <summary>Random weights as PyTorch initialises them, scaled by <paramref name="scale"/>.</summary>
    public static LstmCell<T> Random(int inputSize, int hiddenSize, Random random, double scale = 1.0) =>
        new(RecurrentWeights<T>.Random(4, hiddenSize, inputSize, random, scale));

    /// <summary>The layer's weights.</summary>
    public RecurrentWeights<T> Weights => _w;

    /// <summary>2n: the state is [h; c].</summary>
    public int StateSize => 2 * _w.HiddenSize;

    /// <inheritdoc/>
    public int InputSize => _w.InputSize;

    /// <summary>n: the output is h.</summary>
    public int OutputSize => _w.HiddenSize;

    /// <inheritdoc/>
    public int ProjectionSize => 4 * _w.HiddenSize;

    /// <inheritdoc/>
    public int WorkspaceSize => 5 * _w.HiddenSize;

    /// <inheritdoc/>
    public void ProjectInput(ReadOnlySpan<T> input, Span<T> projection) => _w.Project(input, projection, foldedGates: 4);

    /// <inheritdoc/>
    public void Evaluate(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> workspace) =>
        Gates(state, projection, next, workspace);

    /// <inheritdoc/>
    public void EvaluateJacobian(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> jacobian, Span<T> workspace)
    {
        int n = _w.HiddenSize;
        int s = 2 * n;
        Gates(state, projection, next, workspace);
        ReadOnlySpan<T> ig = workspace[..n], fg = workspace.Slice(n, n), gg = workspace.Slice(2 * n, n), og = workspace.Slice(3 * n, n), tc = workspace.Slice(4 * n, n);
        ReadOnlySpan<T> c = state.Slice(n, n);
        T[] whh = _w.WeightHH;
        jacobian[..(s * s)].Clear();
        for (int i = 0; i < n; i++)
        {
            T ci = c[i] * fg[i] * (T.One - fg[i]);
            T gi = gg[i] * ig[i] * (T.One - ig[i]);
            T ii = ig[i] * (T.One - gg[i] * gg[i]);
            T oh = tc[i] * og[i] * (T.One - og[i]);
            T oc = og[i] * (T.One - tc[i] * tc[i]);
            ReadOnlySpan<T> wi = whh.AsSpan(i * n, n), wf = whh.AsSpan((n + i) * n, n), wg = whh.AsSpan((2 * n + i) * n, n), wo = whh.AsSpan((3 * n + i) * n, n);
            Span<T> hRow = jacobian.Slice(i * s, s);
            Span<T> cRow = jacobian.Slice((n + i) * s, s);
            for (int j = 0; j < n; j++)
            {
                T dc = ci * wf[j] + gi * wi[j] + ii * wg[j];
                cRow[j] = dc;
                hRow[j] = oh * wo[j] + oc * dc;
            }

            cRow[n + i] = fg[i];
            hRow[n + i] = oc * fg[i];
        }
    }

    /// <inheritdoc/>
    public void EvaluateJacobianDiagonal(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> diagonal, Span<T> workspace)
    {
        int n = _w.HiddenSize;
        Gates(state, projection, next, workspace);
        ReadOnlySpan<T> ig = workspace[..n], fg = workspace.Slice(n, n), gg = workspace.Slice(2 * n, n), og = workspace.Slice(3 * n, n), tc = workspace.Slice(4 * n, n);
        ReadOnlySpan<T> c = state.Slice(n, n);
        T[] whh = _w.WeightHH;
        for (int i = 0; i < n; i++)
        {
            T dc = c[i] * fg[i] * (T.One - fg[i]) * whh[(n + i) * n + i]
                 + gg[i] * ig[i] * (T.One - ig[i]) * whh[i * n + i]
                 + ig[i] * (T.One - gg[i] * gg[i]) * whh[(2 * n + i) * n + i];
            diagonal[i] = tc[i] * og[i] * (T.One - og[i]) * whh[(3 * n + i) * n + i] + og[i] * (T.One - tc[i] * tc[i]) * dc;
            diagonal[n + i] = fg[i];
        }
    }

    /// <summary>Writes next = [h'; c'] and leaves i, f, g, o and tanh(c') in the workspace.</summary>
    private void Gates(ReadOnlySpan<T> state, ReadOnlySpan<T> p, Span<T> next, Span<T> workspace)
    {
        int n = _w.HiddenSize;
        ReadOnlySpan<T> h = state[..n], c = state.Slice(n, n);
        Span<T> ig = workspace[..n], fg = workspace.Slice(n, n), gg = workspace.Slice(2 * n, n), og = workspace.Slice(3 * n, n), tc = workspace.Slice(4 * n, n);
        for (int i = 0; i < n; i++)
        {
            ig[i] = Linear.Sigmoid(p[i] + Linear.Dot(_w.HiddenRow(i), h));
            fg[i] = Linear.Sigmoid(p[n + i] + Linear.Dot(_w.HiddenRow(n + i), h));
            gg[i] = T.Tanh(p[2 * n + i] + Linear.Dot(_w.HiddenRow(2 * n + i), h));
            og[i] = Linear.Sigmoid(p[3 * n + i] + Linear.Dot(_w.HiddenRow(3 * n + i), h));
        }

        for (int i = 0; i < n; i++)
        {
            T cNext = fg[i] * c[i] + ig[i] * gg[i];
            tc[i] = T.Tanh(cNext);
            next[n + i] = cNext;
            next[i] = og[i] * tc[i];
        }
    }
}
