using System.Runtime.CompilerServices;
using System.Numerics.Tensors;

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
public readonly partial struct LstmCell<T> : IDifferentiableCell<T>, IConstructedCell, IDeviceFormSource<T>, IBackpropagationLoop<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    bool IConstructedCell.IsDefault => _c is null;

    private readonly CellWeights<T> _c;
    private readonly RecurrentWeights<T> _w;

    /// <summary>Wraps one layer's weights (G = 4), taking a snapshot of them.</summary>
    public LstmCell(RecurrentWeights<T> weights)
    {
        LayerWeights.RequireGates(weights, weights?.Gates ?? 0, 4, "An LSTM layer has 4 gate blocks (i, f, g, o)");

        _w = weights;
        _c = new CellWeights<T>(weights, foldedGates: 4);
    }

    /// <summary>Random weights as PyTorch initialises them, scaled by <paramref name="scale"/>.</summary>
    public static LstmCell<T> Random(int inputSize, int hiddenSize, Random random, double scale = 1.0) =>
        new(RecurrentWeights<T>.Random(4, hiddenSize, inputSize, random, scale));

    /// <summary>The packed weights the fused loop reads (Cpu/FusedLoop).</summary>
    internal CellWeights<T> Packed => _c;

    /// <summary>The layer's weights as given.</summary>
    public RecurrentWeights<T> Weights => _w;

    /// <summary>The device kernels' form of this cell.</summary>
    DeviceCell<T>? IDeviceFormSource<T>.DeviceForm() => DeviceCell<T>.Dense(DeviceCellKind.Lstm, _w);

    /// <summary>2n: the state is [h; c].</summary>
    public int StateSize => 2 * _c.HiddenSize;

    /// <inheritdoc/>
    public int InputSize => _c.InputSize;

    /// <summary>n: the output is h.</summary>
    public int OutputSize => _c.HiddenSize;

    /// <inheritdoc/>
    public int ProjectionSize => 4 * _c.HiddenSize;

    /// <summary>The gates (4n, in place over W_hh h), tanh(c') and a temporary.</summary>
    public int WorkspaceSize => 6 * _c.HiddenSize;

    /// <inheritdoc/>
    public int BlockWorkspaceSize(int count) => 4 * _c.HiddenSize * count + 2 * _c.HiddenSize;

    /// <inheritdoc/>
    public void ProjectInputs(ReadOnlySpan<T> inputs, Span<T> projections, int count) => _c.Project(inputs, projections, count);

    /// <inheritdoc/>
    public void Evaluate(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> workspace)
    {
        int n = _c.HiddenSize, v = Vector<T>.Count;
        Span<T> gates = workspace[..(4 * n)];
        _c.Hidden(state[..n], gates);
        // The loop needs only [h'; c']: the gates and tanh(c') that Gates keeps for the Jacobians are not written back.
        int k = 0;
        for (; k + v <= n; k += v)
        {
            (Vector<T> ig, Vector<T> fg, Vector<T> gg, Vector<T> og) = GateLanes(projection, gates, n, k);
            Vector<T> c = Kernels.Fma(fg, new Vector<T>(state[(n + k)..]), ig * gg);
            c.CopyTo(next[(n + k)..]);
            (og * Activations.Tanh(c)).CopyTo(next[k..]);
        }

        if (k < n)
        {
            Gates(state, projection, gates, workspace.Slice(4 * n, n), workspace.Slice(5 * n, n), next);   // the tail lanes (recomputes the rest, identically)
        }
    }

    /// <summary>
    /// The block's gates, states and (when <paramref name="diagonal"/> is not empty) diagonal Jacobians in one loop over
    /// the steps and their lanes, from W_hh h of every step, when n is a whole number of vectors: only [h'; c'] and the
    /// diagonal are written, as in <see cref="GruCell{T}"/>'s block path. The formulas are <see cref="Diagonal"/>'s.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void GatesAndDiagonal(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, ReadOnlySpan<T> hhAll, Span<T> next, Span<T> diagonal, int count)
    {
        int n = _c.HiddenSize, s2 = 2 * n, rows = 4 * n, v = Vector<T>.Count;
        ReadOnlySpan<T> wd = _c.HiddenDiagonals;
        bool withDiagonal = !diagonal.IsEmpty;
        for (int s = 0; s < count; s++)
        {
            ReadOnlySpan<T> state = states.Slice(s * s2, s2), p = projections.Slice(s * rows, rows), hh = hhAll.Slice(s * rows, rows);
            Span<T> h1 = next.Slice(s * s2, s2);
            for (int k = 0; k + v <= n; k += v)
            {
                (Vector<T> ig, Vector<T> fg, Vector<T> gg, Vector<T> og) = GateLanes(p, hh, n, k);
                var cPrev = new Vector<T>(state[(n + k)..]);
                Vector<T> c = Kernels.Fma(fg, cPrev, ig * gg);
                Vector<T> t = Activations.Tanh(c);
                c.CopyTo(h1[(n + k)..]);
                (og * t).CopyTo(h1[k..]);
                if (withDiagonal)
                {
                    Vector<T> dc = cPrev * fg * (Vector<T>.One - fg) * new Vector<T>(wd[(n + k)..]);
                    dc = Kernels.Fma(gg * ig * (Vector<T>.One - ig), new Vector<T>(wd[k..]), dc);
                    dc = Kernels.Fma(ig * (Vector<T>.One - gg * gg), new Vector<T>(wd[(2 * n + k)..]), dc);
                    Vector<T> dh = t * og * (Vector<T>.One - og) * new Vector<T>(wd[(3 * n + k)..]);
                    Kernels.Fma(og * (Vector<T>.One - t * t), dc, dh).CopyTo(diagonal[(s * s2 + k)..]);
                    fg.CopyTo(diagonal[(s * s2 + n + k)..]);
                }
            }
        }
    }

    /// <summary>σ(i), σ(f), tanh(g), σ(o) for lanes k .. k + Vector&lt;T&gt;.Count, from the projection p and W_hh h.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector<T> I, Vector<T> F, Vector<T> G, Vector<T> O) GateLanes(ReadOnlySpan<T> p, ReadOnlySpan<T> hh, int n, int k) =>
        (Activations.Sigmoid(new Vector<T>(p[k..]) + new Vector<T>(hh[k..])),
         Activations.Sigmoid(new Vector<T>(p[(n + k)..]) + new Vector<T>(hh[(n + k)..])),
         Activations.Tanh(new Vector<T>(p[(2 * n + k)..]) + new Vector<T>(hh[(2 * n + k)..])),
         Activations.Sigmoid(new Vector<T>(p[(3 * n + k)..]) + new Vector<T>(hh[(3 * n + k)..])));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void EvaluateBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> next, Span<T> jacobians, JacobianMode mode,
        Span<T> workspace, int count)
    {
        int n = _c.HiddenSize, s2 = 2 * n, rows = 4 * n;
        Span<T> all = workspace[..(count * rows)];
        Span<T> tc = workspace.Slice(count * rows, n), tmp = workspace.Slice(count * rows + n, n);
        _c.Hidden(states, all, count, s2);
        if (mode != JacobianMode.Full && n % Vector<T>.Count == 0)
        {
            GatesAndDiagonal(states, projections, all, next, mode == JacobianMode.Diagonal ? jacobians : default, count);
            return;
        }

        for (int s = 0; s < count; s++)
        {
            ReadOnlySpan<T> state = states.Slice(s * s2, s2);
            Span<T> gates = all.Slice(s * rows, rows);
            Gates(state, projections.Slice(s * rows, rows), gates, tc, tmp, next.Slice(s * s2, s2));
            if (mode == JacobianMode.Diagonal)
            {
                Diagonal(state, gates, tc, jacobians.Slice(s * s2, s2));
            }
            else if (mode == JacobianMode.Full)
            {
                Jacobian(state, gates, tc, jacobians.Slice(s * s2 * s2, s2 * s2));
            }
        }
    }

    /// <inheritdoc/>
    public int ParameterCount => _c.ParameterCount;

    /// <inheritdoc/>
    public int BackwardWorkspaceSize(int count) => count * 4 * _c.HiddenSize * 2 + count * _c.HiddenSize + 3 * _c.HiddenSize + _c.BackwardScratch(count);

    /// <summary>
    /// Backward through the gates: with [v_h; v_c] = ∂L/∂[h'; c'], ∂c' = v_c + v_h ⊙ o(1 - τ²), ∂o = v_h ⊙ τ, ∂i = ∂c' ⊙ g,
    /// ∂g = ∂c' ⊙ i, ∂f = ∂c' ⊙ c, ∂c_{t-1} = ∂c' ⊙ f, and ∂h_{t-1} = W_hhᵀ ∂a for the gate pre-activations ∂a.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void BackwardBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, ReadOnlySpan<T> inputs, ReadOnlySpan<T> adjoints,
        Span<T> previousAdjoints, Span<T> inputAdjoints, Span<T> gradient, Span<T> workspace, int count)
    {
        int n = _c.HiddenSize, s2 = 2 * n, rows = 4 * n;
        Span<T> gates = workspace[..(count * rows)], delta = workspace.Slice(count * rows, count * rows);
        Span<T> tcAll = workspace.Slice(2 * count * rows, count * n);
        Span<T> tmp = workspace.Slice(2 * count * rows + count * n, n), next = workspace.Slice(2 * count * rows + count * n + n, s2);
        Span<T> scratch = workspace[(2 * count * rows + count * n + 3 * n)..];
        _c.Hidden(states, gates, count, s2);
        for (int k = 0; k < count; k++)
        {
            ReadOnlySpan<T> state = states.Slice(k * s2, s2), v = adjoints.Slice(k * s2, s2);
            Span<T> gk = gates.Slice(k * rows, rows), tc = tcAll.Slice(k * n, n), dk = delta.Slice(k * rows, rows);
            Gates(state, projections.Slice(k * rows, rows), gk, tc, tmp, next);
            Span<T> previous = previousAdjoints.Slice(k * s2, s2);
            for (int j = 0; j < n; j++)
            {
                T ig = gk[j], fg = gk[n + j], gg = gk[2 * n + j], og = gk[3 * n + j], t = tc[j];
                T vh = v[j];
                T dc = v[n + j] + vh * og * (T.One - t * t);
                dk[j] = dc * gg * ig * (T.One - ig);
                dk[n + j] = dc * state[n + j] * fg * (T.One - fg);
                dk[2 * n + j] = dc * ig * (T.One - gg * gg);
                dk[3 * n + j] = vh * t * og * (T.One - og);
                previous[j] = T.Zero;
                previous[n + j] = dc * fg;
            }
        }

        _c.Backward(delta, delta, inputs, states, s2, previousAdjoints, inputAdjoints, gradient, scratch, count);
    }

    /// <summary>
    /// From W_hh h in <paramref name="gates"/>: leaves i, f, g, o there and tanh(c') in <paramref name="tc"/>; writes [h'; c'].
    /// One fused pass over the lanes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Gates(ReadOnlySpan<T> state, ReadOnlySpan<T> p, Span<T> gates, Span<T> tc, Span<T> tmp, Span<T> next)
    {
        _ = tmp;
        int n = _c.HiddenSize, v = Vector<T>.Count;
        int k = 0;
        for (; k + v <= n; k += v)
        {
            (Vector<T> ig, Vector<T> fg, Vector<T> gg, Vector<T> og) = GateLanes(p, gates, n, k);
            Vector<T> c = Kernels.Fma(fg, new Vector<T>(state[(n + k)..]), ig * gg);
            Vector<T> t = Activations.Tanh(c);
            ig.CopyTo(gates[k..]);
            fg.CopyTo(gates[(n + k)..]);
            gg.CopyTo(gates[(2 * n + k)..]);
            og.CopyTo(gates[(3 * n + k)..]);
            t.CopyTo(tc[k..]);
            c.CopyTo(next[(n + k)..]);
            (og * t).CopyTo(next[k..]);
        }

        for (; k < n; k++)
        {
            T ig = Activations.Sigmoid(p[k] + gates[k]);
            T fg = Activations.Sigmoid(p[n + k] + gates[n + k]);
            T gg = Activations.Tanh(p[2 * n + k] + gates[2 * n + k]);
            T og = Activations.Sigmoid(p[3 * n + k] + gates[3 * n + k]);
            T c = T.FusedMultiplyAdd(fg, state[n + k], ig * gg);
            T t = Activations.Tanh(c);
            gates[k] = ig;
            gates[n + k] = fg;
            gates[2 * n + k] = gg;
            gates[3 * n + k] = og;
            tc[k] = t;
            next[n + k] = c;
            next[k] = og * t;
        }
    }

    /// <summary>
    /// diag(∂[h'; c']/∂[h; c]) from the gates <see cref="Gates"/> left, SIMD over i with the blocks' diagonals stored
    /// contiguously: ∂c'_i/∂h_i = cf W_hf,ii + gi W_hi,ii + ii W_hg,ii, ∂h'_i/∂h_i = oh W_ho,ii + oc ∂c'_i/∂h_i, ∂c'_i/∂c_i = f.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Diagonal(ReadOnlySpan<T> state, ReadOnlySpan<T> gates, ReadOnlySpan<T> tc, Span<T> diagonal)
    {
        int n = _c.HiddenSize, v = Vector<T>.Count;
        ReadOnlySpan<T> wd = _c.HiddenDiagonals;
        int i = 0;
        for (; i + v <= n; i += v)
        {
            var ig = new Vector<T>(gates[i..]);
            var fg = new Vector<T>(gates[(n + i)..]);
            var gg = new Vector<T>(gates[(2 * n + i)..]);
            var og = new Vector<T>(gates[(3 * n + i)..]);
            var t = new Vector<T>(tc[i..]);
            Vector<T> dc = new Vector<T>(state[(n + i)..]) * fg * (Vector<T>.One - fg) * new Vector<T>(wd[(n + i)..]);
            dc = Kernels.Fma(gg * ig * (Vector<T>.One - ig), new Vector<T>(wd[i..]), dc);
            dc = Kernels.Fma(ig * (Vector<T>.One - gg * gg), new Vector<T>(wd[(2 * n + i)..]), dc);
            Vector<T> dh = t * og * (Vector<T>.One - og) * new Vector<T>(wd[(3 * n + i)..]);
            Kernels.Fma(og * (Vector<T>.One - t * t), dc, dh).CopyTo(diagonal[i..]);
            fg.CopyTo(diagonal[(n + i)..]);
        }

        for (; i < n; i++)
        {
            (T ci, T gi, T ii, T oh, T oc, T f) = Coefficients(state, gates, tc, i);
            T dc = ci * wd[n + i] + gi * wd[i] + ii * wd[2 * n + i];
            diagonal[i] = oh * wd[3 * n + i] + oc * dc;
            diagonal[n + i] = f;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Jacobian(ReadOnlySpan<T> state, ReadOnlySpan<T> gates, ReadOnlySpan<T> tc, Span<T> jacobian)
    {
        int n = _c.HiddenSize, s2 = 2 * n;
        T[] w = _c.HiddenRows;
        jacobian[..(s2 * s2)].Clear();
        for (int i = 0; i < n; i++)
        {
            (T ci, T gi, T ii, T oh, T oc, T f) = Coefficients(state, gates, tc, i);
            Span<T> cRow = jacobian.Slice((n + i) * s2, n), hRow = jacobian.Slice(i * s2, n);
            TensorPrimitives.Multiply(w.AsSpan((n + i) * n, n), ci, cRow);                   // ∂c'/∂h
            TensorPrimitives.MultiplyAdd(w.AsSpan(i * n, n), gi, cRow, cRow);
            TensorPrimitives.MultiplyAdd(w.AsSpan((2 * n + i) * n, n), ii, cRow, cRow);
            TensorPrimitives.Multiply(cRow, oc, hRow);                                       // ∂h'/∂h
            TensorPrimitives.MultiplyAdd(w.AsSpan((3 * n + i) * n, n), oh, hRow, hRow);
            jacobian[(n + i) * s2 + n + i] = f;
            jacobian[i * s2 + n + i] = oc * f;
        }
    }

    /// <summary>Row i's coefficients: c f(1-f), g i(1-i), i(1-g²), τ o(1-o), o(1-τ²), and f.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private (T Ci, T Gi, T Ii, T Oh, T Oc, T F) Coefficients(ReadOnlySpan<T> state, ReadOnlySpan<T> gates, ReadOnlySpan<T> tc, int i)
    {
        int n = _c.HiddenSize;
        T ig = gates[i], fg = gates[n + i], gg = gates[2 * n + i], og = gates[3 * n + i], t = tc[i];
        return (state[n + i] * fg * (T.One - fg), gg * ig * (T.One - ig), ig * (T.One - gg * gg),
            t * og * (T.One - og), og * (T.One - t * t), fg);
    }
}
