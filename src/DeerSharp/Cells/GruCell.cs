using System.Numerics;

namespace DeerSharp.Cells;

/// <summary>
/// PyTorch's nn.GRU cell, gates in PyTorch's order r, z, n:
/// r = σ(W_ir x + b_ir + W_hr h + b_hr), z = σ(W_iz x + b_iz + W_hz h + b_hz),
/// n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 - z) ⊙ n + z ⊙ h.
/// </summary>
/// <remarks>
/// Jacobian, row i: J[i, j] = α_i W_hr[i, j] + γ_i W_hn[i, j] + ε_i W_hz[i, j] + z_i δ_ij with
/// α = (1 - z)(1 - n²) r(1 - r)(W_hn h + b_hn), γ = (1 - z)(1 - n²) r and ε = (h - n) z(1 - z).
/// The diagonal (quasi-DEER) is the same expression at j = i: O(n) after the gates, J is never formed.
/// </remarks>
public readonly struct GruCell<T> : IRecurrentCell<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly RecurrentWeights<T> _w;

    /// <summary>Wraps one layer's weights (G = 3).</summary>
    public GruCell(RecurrentWeights<T> weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (weights.Gates != 3)
        {
            throw new ArgumentException($"A GRU layer has 3 gate blocks (r, z, n); these weights have {weights.Gates}.", nameof(weights));
        }

        _w = weights;
    }

    /// <summary>Random weights as PyTorch initialises them, scaled by <paramref name="scale"/>.</summary>
    public static GruCell<T> Random(int inputSize, int hiddenSize, Random random, double scale = 1.0) =>
        new(RecurrentWeights<T>.Random(3, hiddenSize, inputSize, random, scale));

    /// <summary>The layer's weights.</summary>
    public RecurrentWeights<T> Weights => _w;

    /// <inheritdoc/>
    public int StateSize => _w.HiddenSize;

    /// <inheritdoc/>
    public int InputSize => _w.InputSize;

    /// <inheritdoc/>
    public int OutputSize => _w.HiddenSize;

    /// <inheritdoc/>
    public int ProjectionSize => 3 * _w.HiddenSize;

    /// <inheritdoc/>
    public int WorkspaceSize => 4 * _w.HiddenSize;

    /// <summary>b_hr and b_hz fold into the projection; b_hn stays inside r ⊙ (W_hn h + b_hn).</summary>
    public void ProjectInput(ReadOnlySpan<T> input, Span<T> projection) => _w.Project(input, projection, foldedGates: 2);

    /// <inheritdoc/>
    public void Evaluate(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> workspace) =>
        Gates(state, projection, next, workspace);

    /// <inheritdoc/>
    public void EvaluateJacobian(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> jacobian, Span<T> workspace)
    {
        int n = _w.HiddenSize;
        Gates(state, projection, next, workspace);
        ReadOnlySpan<T> r = workspace[..n], z = workspace.Slice(n, n), g = workspace.Slice(2 * n, n), hn = workspace.Slice(3 * n, n);
        T[] whh = _w.WeightHH;
        for (int i = 0; i < n; i++)
        {
            T common = (T.One - z[i]) * (T.One - g[i] * g[i]);
            T alpha = common * r[i] * (T.One - r[i]) * hn[i];
            T gamma = common * r[i];
            T eps = (state[i] - g[i]) * z[i] * (T.One - z[i]);
            ReadOnlySpan<T> wr = whh.AsSpan(i * n, n), wz = whh.AsSpan((n + i) * n, n), wn = whh.AsSpan((2 * n + i) * n, n);
            Span<T> row = jacobian.Slice(i * n, n);
            for (int j = 0; j < n; j++)
            {
                row[j] = alpha * wr[j] + gamma * wn[j] + eps * wz[j];
            }

            row[i] += z[i];
        }
    }

    /// <inheritdoc/>
    public void EvaluateJacobianDiagonal(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> diagonal, Span<T> workspace)
    {
        int n = _w.HiddenSize;
        Gates(state, projection, next, workspace);
        ReadOnlySpan<T> r = workspace[..n], z = workspace.Slice(n, n), g = workspace.Slice(2 * n, n), hn = workspace.Slice(3 * n, n);
        T[] whh = _w.WeightHH;
        for (int i = 0; i < n; i++)
        {
            T common = (T.One - z[i]) * (T.One - g[i] * g[i]);
            T alpha = common * r[i] * (T.One - r[i]) * hn[i];
            T gamma = common * r[i];
            T eps = (state[i] - g[i]) * z[i] * (T.One - z[i]);
            diagonal[i] = alpha * whh[i * n + i] + gamma * whh[(2 * n + i) * n + i] + eps * whh[(n + i) * n + i] + z[i];
        }
    }

    /// <summary>Writes next and leaves r, z, n and W_hn h + b_hn in the workspace for the Jacobian.</summary>
    private void Gates(ReadOnlySpan<T> h, ReadOnlySpan<T> p, Span<T> next, Span<T> workspace)
    {
        int n = _w.HiddenSize;
        Span<T> r = workspace[..n], z = workspace.Slice(n, n), g = workspace.Slice(2 * n, n), hn = workspace.Slice(3 * n, n);
        for (int i = 0; i < n; i++)
        {
            r[i] = Linear.Sigmoid(p[i] + Linear.Dot(_w.HiddenRow(i), h));
            z[i] = Linear.Sigmoid(p[n + i] + Linear.Dot(_w.HiddenRow(n + i), h));
            hn[i] = Linear.Dot(_w.HiddenRow(2 * n + i), h) + _w.BiasHH[2 * n + i];
            g[i] = T.Tanh(p[2 * n + i] + r[i] * hn[i]);
            next[i] = (T.One - z[i]) * g[i] + z[i] * h[i];
        }
    }
}
