using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DeerSharp.Cells;

/// <summary>
/// GILR-LSTM (Martin &amp; Cundy 2018, reference §9): an LSTM whose gates read a GILR surrogate h~ instead of its own h.
/// h~_t = GILR(x)_t; (i, f, z, o) = (σ, σ, tanh, σ)(W_ih x_t + W_hh h~_{t-1} + b); c_t = f ⊙ c_{t-1} + i ⊙ z; h_t = o ⊙ c_t.
/// Both recurrences are linear in their own state: one scan for h~, the gates for all steps at once, one scan for c.
/// </summary>
/// <remarks>
/// The state is [h; h~; c] (3n) and the output h. h_{t-1} feeds nothing, so the Jacobian's h columns are zero;
/// its diagonal is [0; g; f]. Parameters, flat: [surrogate.gate.weight, surrogate.gate.bias, surrogate.impulse.weight,
/// surrogate.impulse.bias, weight_ih, weight_hh, bias]. Projections hold [g; i; W_ih x + b] (6n).
/// </remarks>
public readonly partial struct GilrLstmCell<T> : ILinearSurrogateCell<T>, IConstructedCell, IDeviceFormSource<T>, IBackpropagationLoop<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    bool IConstructedCell.IsDefault => _c is null;

    private readonly GilrProjection<T> _s;
    private readonly CellWeights<T> _c;
    private readonly T[] _inputTransposed;  // [Uᵀ | Vᵀ | W_ihᵀ], [d, 6n]: the whole projection in one product
    private readonly T[] _inputBias;        // [b_g; b_i; b]

    /// <summary>Wraps the weights (a snapshot of them).</summary>
    public GilrLstmCell(GilrLstmWeights<T> weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        Weights = weights;
        _s = new GilrProjection<T>(weights.Surrogate);
        _c = new CellWeights<T>(new RecurrentWeights<T>(4, weights.HiddenSize, weights.InputSize, weights.WeightIH, weights.WeightHH, weights.Bias), foldedGates: 4);
        int n = weights.HiddenSize, d = weights.InputSize;
        _inputTransposed = new T[d * 6 * n];
        for (int k = 0; k < d; k++)
        {
            _s.Transposed.AsSpan(k * 2 * n, 2 * n).CopyTo(_inputTransposed.AsSpan(k * 6 * n));
            _c.InputTransposed.AsSpan(k * 4 * n, 4 * n).CopyTo(_inputTransposed.AsSpan((k * 6 * n) + (2 * n)));
        }

        _inputBias = [.. _s.Bias, .. _c.ProjectionBias];
    }

    /// <summary>Random weights.</summary>
    public static GilrLstmCell<T> Random(int inputSize, int hiddenSize, Random random, double scale = 1.0) =>
        new(GilrLstmWeights<T>.Random(hiddenSize, inputSize, random, scale));

    /// <summary>The weights as given.</summary>
    public GilrLstmWeights<T> Weights { get; }

    /// <summary>The device kernels' form of this cell.</summary>
    DeviceCell<T>? IDeviceFormSource<T>.DeviceForm() => DeviceCell<T>.GilrLstm(Weights);

    private int N => _c.HiddenSize;

    /// <summary>3n: [h; h~; c].</summary>
    public int StateSize => 3 * N;

    /// <inheritdoc/>
    public int InputSize => _c.InputSize;

    /// <summary>n: the output is h.</summary>
    public int OutputSize => N;

    /// <summary>6n: [g; i; W_ih x + b].</summary>
    public int ProjectionSize => 6 * N;

    /// <summary>The gates (4n).</summary>
    public int WorkspaceSize => 4 * N;

    /// <inheritdoc/>
    public int ParameterCount => Weights.ParameterCount;

    /// <inheritdoc/>
    public int BlockWorkspaceSize(int count) => 4 * N * count;

    /// <inheritdoc/>
    public int BackwardWorkspaceSize(int count) => count * (4 * N + 4 * N + 2 * N) + _c.ParameterCount + _c.BackwardScratch(count);

    /// <summary>[g; i; W_ih x + b] of every step by one matrix product straight into the projections, then σ and tanh on [g; i].</summary>
    public void ProjectInputs(ReadOnlySpan<T> inputs, Span<T> projections, int count)
    {
        int p = 6 * N;
        Kernels.Gemm<T>(inputs, _inputTransposed, projections[..(count * p)], count, InputSize, p, bias: _inputBias);
        _s.Activate(projections, count, p, 0);
    }

    /// <inheritdoc/>
    public void Evaluate(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> workspace)
    {
        Span<T> gates = workspace[..(4 * N)];
        _c.Hidden(state.Slice(N, N), gates);
        Step(state, projection, gates, next);
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void EvaluateBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> next, Span<T> jacobians, JacobianMode mode,
        Span<T> workspace, int count)
    {
        int n = N, s = 3 * n, p = 6 * n;
        Span<T> all = workspace[..(4 * n * count)];
        _c.Hidden(states[n..], all, count, s);
        for (int k = 0; k < count; k++)
        {
            ReadOnlySpan<T> state = states.Slice(k * s, s), proj = projections.Slice(k * p, p);
            Span<T> gates = all.Slice(k * 4 * n, 4 * n), nk = next.Slice(k * s, s);
            Step(state, proj, gates, nk);
            if (mode == JacobianMode.Diagonal)
            {
                Span<T> diag = jacobians.Slice(k * s, s);
                diag[..n].Clear();
                proj[..n].CopyTo(diag.Slice(n, n));
                gates.Slice(n, n).CopyTo(diag.Slice(2 * n, n));
            }
            else if (mode == JacobianMode.Full)
            {
                Jacobian(state, proj, gates, nk, jacobians.Slice(k * s * s, s * s));
            }
        }
    }

    /// <summary>From W_hh h~ in <paramref name="gates"/>: leaves i, f, z, o there and writes [h'; h~'; c'], a vector of units at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Step(ReadOnlySpan<T> state, ReadOnlySpan<T> proj, Span<T> gates, Span<T> next)
    {
        int n = N, v = Vector<T>.Count, j = 0;
        ref T h = ref MemoryMarshal.GetReference(state[..(3 * n)]);
        ref T p = ref MemoryMarshal.GetReference(proj[..(6 * n)]);
        ref T a = ref MemoryMarshal.GetReference(gates[..(4 * n)]);
        ref T o = ref MemoryMarshal.GetReference(next[..(3 * n)]);
        for (; j + v <= n; j += v)
        {
            Vector<T> g = Vector.LoadUnsafe(ref p, (nuint)j);
            ((g * Vector.LoadUnsafe(ref h, (nuint)(n + j))) + ((Vector<T>.One - g) * Vector.LoadUnsafe(ref p, (nuint)(n + j)))).StoreUnsafe(ref o, (nuint)(n + j));
            Vector<T> ig = Activations.Sigmoid(Vector.LoadUnsafe(ref p, (nuint)((2 * n) + j)) + Vector.LoadUnsafe(ref a, (nuint)j));
            Vector<T> fg = Activations.Sigmoid(Vector.LoadUnsafe(ref p, (nuint)((3 * n) + j)) + Vector.LoadUnsafe(ref a, (nuint)(n + j)));
            Vector<T> zg = Activations.Tanh(Vector.LoadUnsafe(ref p, (nuint)((4 * n) + j)) + Vector.LoadUnsafe(ref a, (nuint)((2 * n) + j)));
            Vector<T> og = Activations.Sigmoid(Vector.LoadUnsafe(ref p, (nuint)((5 * n) + j)) + Vector.LoadUnsafe(ref a, (nuint)((3 * n) + j)));
            ig.StoreUnsafe(ref a, (nuint)j);
            fg.StoreUnsafe(ref a, (nuint)(n + j));
            zg.StoreUnsafe(ref a, (nuint)((2 * n) + j));
            og.StoreUnsafe(ref a, (nuint)((3 * n) + j));
            Vector<T> c = (fg * Vector.LoadUnsafe(ref h, (nuint)((2 * n) + j))) + (ig * zg);
            c.StoreUnsafe(ref o, (nuint)((2 * n) + j));
            (og * c).StoreUnsafe(ref o, (nuint)j);
        }

        for (; j < n; j++)
        {
            T g = Unsafe.Add(ref p, j);
            Unsafe.Add(ref o, n + j) = (g * Unsafe.Add(ref h, n + j)) + ((T.One - g) * Unsafe.Add(ref p, n + j));
            T ig = Activations.Sigmoid(Unsafe.Add(ref p, (2 * n) + j) + Unsafe.Add(ref a, j));
            T fg = Activations.Sigmoid(Unsafe.Add(ref p, (3 * n) + j) + Unsafe.Add(ref a, n + j));
            T zg = Activations.Tanh(Unsafe.Add(ref p, (4 * n) + j) + Unsafe.Add(ref a, (2 * n) + j));
            T og = Activations.Sigmoid(Unsafe.Add(ref p, (5 * n) + j) + Unsafe.Add(ref a, (3 * n) + j));
            Unsafe.Add(ref a, j) = ig;
            Unsafe.Add(ref a, n + j) = fg;
            Unsafe.Add(ref a, (2 * n) + j) = zg;
            Unsafe.Add(ref a, (3 * n) + j) = og;
            T c = (fg * Unsafe.Add(ref h, (2 * n) + j)) + (ig * zg);
            Unsafe.Add(ref o, (2 * n) + j) = c;
            Unsafe.Add(ref o, j) = og * c;
        }
    }

    private void Jacobian(ReadOnlySpan<T> state, ReadOnlySpan<T> proj, ReadOnlySpan<T> gates, ReadOnlySpan<T> next, Span<T> jacobian)
    {
        int n = N, s = 3 * n;
        T[] w = _c.HiddenRows;
        jacobian[..(s * s)].Clear();
        for (int j = 0; j < n; j++)
        {
            T ig = gates[j], fg = gates[n + j], zg = gates[2 * n + j], og = gates[3 * n + j], c = next[2 * n + j];
            T ci = state[2 * n + j] * fg * (T.One - fg), zi = zg * ig * (T.One - ig), iz = ig * (T.One - zg * zg), co = c * og * (T.One - og);
            Span<T> hRow = jacobian.Slice(j * s, s), cRow = jacobian.Slice((2 * n + j) * s, s);
            for (int k = 0; k < n; k++)
            {
                T dc = ci * w[(n + j) * n + k] + zi * w[j * n + k] + iz * w[(2 * n + j) * n + k];
                cRow[n + k] = dc;
                hRow[n + k] = co * w[(3 * n + j) * n + k] + og * dc;
            }

            cRow[2 * n + j] = fg;
            hRow[2 * n + j] = og * fg;
            jacobian[(n + j) * s + n + j] = proj[j];
        }
    }

    /// <summary>
    /// With v = [v_h; v_h~; v_c]: ∂c' = v_c + v_h ⊙ o, ∂o = v_h ⊙ c', the gates' pre-activation gradients δ, and
    /// ∂h~_{t-1} = g ⊙ v_h~ + W_hhᵀ δ, ∂c_{t-1} = ∂c' ⊙ f; the surrogate's own gradient through g and i.
    /// </summary>
    public void BackwardBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, ReadOnlySpan<T> inputs, ReadOnlySpan<T> adjoints,
        Span<T> previousAdjoints, Span<T> inputAdjoints, Span<T> gradient, Span<T> workspace, int count)
    {
        int n = N, s = 3 * n, p = 6 * n;
        Span<T> all = workspace[..(4 * n * count)], delta = workspace.Slice(4 * n * count, 4 * n * count);
        Span<T> da = workspace.Slice(8 * n * count, 2 * n * count);
        Span<T> lstmGradient = workspace.Slice(10 * n * count, _c.ParameterCount);
        Span<T> scratch = workspace[(10 * n * count + _c.ParameterCount)..];
        var next = new T[s];
        _c.Hidden(states[n..], all, count, s);
        for (int k = 0; k < count; k++)
        {
            ReadOnlySpan<T> state = states.Slice(k * s, s), proj = projections.Slice(k * p, p), v = adjoints.Slice(k * s, s);
            Span<T> gates = all.Slice(k * 4 * n, 4 * n), dk = delta.Slice(k * 4 * n, 4 * n), previous = previousAdjoints.Slice(k * s, s);
            Step(state, proj, gates, next);
            for (int j = 0; j < n; j++)
            {
                T ig = gates[j], fg = gates[n + j], zg = gates[2 * n + j], og = gates[3 * n + j], c = next[2 * n + j];
                T dc = v[2 * n + j] + v[j] * og;
                dk[j] = dc * zg * ig * (T.One - ig);
                dk[n + j] = dc * state[2 * n + j] * fg * (T.One - fg);
                dk[2 * n + j] = dc * ig * (T.One - zg * zg);
                dk[3 * n + j] = v[j] * c * og * (T.One - og);
                T g = proj[j], i = proj[n + j], vs = v[n + j];
                previous[j] = T.Zero;
                previous[n + j] = g * vs;
                previous[2 * n + j] = dc * fg;
                da[k * 2 * n + j] = vs * (state[n + j] - i) * g * (T.One - g);
                da[k * 2 * n + n + j] = vs * (T.One - g) * (T.One - i * i);
            }
        }

        // The LSTM part: W_hh multiplies h~ (offset n in each row), and its single bias gets the gates' δ once.
        lstmGradient.Clear();
        _c.Backward(delta, delta, inputs, states[n..], s, previousAdjoints[n..], inputAdjoints, lstmGradient, scratch, count);
        AddLstmGradient(lstmGradient, gradient);
        _s.Backward(da, inputs, inputAdjoints, gradient[..Weights.Surrogate.ParameterCount], count, accumulateInputs: true);
    }

    /// <summary>
    /// h~'s and c's recurrences are diagonal, and the gates read h~_{t-1}, known one step ahead: on a CPU the scans, run
    /// in order, are the loop, so the trajectory is <see cref="Evaluate"/>'s step after step (each state f of the one
    /// before), with no [T, 4n] buffers for the gates and the scans' coefficients.
    /// </summary>
    public void SolveLinear(ReadOnlySpan<T> projections, ReadOnlySpan<T> initialState, Span<T> states, int length)
    {
        int s = 3 * N, p = 6 * N;
        ReadOnlySpan<T> previous = initialState.IsEmpty ? new T[s] : initialState[..s];
        var gates = new T[4 * N];
        for (int t = 0; t < length; t++)
        {
            Span<T> current = states.Slice(t * s, s);
            Evaluate(previous, projections.Slice(t * p, p), current, gates);
            previous = current;
        }
    }
}
