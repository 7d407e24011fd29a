using System.Runtime.CompilerServices;
using System.Numerics.Tensors;

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
public readonly partial struct GruCell<T> : IDifferentiableCell<T>, IConstructedCell, IDeviceFormSource<T>, IBackpropagationLoop<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    bool IConstructedCell.IsDefault => _c is null;

    private readonly CellWeights<T> _c;
    private readonly RecurrentWeights<T> _w;

    /// <summary>Wraps one layer's weights (G = 3), taking a snapshot of them.</summary>
    public GruCell(RecurrentWeights<T> weights)
    {
        LayerWeights.RequireGates(weights, weights?.Gates ?? 0, 3, "A GRU layer has 3 gate blocks (r, z, n)");

        _w = weights;
        _c = new CellWeights<T>(weights, foldedGates: 2);
    }

    /// <summary>Random weights as PyTorch initialises them, scaled by <paramref name="scale"/>.</summary>
    public static GruCell<T> Random(int inputSize, int hiddenSize, Random random, double scale = 1.0) =>
        new(RecurrentWeights<T>.Random(3, hiddenSize, inputSize, random, scale));

    /// <summary>The packed weights the fused loop reads (Cpu/FusedLoop).</summary>
    internal CellWeights<T> Packed => _c;

    /// <summary>The layer's weights as given.</summary>
    public RecurrentWeights<T> Weights => _w;

    /// <summary>The device kernels' form of this cell.</summary>
    DeviceCell<T>? IDeviceFormSource<T>.DeviceForm() => DeviceCell<T>.Dense(DeviceCellKind.Gru, _w);

    /// <inheritdoc/>
    public int StateSize => _c.HiddenSize;

    /// <inheritdoc/>
    public int InputSize => _c.InputSize;

    /// <inheritdoc/>
    public int OutputSize => _c.HiddenSize;

    /// <inheritdoc/>
    public int ProjectionSize => 3 * _c.HiddenSize;

    /// <summary>W_hh h (3n, then r, z and W_hn h + b_hn in place), n and a temporary.</summary>
    public int WorkspaceSize => 5 * _c.HiddenSize;

    /// <inheritdoc/>
    public int BlockWorkspaceSize(int count) => 3 * _c.HiddenSize * count + 2 * _c.HiddenSize;

    /// <summary>b_hr and b_hz fold into the projection; b_hn stays inside r ⊙ (W_hn h + b_hn).</summary>
    public void ProjectInputs(ReadOnlySpan<T> inputs, Span<T> projections, int count) => _c.Project(inputs, projections, count);

    /// <inheritdoc/>
    public void Evaluate(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> workspace)
    {
        int n = _c.HiddenSize;
        Span<T> hh = workspace[..(3 * n)];
        _c.Hidden(state, hh);
        Gates(state, projection, hh, workspace.Slice(3 * n, n), workspace.Slice(4 * n, n), next);
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void EvaluateBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> next, Span<T> jacobians, JacobianMode mode,
        Span<T> workspace, int count)
    {
        int n = _c.HiddenSize, rows = 3 * n;
        Span<T> hhAll = workspace[..(count * rows)];
        Span<T> g = workspace.Slice(count * rows, n), tmp = workspace.Slice(count * rows + n, n);
        _c.Hidden(states, hhAll, count, n);
        if (mode != JacobianMode.Full)
        {
            GatesAndDiagonal(states, projections, hhAll, next, mode == JacobianMode.Diagonal ? jacobians : default, count);
            return;
        }

        for (int s = 0; s < count; s++)
        {
            ReadOnlySpan<T> h = states.Slice(s * n, n);
            Span<T> hh = hhAll.Slice(s * rows, rows);
            Gates(h, projections.Slice(s * rows, rows), hh, g, tmp, next.Slice(s * n, n));
            if (mode == JacobianMode.Diagonal)
            {
                Diagonal(h, hh, g, jacobians.Slice(s * n, n));
            }
            else if (mode == JacobianMode.Full)
            {
                Jacobian(h, hh, g, jacobians.Slice(s * n * n, n * n));
            }
        }
    }

    /// <inheritdoc/>
    public int ParameterCount => _c.ParameterCount;

    /// <inheritdoc/>
    public int BackwardWorkspaceSize(int count) => count * 3 * _c.HiddenSize * 3 + count * _c.HiddenSize + 2 * _c.HiddenSize + _c.BackwardScratch(count);

    /// <summary>
    /// Backward through the gates (see the type's equations): with v = ∂L/∂h', ∂n = v(1 - z), ∂z = v(h - n),
    /// ∂a_n = ∂n(1 - n²), ∂(W_hn h + b_hn) = ∂a_n ⊙ r, ∂a_r = ∂a_n ⊙ (W_hn h + b_hn) ⊙ r(1 - r), ∂a_z = ∂z ⊙ z(1 - z), and
    /// ∂h_{t-1} = v ⊙ z + W_hhᵀ [∂a_r; ∂a_z; ∂a_n ⊙ r].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void BackwardBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, ReadOnlySpan<T> inputs, ReadOnlySpan<T> adjoints,
        Span<T> previousAdjoints, Span<T> inputAdjoints, Span<T> gradient, Span<T> workspace, int count)
    {
        int n = _c.HiddenSize, rows = 3 * n;
        Span<T> gates = workspace[..(count * rows)];
        Span<T> dIh = workspace.Slice(count * rows, count * rows), dHh = workspace.Slice(2 * count * rows, count * rows);
        Span<T> gAll = workspace.Slice(3 * count * rows, count * n);
        Span<T> tmp = workspace.Slice(3 * count * rows + count * n, n), next = workspace.Slice(3 * count * rows + count * n + n, n);
        Span<T> scratch = workspace[(3 * count * rows + count * n + 2 * n)..];
        _c.Hidden(states, gates, count, n);
        for (int i = 0; i < count; i++)
        {
            ReadOnlySpan<T> h = states.Slice(i * n, n), v = adjoints.Slice(i * n, n);
            Span<T> gi = gates.Slice(i * rows, rows), g = gAll.Slice(i * n, n);
            Gates(h, projections.Slice(i * rows, rows), gi, g, tmp, next);
            Span<T> di = dIh.Slice(i * rows, rows), dh = dHh.Slice(i * rows, rows), previous = previousAdjoints.Slice(i * n, n);
            for (int j = 0; j < n; j++)
            {
                T r = gi[j], z = gi[n + j], hn = gi[2 * n + j], gj = g[j], vj = v[j];
                T dan = vj * (T.One - z) * (T.One - gj * gj);
                T dar = dan * hn * r * (T.One - r);
                T daz = vj * (h[j] - gj) * z * (T.One - z);
                di[j] = dar;
                di[n + j] = daz;
                di[2 * n + j] = dan;
                dh[j] = dar;
                dh[n + j] = daz;
                dh[2 * n + j] = dan * r;
                previous[j] = vj * z;
            }
        }

        _c.Backward(dIh, dHh, inputs, states, n, previousAdjoints, inputAdjoints, gradient, scratch, count);
    }

    /// <summary>
    /// From hh = W_hh h: leaves r, z and W_hn h + b_hn in hh, n in <paramref name="g"/>, and writes next. One fused
    /// pass over the lanes, so each gate's inputs are read once.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Gates(ReadOnlySpan<T> h, ReadOnlySpan<T> p, Span<T> hh, Span<T> g, Span<T> tmp, Span<T> next)
    {
        _ = tmp;
        int n = _c.HiddenSize, v = Vector<T>.Count;
        ReadOnlySpan<T> bhn = _c.HiddenBias.AsSpan(2 * n, n);
        int i = 0;
        for (; i + v <= n; i += v)
        {
            (Vector<T> r, Vector<T> z, Vector<T> hn, Vector<T> gi) = GateLanes(p, hh, bhn, n, i);
            r.CopyTo(hh[i..]);
            z.CopyTo(hh[(n + i)..]);
            hn.CopyTo(hh[(2 * n + i)..]);
            gi.CopyTo(g[i..]);
            Kernels.Fma(z, new Vector<T>(h[i..]) - gi, gi).CopyTo(next[i..]);      // h' = n + z ⊙ (h - n)
        }

        for (; i < n; i++)
        {
            (T r, T z, T hn, T gi) = GateLane(p, hh, bhn, n, i);
            hh[i] = r;
            hh[n + i] = z;
            hh[2 * n + i] = hn;
            g[i] = gi;
            next[i] = T.FusedMultiplyAdd(z, h[i] - gi, gi);
        }
    }

    /// <summary>r, z, W_hn h + b_hn and n for lanes i .. i + Vector&lt;T&gt;.Count, from the projection p and hh = W_hh h.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector<T> R, Vector<T> Z, Vector<T> Hn, Vector<T> N) GateLanes(ReadOnlySpan<T> p, ReadOnlySpan<T> hh, ReadOnlySpan<T> bhn, int n, int i)
    {
        Vector<T> r = Activations.Sigmoid(new Vector<T>(p[i..]) + new Vector<T>(hh[i..]));
        Vector<T> z = Activations.Sigmoid(new Vector<T>(p[(n + i)..]) + new Vector<T>(hh[(n + i)..]));
        Vector<T> hn = new Vector<T>(hh[(2 * n + i)..]) + new Vector<T>(bhn[i..]);
        return (r, z, hn, Activations.Tanh(Kernels.Fma(r, hn, new Vector<T>(p[(2 * n + i)..]))));
    }

    /// <summary>The same for lane i alone (the tail past the last whole vector).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (T R, T Z, T Hn, T N) GateLane(ReadOnlySpan<T> p, ReadOnlySpan<T> hh, ReadOnlySpan<T> bhn, int n, int i)
    {
        T r = Activations.Sigmoid(p[i] + hh[i]);
        T z = Activations.Sigmoid(p[n + i] + hh[n + i]);
        T hn = hh[2 * n + i] + bhn[i];
        return (r, z, hn, Activations.Tanh(T.FusedMultiplyAdd(r, hn, p[2 * n + i])));
    }

    /// <summary>
    /// The block's gates, states and (when <paramref name="diagonal"/> is not empty) diagonal Jacobians in one loop over
    /// the steps and their lanes, from hh = W_hh h of every step: nothing but h' and the diagonal is written back, and
    /// the loop spans the whole block, so the out-of-order core overlaps one step's σ/tanh chains with the next's.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void GatesAndDiagonal(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, ReadOnlySpan<T> hhAll, Span<T> next, Span<T> diagonal, int count)
    {
        int n = _c.HiddenSize, rows = 3 * n, v = Vector<T>.Count;
        ReadOnlySpan<T> bhn = _c.HiddenBias.AsSpan(2 * n, n), wd = _c.HiddenDiagonals;
        bool withDiagonal = !diagonal.IsEmpty;
        for (int s = 0; s < count; s++)
        {
            ReadOnlySpan<T> h = states.Slice(s * n, n), p = projections.Slice(s * rows, rows), hh = hhAll.Slice(s * rows, rows);
            Span<T> h1 = next.Slice(s * n, n);
            int i = 0;
            for (; i + v <= n; i += v)
            {
                (Vector<T> r, Vector<T> z, Vector<T> hn, Vector<T> gi) = GateLanes(p, hh, bhn, n, i);
                var hv = new Vector<T>(h[i..]);
                Kernels.Fma(z, hv - gi, gi).CopyTo(h1[i..]);
                if (withDiagonal)
                {
                    Vector<T> common = (Vector<T>.One - z) * (Vector<T>.One - gi * gi);
                    Vector<T> gamma = common * r;
                    Vector<T> alpha = gamma * (Vector<T>.One - r) * hn;
                    Vector<T> eps = (hv - gi) * z * (Vector<T>.One - z);
                    Vector<T> d = Kernels.Fma(alpha, new Vector<T>(wd[i..]), z);
                    d = Kernels.Fma(gamma, new Vector<T>(wd[(2 * n + i)..]), d);
                    Kernels.Fma(eps, new Vector<T>(wd[(n + i)..]), d).CopyTo(diagonal[(s * n + i)..]);
                }
            }

            for (; i < n; i++)
            {
                (T r, T z, T hn, T gi) = GateLane(p, hh, bhn, n, i);
                h1[i] = T.FusedMultiplyAdd(z, h[i] - gi, gi);
                if (withDiagonal)
                {
                    T common = (T.One - z) * (T.One - gi * gi);
                    diagonal[s * n + i] = common * r * (T.One - r) * hn * wd[i] + common * r * wd[2 * n + i] + (h[i] - gi) * z * (T.One - z) * wd[n + i] + z;
                }
            }
        }
    }

    /// <summary>
    /// diag(∂h'/∂h) from the gates <see cref="Gates"/> left: α W_hr,ii + γ W_hn,ii + ε W_hz,ii + z per lane, SIMD over i
    /// with the blocks' diagonals stored contiguously (a scalar loop with strided weight reads cost as much as the gates).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Diagonal(ReadOnlySpan<T> h, ReadOnlySpan<T> gates, ReadOnlySpan<T> g, Span<T> diagonal)
    {
        int n = _c.HiddenSize, v = Vector<T>.Count;
        ReadOnlySpan<T> wd = _c.HiddenDiagonals;
        int i = 0;
        for (; i + v <= n; i += v)
        {
            var r = new Vector<T>(gates[i..]);
            var z = new Vector<T>(gates[(n + i)..]);
            var hn = new Vector<T>(gates[(2 * n + i)..]);
            var gi = new Vector<T>(g[i..]);
            Vector<T> common = (Vector<T>.One - z) * (Vector<T>.One - gi * gi);
            Vector<T> gamma = common * r;
            Vector<T> alpha = gamma * (Vector<T>.One - r) * hn;
            Vector<T> eps = (new Vector<T>(h[i..]) - gi) * z * (Vector<T>.One - z);
            Vector<T> d = Kernels.Fma(alpha, new Vector<T>(wd[i..]), z);
            d = Kernels.Fma(gamma, new Vector<T>(wd[(2 * n + i)..]), d);
            Kernels.Fma(eps, new Vector<T>(wd[(n + i)..]), d).CopyTo(diagonal[i..]);
        }

        for (; i < n; i++)
        {
            (T alpha, T gamma, T eps, T z) = Coefficients(h, gates, g, i);
            diagonal[i] = alpha * wd[i] + gamma * wd[2 * n + i] + eps * wd[n + i] + z;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Jacobian(ReadOnlySpan<T> h, ReadOnlySpan<T> gates, ReadOnlySpan<T> g, Span<T> jacobian)
    {
        int n = _c.HiddenSize;
        T[] w = _c.HiddenRows;
        for (int i = 0; i < n; i++)
        {
            (T alpha, T gamma, T eps, T z) = Coefficients(h, gates, g, i);
            Span<T> row = jacobian.Slice(i * n, n);
            TensorPrimitives.Multiply(w.AsSpan(i * n, n), alpha, row);
            TensorPrimitives.MultiplyAdd(w.AsSpan((2 * n + i) * n, n), gamma, row, row);
            TensorPrimitives.MultiplyAdd(w.AsSpan((n + i) * n, n), eps, row, row);
            row[i] += z;
        }
    }

    /// <summary>Row i's coefficients of W_hr, W_hn and W_hz, and z_i (see the type's remarks).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private (T Alpha, T Gamma, T Eps, T Z) Coefficients(ReadOnlySpan<T> h, ReadOnlySpan<T> gates, ReadOnlySpan<T> g, int i)
    {
        int n = _c.HiddenSize;
        T r = gates[i], z = gates[n + i], hn = gates[2 * n + i], gi = g[i];
        T common = (T.One - z) * (T.One - gi * gi);
        return (common * r * (T.One - r) * hn, common * r, (h[i] - gi) * z * (T.One - z), z);
    }
}
