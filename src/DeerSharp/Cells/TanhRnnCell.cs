using System.Runtime.CompilerServices;
using System.Numerics.Tensors;

namespace DeerSharp.Cells;

/// <summary>
/// PyTorch's nn.RNN cell with tanh: h' = tanh(W_ih x + b_ih + W_hh h + b_hh).
/// </summary>
/// <remarks>Jacobian: J = diag(1 - h'²) W_hh; its diagonal (1 - h'²) ⊙ diag(W_hh).</remarks>
public readonly partial struct TanhRnnCell<T> : IDifferentiableCell<T>, IConstructedCell, IDeviceFormSource<T>, IBackpropagationLoop<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    bool IConstructedCell.IsDefault => _c is null;

    private readonly CellWeights<T> _c;
    private readonly RecurrentWeights<T> _w;

    /// <summary>Wraps one layer's weights (G = 1), taking a snapshot of them.</summary>
    public TanhRnnCell(RecurrentWeights<T> weights)
    {
        LayerWeights.RequireGates(weights, weights?.Gates ?? 0, 1, "A tanh RNN layer has 1 gate block");

        _w = weights;
        _c = new CellWeights<T>(weights, foldedGates: 1);
    }

    /// <summary>Random weights as PyTorch initialises them, scaled by <paramref name="scale"/>.</summary>
    public static TanhRnnCell<T> Random(int inputSize, int hiddenSize, Random random, double scale = 1.0) =>
        new(RecurrentWeights<T>.Random(1, hiddenSize, inputSize, random, scale));

    /// <summary>The layer's weights as given.</summary>
    public RecurrentWeights<T> Weights => _w;

    /// <summary>The device kernels' form of this cell.</summary>
    DeviceCell<T>? IDeviceFormSource<T>.DeviceForm() => DeviceCell<T>.Dense(DeviceCellKind.TanhRnn, _w);

    /// <inheritdoc/>
    public int StateSize => _c.HiddenSize;

    /// <inheritdoc/>
    public int InputSize => _c.InputSize;

    /// <inheritdoc/>
    public int OutputSize => _c.HiddenSize;

    /// <inheritdoc/>
    public int ProjectionSize => _c.HiddenSize;

    /// <inheritdoc/>
    public int WorkspaceSize => _c.HiddenSize;

    /// <inheritdoc/>
    public int BlockWorkspaceSize(int count) => count * _c.HiddenSize;

    /// <inheritdoc/>
    public void ProjectInputs(ReadOnlySpan<T> inputs, Span<T> projections, int count) => _c.Project(inputs, projections, count);

    /// <inheritdoc/>
    public void Evaluate(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> workspace)
    {
        int n = _c.HiddenSize;
        Span<T> hh = workspace[..n];
        _c.Hidden(state, hh);
        AddTanh(projection[..n], hh, next[..n]);
    }

    /// <inheritdoc/>
    public int ParameterCount => _c.ParameterCount;

    /// <inheritdoc/>
    public int BackwardWorkspaceSize(int count) => 3 * count * _c.HiddenSize + _c.BackwardScratch(count);

    /// <summary>Backward: ∂a = v ⊙ (1 - h'²) for the pre-activation a, and ∂h_{t-1} = W_hhᵀ ∂a.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void BackwardBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, ReadOnlySpan<T> inputs, ReadOnlySpan<T> adjoints,
        Span<T> previousAdjoints, Span<T> inputAdjoints, Span<T> gradient, Span<T> workspace, int count)
    {
        int n = _c.HiddenSize, m = count * n;
        Span<T> hh = workspace[..m], next = workspace.Slice(m, m), delta = workspace.Slice(2 * m, m);
        _c.Hidden(states, hh, count, n);
        AddTanh(projections[..m], hh, next);
        for (int i = 0; i < m; i++)
        {
            delta[i] = adjoints[i] * (T.One - next[i] * next[i]);
        }

        previousAdjoints[..m].Clear();
        _c.Backward(delta, delta, inputs, states, n, previousAdjoints, inputAdjoints, gradient, workspace[(3 * m)..], count);
    }

    /// <summary>next = tanh(p + hh), fused.</summary>
    private static void AddTanh(ReadOnlySpan<T> p, ReadOnlySpan<T> hh, Span<T> next)
    {
        int v = Vector<T>.Count, i = 0;
        for (; i + v <= next.Length; i += v)
        {
            Activations.Tanh(new Vector<T>(p[i..]) + new Vector<T>(hh[i..])).CopyTo(next[i..]);
        }

        for (; i < next.Length; i++)
        {
            next[i] = Activations.Tanh(p[i] + hh[i]);
        }
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void EvaluateBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> next, Span<T> jacobians, JacobianMode mode,
        Span<T> workspace, int count)
    {
        int n = _c.HiddenSize;
        Span<T> hh = workspace[..(count * n)];
        _c.Hidden(states, hh, count, n);
        AddTanh(projections[..(count * n)], hh, next[..(count * n)]);
        if (mode == JacobianMode.None)
        {
            return;
        }

        T[] w = _c.HiddenRows;
        if (mode == JacobianMode.Diagonal)
        {
            // (1 - h'²) ⊙ diag(W_hh), SIMD over the block's steps and lanes.
            ReadOnlySpan<T> wd = _c.HiddenDiagonals;
            for (int s = 0; s < count; s++)
            {
                ReadOnlySpan<T> h1 = next.Slice(s * n, n);
                Span<T> d = jacobians.Slice(s * n, n);
                int i = 0;
                for (; i + Vector<T>.Count <= n; i += Vector<T>.Count)
                {
                    var h = new Vector<T>(h1[i..]);
                    ((Vector<T>.One - h * h) * new Vector<T>(wd[i..])).CopyTo(d[i..]);
                }

                for (; i < n; i++)
                {
                    d[i] = (T.One - h1[i] * h1[i]) * wd[i];
                }
            }

            return;
        }

        for (int s = 0; s < count; s++)
        {
            ReadOnlySpan<T> h1 = next.Slice(s * n, n);
            for (int i = 0; i < n; i++)
            {
                T slope = T.One - h1[i] * h1[i];
                if (mode == JacobianMode.Diagonal)
                {
                    jacobians[s * n + i] = slope * w[i * n + i];
                }
                else
                {
                    TensorPrimitives.Multiply(w.AsSpan(i * n, n), slope, jacobians.Slice(s * n * n + i * n, n));
                }
            }
        }
    }
}
