using System.Runtime.CompilerServices;

namespace DeerSharp.Cells;

/// <summary>
/// PyTorch's nn.GRU equations (gates r, z, n) with W_hh restricted to k×k blocks (ParaRNN's diagonal GRU for k = 1):
/// r = σ(W_ir x + b_ir + A_r h + b_hr), z = σ(W_iz x + b_iz + A_z h + b_hz), n = tanh(W_in x + b_in + r ⊙ (A_n h + b_hn)),
/// h' = (1 - z) ⊙ n + z ⊙ h, where A_g is gate g's block-diagonal recurrent matrix.
/// </summary>
/// <remarks>
/// Jacobian row i, column j in i's block: J[i, j] = α_i A_r[i, j] + γ_i A_n[i, j] + ε_i A_z[i, j] + z_i δ_ij with
/// α = (1 - z)(1 - n²) r(1 - r)(A_n h + b_hn), γ = (1 - z)(1 - n²) r and ε = (h - n) z(1 - z), as for
/// <see cref="GruCell{T}"/>; zero outside the blocks, so Newton's step is exact at the cost of a k×k block scan.
/// Weights: <see cref="StructuredWeights{T}"/> with G = 3.
/// </remarks>
public readonly partial struct DiagonalGruCell<T> : IDifferentiableCell<T>, IConstructedCell, IStructuredJacobian, IDeviceFormSource<T>, IBackpropagationLoop<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    bool IConstructedCell.IsDefault => _c is null;

    private readonly BlockCellWeights<T> _c;
    private readonly StructuredWeights<T> _w;

    /// <summary>Wraps one layer's weights (G = 3), taking a snapshot of them.</summary>
    public DiagonalGruCell(StructuredWeights<T> weights)
    {
        LayerWeights.RequireGates(weights, weights?.Gates ?? 0, 3, "A GRU layer has 3 gate blocks (r, z, n)");

        _w = weights;
        _c = new BlockCellWeights<T>(weights, foldedGates: 2);
    }

    /// <summary>Random weights as PyTorch initialises them, scaled by <paramref name="scale"/>.</summary>
    public static DiagonalGruCell<T> Random(int inputSize, int hiddenSize, int blockSize, Random random, double scale = 1.0) =>
        new(StructuredWeights<T>.Random(3, hiddenSize, inputSize, blockSize, random, scale));

    /// <summary>The layer's weights as given.</summary>
    public StructuredWeights<T> Weights => _w;

    /// <summary>The device kernels' form of this cell.</summary>
    DeviceCell<T>? IDeviceFormSource<T>.DeviceForm() => DeviceCell<T>.Blocks(DeviceCellKind.DiagonalGru, _w);

    /// <summary>Blocks of k units, one part.</summary>
    public JacobianStructure? JacobianStructure => new JacobianStructure(_c.BlockSize);

    /// <inheritdoc/>
    public int StateSize => _c.HiddenSize;

    /// <inheritdoc/>
    public int InputSize => _c.InputSize;

    /// <inheritdoc/>
    public int OutputSize => _c.HiddenSize;

    /// <inheritdoc/>
    public int ProjectionSize => 3 * _c.HiddenSize;

    /// <summary>The recurrent products (3n) and n.</summary>
    public int WorkspaceSize => 4 * _c.HiddenSize;

    /// <inheritdoc/>
    public int BlockWorkspaceSize(int count) => WorkspaceSize;

    /// <inheritdoc/>
    public int ParameterCount => _c.ParameterCount;

    /// <summary>b_hr and b_hz fold into the projection; b_hn stays inside r ⊙ (A_n h + b_hn).</summary>
    public void ProjectInputs(ReadOnlySpan<T> inputs, Span<T> projections, int count) => _c.Project(inputs, projections, count);

    /// <inheritdoc/>
    public void Evaluate(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> workspace)
    {
        int n = _c.HiddenSize;
        Span<T> gates = workspace[..(3 * n)], g = workspace.Slice(3 * n, n);
        Gates(state, projection, gates, g, next);
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void EvaluateBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> next, Span<T> jacobians, JacobianMode mode,
        Span<T> workspace, int count)
    {
        int n = _c.HiddenSize, k = _c.BlockSize;
        Span<T> gates = workspace[..(3 * n)], g = workspace.Slice(3 * n, n);
        T[] w = _c.Hidden;
        for (int s = 0; s < count; s++)
        {
            ReadOnlySpan<T> h = states.Slice(s * n, n);
            Gates(h, projections.Slice(s * 3 * n, 3 * n), gates, g, next.Slice(s * n, n));
            if (mode == JacobianMode.None)
            {
                continue;
            }

            if (k == 1 && mode != JacobianMode.Full)
            {
                DiagonalK1(h, gates, g, jacobians.Slice(s * n, n));
                continue;
            }

            for (int i = 0; i < n; i++)
            {
                T r = gates[i], z = gates[n + i], hn = gates[2 * n + i], gi = g[i];
                T common = (T.One - z) * (T.One - gi * gi);
                T alpha = common * r * (T.One - r) * hn, gamma = common * r, eps = (h[i] - gi) * z * (T.One - z);
                int own = i % k;
                if (mode == JacobianMode.Diagonal)
                {
                    jacobians[s * n + i] = alpha * w[i * k + own] + gamma * w[(2 * n + i) * k + own] + eps * w[(n + i) * k + own] + z;
                    continue;
                }

                Span<T> row = mode == JacobianMode.Block ? jacobians.Slice(s * n * k + i * k, k) : jacobians.Slice(s * n * n + i * n + i / k * k, k);
                if (mode == JacobianMode.Full)
                {
                    jacobians.Slice(s * n * n + i * n, n).Clear();
                }

                for (int c = 0; c < k; c++)
                {
                    row[c] = alpha * w[i * k + c] + gamma * w[(2 * n + i) * k + c] + eps * w[(n + i) * k + c];
                }

                row[own] += z;
            }
        }
    }

    /// <inheritdoc/>
    public int BackwardWorkspaceSize(int count) => 2 * count * 3 * _c.HiddenSize + WorkspaceSize + _c.HiddenSize;

    /// <summary>
    /// Backward through the gates: with v = ∂L/∂h', ∂a_n = v(1 - z)(1 - n²), ∂a_r = ∂a_n (A_n h + b_hn) r(1 - r),
    /// ∂a_z = v(h - n) z(1 - z), and ∂h_{t-1} = v ⊙ z + Σ_g A_gᵀ δ_g with δ = [∂a_r; ∂a_z; ∂a_n ⊙ r].
    /// </summary>
    public void BackwardBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, ReadOnlySpan<T> inputs, ReadOnlySpan<T> adjoints,
        Span<T> previousAdjoints, Span<T> inputAdjoints, Span<T> gradient, Span<T> workspace, int count)
    {
        int n = _c.HiddenSize, rows = 3 * n;
        Span<T> dIh = workspace[..(count * rows)], dHh = workspace.Slice(count * rows, count * rows);
        Span<T> gates = workspace.Slice(2 * count * rows, 3 * n), g = workspace.Slice(2 * count * rows + 3 * n, n);
        Span<T> next = workspace.Slice(2 * count * rows + 4 * n, n);
        for (int s = 0; s < count; s++)
        {
            ReadOnlySpan<T> h = states.Slice(s * n, n), v = adjoints.Slice(s * n, n);
            Gates(h, projections.Slice(s * rows, rows), gates, g, next);
            Span<T> di = dIh.Slice(s * rows, rows), dh = dHh.Slice(s * rows, rows), previous = previousAdjoints.Slice(s * n, n);
            for (int j = 0; j < n; j++)
            {
                T r = gates[j], z = gates[n + j], hn = gates[2 * n + j], gj = g[j], vj = v[j];
                T dan = vj * (T.One - z) * (T.One - gj * gj);
                T dar = dan * hn * r * (T.One - r);
                T daz = vj * (h[j] - gj) * z * (T.One - z);
                di[j] = dh[j] = dar;
                di[n + j] = dh[n + j] = daz;
                di[2 * n + j] = dan;
                dh[2 * n + j] = dan * r;
                previous[j] = vj * z;
            }
        }

        _c.Backward(dIh, dHh, inputs, states, n, previousAdjoints, inputAdjoints, gradient, count);
    }

    /// <summary>
    /// Leaves r, z and A_n h + b_hn in <paramref name="gates"/>, n in <paramref name="g"/>, and writes next: one fused
    /// SIMD pass over the units after the recurrent products.
    /// </summary>
    private void Gates(ReadOnlySpan<T> h, ReadOnlySpan<T> p, Span<T> gates, Span<T> g, Span<T> next)
    {
        int n = _c.HiddenSize, v = Vector<T>.Count;
        _c.Product(h, gates);
        ReadOnlySpan<T> bhn = _c.HiddenBias.AsSpan(2 * n, n);
        int i = 0;
        for (; i + v <= n; i += v)
        {
            Vector<T> r = Activations.Sigmoid(new Vector<T>(p[i..]) + new Vector<T>(gates[i..]));
            Vector<T> z = Activations.Sigmoid(new Vector<T>(p[(n + i)..]) + new Vector<T>(gates[(n + i)..]));
            Vector<T> hn = new Vector<T>(gates[(2 * n + i)..]) + new Vector<T>(bhn[i..]);
            Vector<T> gi = Activations.Tanh(Kernels.Fma(r, hn, new Vector<T>(p[(2 * n + i)..])));
            r.CopyTo(gates[i..]);
            z.CopyTo(gates[(n + i)..]);
            hn.CopyTo(gates[(2 * n + i)..]);
            gi.CopyTo(g[i..]);
            Kernels.Fma(z, new Vector<T>(h[i..]) - gi, gi).CopyTo(next[i..]);
        }

        for (; i < n; i++)
        {
            T r = Activations.Sigmoid(p[i] + gates[i]);
            T z = Activations.Sigmoid(p[n + i] + gates[n + i]);
            T hn = gates[2 * n + i] + bhn[i];
            T gi = Activations.Tanh(T.FusedMultiplyAdd(r, hn, p[2 * n + i]));
            gates[i] = r;
            gates[n + i] = z;
            gates[2 * n + i] = hn;
            g[i] = gi;
            next[i] = T.FusedMultiplyAdd(z, h[i] - gi, gi);
        }
    }

    /// <summary>The exact diagonal for k = 1, α a_r + γ a_n + ε a_z + z, in SIMD (the Jacobian itself when k = 1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void DiagonalK1(ReadOnlySpan<T> h, ReadOnlySpan<T> gates, ReadOnlySpan<T> g, Span<T> diagonal)
    {
        int n = _c.HiddenSize, v = Vector<T>.Count, i = 0;
        ReadOnlySpan<T> w = _c.Hidden;
        for (; i + v <= n; i += v)
        {
            var r = new Vector<T>(gates[i..]);
            var z = new Vector<T>(gates[(n + i)..]);
            var hn = new Vector<T>(gates[(2 * n + i)..]);
            var gi = new Vector<T>(g[i..]);
            Vector<T> common = (Vector<T>.One - z) * (Vector<T>.One - gi * gi) * r;
            Vector<T> alpha = common * (Vector<T>.One - r) * hn, eps = (new Vector<T>(h[i..]) - gi) * z * (Vector<T>.One - z);
            Vector<T> d = Kernels.Fma(alpha, new Vector<T>(w[i..]), Kernels.Fma(common, new Vector<T>(w[(2 * n + i)..]), Kernels.Fma(eps, new Vector<T>(w[(n + i)..]), z)));
            d.CopyTo(diagonal[i..]);
        }

        for (; i < n; i++)
        {
            T r = gates[i], z = gates[n + i], hn = gates[2 * n + i], gi = g[i];
            T common = (T.One - z) * (T.One - gi * gi) * r;
            diagonal[i] = common * (T.One - r) * hn * w[i] + common * w[2 * n + i] + (h[i] - gi) * z * (T.One - z) * w[n + i] + z;
        }
    }
}
