using System.Runtime.CompilerServices;

namespace DeerSharp.Cells;

/// <summary>
/// PyTorch's nn.LSTM equations (gates i, f, g, o) with W_hh restricted to k×k blocks (ParaRNN's diagonal LSTM for
/// k = 1): with a = W_ih x + b_ih + A h + b_hh, i = σ(a_i), f = σ(a_f), g = tanh(a_g), o = σ(a_o),
/// c' = f ⊙ c + i ⊙ g, h' = o ⊙ tanh(c'). The state is [h; c] (S = 2n) and the output h.
/// </summary>
/// <remarks>
/// Unit u's h' and c' depend on the h of u's block and on c_u alone, so the Jacobian is block-diagonal with blocks of
/// side 2k over (h, c) of each block of units: <see cref="JacobianStructure"/>(k, Parts: 2). With τ = tanh(c') and j
/// in u's block: ∂c'_u/∂h_j = c_u f(1-f) A_f[u, j] + g i(1-i) A_i[u, j] + i(1-g²) A_g[u, j], ∂c'_u/∂c_u = f_u,
/// ∂h'_u/∂h_j = o(1-o) τ A_o[u, j] + o(1-τ²) ∂c'_u/∂h_j, ∂h'_u/∂c_u = o(1-τ²) f_u.
/// Weights: <see cref="StructuredWeights{T}"/> with G = 4.
/// </remarks>
public readonly partial struct DiagonalLstmCell<T> : IDifferentiableCell<T>, IConstructedCell, IStructuredJacobian, IDeviceFormSource<T>, IBackpropagationLoop<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    bool IConstructedCell.IsDefault => _c is null;

    private readonly BlockCellWeights<T> _c;
    private readonly StructuredWeights<T> _w;

    /// <summary>Wraps one layer's weights (G = 4), taking a snapshot of them.</summary>
    public DiagonalLstmCell(StructuredWeights<T> weights)
    {
        LayerWeights.RequireGates(weights, weights?.Gates ?? 0, 4, "An LSTM layer has 4 gate blocks (i, f, g, o)");

        _w = weights;
        _c = new BlockCellWeights<T>(weights, foldedGates: 4);
    }

    /// <summary>Random weights as PyTorch initialises them, scaled by <paramref name="scale"/>.</summary>
    public static DiagonalLstmCell<T> Random(int inputSize, int hiddenSize, int blockSize, Random random, double scale = 1.0) =>
        new(StructuredWeights<T>.Random(4, hiddenSize, inputSize, blockSize, random, scale));

    /// <summary>The layer's weights as given.</summary>
    public StructuredWeights<T> Weights => _w;

    /// <summary>The device kernels' form of this cell.</summary>
    DeviceCell<T>? IDeviceFormSource<T>.DeviceForm() => DeviceCell<T>.Blocks(DeviceCellKind.DiagonalLstm, _w);

    /// <summary>Blocks of k units over two parts, h and c.</summary>
    public JacobianStructure? JacobianStructure => new JacobianStructure(_c.BlockSize, Parts: 2);

    /// <summary>S = 2n: the state is [h; c].</summary>
    public int StateSize => 2 * _c.HiddenSize;

    /// <inheritdoc/>
    public int InputSize => _c.InputSize;

    /// <summary>h, the first n entries of the state.</summary>
    public int OutputSize => _c.HiddenSize;

    /// <inheritdoc/>
    public int ProjectionSize => 4 * _c.HiddenSize;

    /// <summary>The gates (4n) and tanh(c') (n).</summary>
    public int WorkspaceSize => 5 * _c.HiddenSize;

    /// <inheritdoc/>
    public int BlockWorkspaceSize(int count) => WorkspaceSize;

    /// <inheritdoc/>
    public int ParameterCount => _c.ParameterCount;

    /// <summary>Both biases fold into the projection.</summary>
    public void ProjectInputs(ReadOnlySpan<T> inputs, Span<T> projections, int count) => _c.Project(inputs, projections, count);

    /// <inheritdoc/>
    public void Evaluate(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> workspace)
    {
        int n = _c.HiddenSize;
        Gates(state, projection, workspace[..(4 * n)], workspace.Slice(4 * n, n), next);
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void EvaluateBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> next, Span<T> jacobians, JacobianMode mode,
        Span<T> workspace, int count)
    {
        int n = _c.HiddenSize, k = _c.BlockSize, s2 = 2 * n, side = 2 * k;
        Span<T> gates = workspace[..(4 * n)], tc = workspace.Slice(4 * n, n);
        T[] w = _c.Hidden;
        Span<T> dcdh = stackalloc T[k];
        for (int s = 0; s < count; s++)
        {
            ReadOnlySpan<T> state = states.Slice(s * s2, s2);
            Gates(state, projections.Slice(s * 4 * n, 4 * n), gates, tc, next.Slice(s * s2, s2));
            if (mode == JacobianMode.None)
            {
                continue;
            }

            if (mode == JacobianMode.Full)
            {
                jacobians.Slice(s * s2 * s2, s2 * s2).Clear();
            }

            for (int u = 0; u < n; u++)
            {
                T ig = gates[u], fg = gates[n + u], gg = gates[2 * n + u], og = gates[3 * n + u], c = state[n + u], t = tc[u];
                T ci = gg * ig * (T.One - ig), cf = c * fg * (T.One - fg), cg = ig * (T.One - gg * gg);
                T oPrime = og * (T.One - og) * t, hc = og * (T.One - t * t);
                int own = u % k, first = u - own;
                T dhh = T.Zero;
                for (int j = 0; j < k; j++)
                {
                    dcdh[j] = cf * w[(n + u) * k + j] + ci * w[u * k + j] + cg * w[(2 * n + u) * k + j];
                }

                switch (mode)
                {
                    case JacobianMode.Diagonal:
                        dhh = oPrime * w[(3 * n + u) * k + own] + hc * dcdh[own];
                        jacobians[s * s2 + u] = dhh;
                        jacobians[s * s2 + n + u] = fg;
                        break;
                    case JacobianMode.Block:
                        // Block ⌊u/k⌋: rows own (h'_u) and k + own (c'_u); columns 0..k-1 (h of the block), k + own (c_u).
                        Span<T> block = jacobians.Slice(s * s2 * side + u / k * side * side, side * side);
                        Span<T> hRow = block.Slice(own * side, side), cRow = block.Slice((k + own) * side, side);
                        hRow.Clear();
                        cRow.Clear();
                        for (int j = 0; j < k; j++)
                        {
                            hRow[j] = oPrime * w[(3 * n + u) * k + j] + hc * dcdh[j];
                            cRow[j] = dcdh[j];
                        }

                        hRow[k + own] = hc * fg;
                        cRow[k + own] = fg;
                        break;
                    default:
                        Span<T> hFull = jacobians.Slice(s * s2 * s2 + u * s2, s2), cFull = jacobians.Slice(s * s2 * s2 + (n + u) * s2, s2);
                        for (int j = 0; j < k; j++)
                        {
                            hFull[first + j] = oPrime * w[(3 * n + u) * k + j] + hc * dcdh[j];
                            cFull[first + j] = dcdh[j];
                        }

                        hFull[n + u] = hc * fg;
                        cFull[n + u] = fg;
                        break;
                }
            }
        }
    }

    /// <inheritdoc/>
    public int BackwardWorkspaceSize(int count) => count * 4 * _c.HiddenSize + WorkspaceSize + 2 * _c.HiddenSize;

    /// <summary>
    /// Backward, v = [v_h; v_c]: ∂c' = v_c + v_h o(1 - τ²), ∂a_o = v_h τ o(1 - o), ∂a_i = ∂c' g i(1 - i),
    /// ∂a_f = ∂c' c f(1 - f), ∂a_g = ∂c' i(1 - g²); ∂c_{t-1} = ∂c' ⊙ f and ∂h_{t-1} = Σ_g A_gᵀ ∂a_g.
    /// </summary>
    public void BackwardBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, ReadOnlySpan<T> inputs, ReadOnlySpan<T> adjoints,
        Span<T> previousAdjoints, Span<T> inputAdjoints, Span<T> gradient, Span<T> workspace, int count)
    {
        int n = _c.HiddenSize, rows = 4 * n, s2 = 2 * n;
        Span<T> delta = workspace[..(count * rows)];
        Span<T> gates = workspace.Slice(count * rows, 4 * n), tc = workspace.Slice(count * rows + 4 * n, n);
        Span<T> next = workspace.Slice(count * rows + 5 * n, s2);
        for (int s = 0; s < count; s++)
        {
            ReadOnlySpan<T> state = states.Slice(s * s2, s2), v = adjoints.Slice(s * s2, s2);
            Gates(state, projections.Slice(s * rows, rows), gates, tc, next);
            Span<T> d = delta.Slice(s * rows, rows), previous = previousAdjoints.Slice(s * s2, s2);
            for (int u = 0; u < n; u++)
            {
                T ig = gates[u], fg = gates[n + u], gg = gates[2 * n + u], og = gates[3 * n + u], t = tc[u];
                T dc = v[n + u] + v[u] * og * (T.One - t * t);
                d[u] = dc * gg * ig * (T.One - ig);
                d[n + u] = dc * state[n + u] * fg * (T.One - fg);
                d[2 * n + u] = dc * ig * (T.One - gg * gg);
                d[3 * n + u] = v[u] * t * og * (T.One - og);
                previous[u] = T.Zero;
                previous[n + u] = dc * fg;
            }
        }

        _c.Backward(delta, delta, inputs, states, s2, previousAdjoints, inputAdjoints, gradient, count);
    }

    /// <summary>Leaves i, f, g, o in <paramref name="gates"/> and tanh(c') in <paramref name="tc"/>, and writes next = [h'; c']: one SIMD pass.</summary>
    private void Gates(ReadOnlySpan<T> state, ReadOnlySpan<T> p, Span<T> gates, Span<T> tc, Span<T> next)
    {
        int n = _c.HiddenSize, v = Vector<T>.Count, u = 0;
        _c.Product(state, gates);
        for (; u + v <= n; u += v)
        {
            Vector<T> ig = Activations.Sigmoid(new Vector<T>(p[u..]) + new Vector<T>(gates[u..]));
            Vector<T> fg = Activations.Sigmoid(new Vector<T>(p[(n + u)..]) + new Vector<T>(gates[(n + u)..]));
            Vector<T> gg = Activations.Tanh(new Vector<T>(p[(2 * n + u)..]) + new Vector<T>(gates[(2 * n + u)..]));
            Vector<T> og = Activations.Sigmoid(new Vector<T>(p[(3 * n + u)..]) + new Vector<T>(gates[(3 * n + u)..]));
            Vector<T> c = Kernels.Fma(fg, new Vector<T>(state[(n + u)..]), ig * gg);
            Vector<T> t = Activations.Tanh(c);
            ig.CopyTo(gates[u..]);
            fg.CopyTo(gates[(n + u)..]);
            gg.CopyTo(gates[(2 * n + u)..]);
            og.CopyTo(gates[(3 * n + u)..]);
            t.CopyTo(tc[u..]);
            (og * t).CopyTo(next[u..]);
            c.CopyTo(next[(n + u)..]);
        }

        for (; u < n; u++)
        {
            T ig = Activations.Sigmoid(p[u] + gates[u]);
            T fg = Activations.Sigmoid(p[n + u] + gates[n + u]);
            T gg = Activations.Tanh(p[2 * n + u] + gates[2 * n + u]);
            T og = Activations.Sigmoid(p[3 * n + u] + gates[3 * n + u]);
            T c = T.FusedMultiplyAdd(fg, state[n + u], ig * gg);
            T t = Activations.Tanh(c);
            gates[u] = ig;
            gates[n + u] = fg;
            gates[2 * n + u] = gg;
            gates[3 * n + u] = og;
            tc[u] = t;
            next[u] = og * t;
            next[n + u] = c;
        }
    }
}
