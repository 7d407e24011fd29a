using System.Runtime.CompilerServices;

namespace DeerSharp.Cells;

/// <summary>
/// IndRNN (Li et al., CVPR 2018) in PyTorch's nn.RNN form with tanh, W_hh restricted to k×k blocks:
/// h' = tanh(W_ih x + b_ih + W_hh^blk h + b_hh), where unit i reads only the k units of its own block.
/// </summary>
/// <remarks>
/// Jacobian: J[i, ⌊i/k⌋·k + c] = (1 - h'_i²) W_hh[i, c], zero outside the blocks, so DEER's Newton step is exact at
/// the cost of a k×k block scan (a diagonal scan for k = 1). Weights: <see cref="StructuredWeights{T}"/> with G = 1.
/// </remarks>
public readonly partial struct IndRnnCell<T> : IDifferentiableCell<T>, IConstructedCell, IStructuredJacobian, IDeviceFormSource<T>, IBackpropagationLoop<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    bool IConstructedCell.IsDefault => _c is null;

    private readonly BlockCellWeights<T> _c;
    private readonly StructuredWeights<T> _w;

    /// <summary>Wraps one layer's weights (G = 1), taking a snapshot of them.</summary>
    public IndRnnCell(StructuredWeights<T> weights)
    {
        LayerWeights.RequireGates(weights, weights?.Gates ?? 0, 1, "An IndRNN layer has 1 gate block");

        _w = weights;
        _c = new BlockCellWeights<T>(weights, foldedGates: 1);
    }

    /// <summary>Random weights as PyTorch initialises them, scaled by <paramref name="scale"/>.</summary>
    public static IndRnnCell<T> Random(int inputSize, int hiddenSize, int blockSize, Random random, double scale = 1.0) =>
        new(StructuredWeights<T>.Random(1, hiddenSize, inputSize, blockSize, random, scale));

    /// <summary>The layer's weights as given.</summary>
    public StructuredWeights<T> Weights => _w;

    /// <summary>The device kernels' form of this cell.</summary>
    DeviceCell<T>? IDeviceFormSource<T>.DeviceForm() => DeviceCell<T>.Blocks(DeviceCellKind.IndRnn, _w);

    /// <summary>Blocks of k units, one part.</summary>
    public JacobianStructure? JacobianStructure => new JacobianStructure(_c.BlockSize);

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
    public int BlockWorkspaceSize(int count) => _c.HiddenSize;

    /// <inheritdoc/>
    public int ParameterCount => _c.ParameterCount;

    /// <inheritdoc/>
    public void ProjectInputs(ReadOnlySpan<T> inputs, Span<T> projections, int count) => _c.Project(inputs, projections, count);

    /// <inheritdoc/>
    public void Evaluate(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> workspace)
    {
        int n = _c.HiddenSize, v = Vector<T>.Count, i = 0;
        _c.Product(state, next[..n]);
        for (; i + v <= n; i += v)
        {
            Activations.Tanh(new Vector<T>(projection[i..]) + new Vector<T>(next[i..])).CopyTo(next[i..]);
        }

        for (; i < n; i++)
        {
            next[i] = Activations.Tanh(projection[i] + next[i]);
        }
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void EvaluateBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> next, Span<T> jacobians, JacobianMode mode,
        Span<T> workspace, int count)
    {
        int n = _c.HiddenSize, k = _c.BlockSize;
        T[] w = _c.Hidden;
        for (int s = 0; s < count; s++)
        {
            Span<T> h1 = next.Slice(s * n, n);
            Evaluate(states.Slice(s * n, n), projections.Slice(s * n, n), h1, workspace);
            if (mode == JacobianMode.None)
            {
                continue;
            }

            for (int i = 0; i < n; i++)
            {
                T slope = T.One - h1[i] * h1[i];
                switch (mode)
                {
                    case JacobianMode.Diagonal:
                        jacobians[s * n + i] = slope * w[i * k + i % k];
                        break;
                    case JacobianMode.Block:
                        // Block b = ⌊i/k⌋, row i mod k: entry (b·k + i mod k)·k + c = i·k + c, the layout of W_hh itself.
                        for (int c = 0; c < k; c++)
                        {
                            jacobians[s * n * k + i * k + c] = slope * w[i * k + c];
                        }

                        break;
                    default:
                        Span<T> row = jacobians.Slice(s * n * n + i * n, n);
                        row.Clear();
                        for (int c = 0; c < k; c++)
                        {
                            row[i / k * k + c] = slope * w[i * k + c];
                        }

                        break;
                }
            }
        }
    }

    /// <inheritdoc/>
    public int BackwardWorkspaceSize(int count) => 2 * count * _c.HiddenSize;

    /// <summary>Backward: ∂a = v ⊙ (1 - h'²) for the pre-activation a, and ∂h_{t-1} = (W_hh^blk)ᵀ ∂a.</summary>
    public void BackwardBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, ReadOnlySpan<T> inputs, ReadOnlySpan<T> adjoints,
        Span<T> previousAdjoints, Span<T> inputAdjoints, Span<T> gradient, Span<T> workspace, int count)
    {
        int n = _c.HiddenSize, m = count * n;
        Span<T> next = workspace[..m], delta = workspace.Slice(m, m);
        EvaluateBlock(states, projections, next, default, JacobianMode.None, default, count);
        for (int i = 0; i < m; i++)
        {
            delta[i] = adjoints[i] * (T.One - next[i] * next[i]);
        }

        previousAdjoints[..m].Clear();
        _c.Backward(delta, delta, inputs, states, n, previousAdjoints, inputAdjoints, gradient, count);
    }
}
