using System.Numerics;

namespace DeerSharp.Cells;

/// <summary>
/// PyTorch's nn.RNN cell with tanh: h' = tanh(W_ih x + b_ih + W_hh h + b_hh).
/// </summary>
/// <remarks>Jacobian: J = diag(1 - h'²) W_hh.</remarks>
public readonly struct TanhRnnCell<T> : IRecurrentCell<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly RecurrentWeights<T> _w;

    /// <summary>Wraps one layer's weights (G = 1).</summary>
    public TanhRnnCell(RecurrentWeights<T> weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (weights.Gates != 1)
        {
            throw new ArgumentException($"A tanh RNN layer has 1 gate block; these weights have {weights.Gates}.", nameof(weights));
        }

        _w = weights;
    }

    /// <summary>Random weights as PyTorch initialises them, scaled by <paramref name="scale"/>.</summary>
    public static TanhRnnCell<T> Random(int inputSize, int hiddenSize, Random random, double scale = 1.0) =>
        new(RecurrentWeights<T>.Random(1, hiddenSize, inputSize, random, scale));

    /// <summary>The layer's weights.</summary>
    public RecurrentWeights<T> Weights => _w;

    /// <inheritdoc/>
    public int StateSize => _w.HiddenSize;

    /// <inheritdoc/>
    public int InputSize => _w.InputSize;

    /// <inheritdoc/>
    public int OutputSize => _w.HiddenSize;

    /// <inheritdoc/>
    public int ProjectionSize => _w.HiddenSize;

    /// <inheritdoc/>
    public int WorkspaceSize => 0;

    /// <inheritdoc/>
    public void ProjectInput(ReadOnlySpan<T> input, Span<T> projection) => _w.Project(input, projection, foldedGates: 1);

    /// <inheritdoc/>
    public void Evaluate(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> workspace)
    {
        for (int i = 0; i < next.Length; i++)
        {
            next[i] = T.Tanh(projection[i] + Linear.Dot(_w.HiddenRow(i), state));
        }
    }

    /// <inheritdoc/>
    public void EvaluateJacobian(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> jacobian, Span<T> workspace)
    {
        int n = _w.HiddenSize;
        Evaluate(state, projection, next, workspace);
        for (int i = 0; i < n; i++)
        {
            T slope = T.One - next[i] * next[i];
            ReadOnlySpan<T> w = _w.HiddenRow(i);
            Span<T> row = jacobian.Slice(i * n, n);
            for (int j = 0; j < n; j++)
            {
                row[j] = slope * w[j];
            }
        }
    }

    /// <inheritdoc/>
    public void EvaluateJacobianDiagonal(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> diagonal, Span<T> workspace)
    {
        int n = _w.HiddenSize;
        Evaluate(state, projection, next, workspace);
        for (int i = 0; i < n; i++)
        {
            diagonal[i] = (T.One - next[i] * next[i]) * _w.WeightHH[i * n + i];
        }
    }
}
