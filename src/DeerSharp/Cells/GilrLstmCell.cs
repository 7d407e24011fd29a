using System.Runtime.CompilerServices;
using DeerSharp.Scan;

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
public readonly struct GilrLstmCell<T> : ILinearSurrogateCell<T>, IConstructedCell, IDeviceFormSource<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    bool IConstructedCell.IsDefault => _c is null;

    private readonly GilrProjection<T> _s;
    private readonly CellWeights<T> _c;

    /// <summary>Wraps the weights (a snapshot of them).</summary>
    public GilrLstmCell(GilrLstmWeights<T> weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        Weights = weights;
        _s = new GilrProjection<T>(weights.Surrogate);
        _c = new CellWeights<T>(new RecurrentWeights<T>(4, weights.HiddenSize, weights.InputSize, weights.WeightIH, weights.WeightHH, weights.Bias), foldedGates: 4);
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
    public int BackwardWorkspaceSize(int count) => count * (4 * N + 4 * N + 2 * N) + _c.ParameterCount + _c.BackwardScratch(count) + _s.BackwardScratch(count);

    /// <inheritdoc/>
    public void ProjectInputs(ReadOnlySpan<T> inputs, Span<T> projections, int count)
    {
        int n = N, p = 6 * n;
        _s.Project(inputs, projections, count, p, 0);
        var lstm = new T[count * 4 * n];
        _c.Project(inputs, lstm, count);
        for (int t = 0; t < count; t++)
        {
            lstm.AsSpan(t * 4 * n, 4 * n).CopyTo(projections.Slice(t * p + 2 * n, 4 * n));
        }
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

    /// <summary>From W_hh h~ in <paramref name="gates"/>: leaves i, f, z, o there and writes [h'; h~'; c'].</summary>
    private void Step(ReadOnlySpan<T> state, ReadOnlySpan<T> proj, Span<T> gates, Span<T> next)
    {
        int n = N;
        for (int j = 0; j < n; j++)
        {
            T g = proj[j];
            next[n + j] = g * state[n + j] + (T.One - g) * proj[n + j];
            T ig = Activations.Sigmoid(proj[2 * n + j] + gates[j]);
            T fg = Activations.Sigmoid(proj[3 * n + j] + gates[n + j]);
            T zg = Activations.Tanh(proj[4 * n + j] + gates[2 * n + j]);
            T og = Activations.Sigmoid(proj[5 * n + j] + gates[3 * n + j]);
            gates[j] = ig;
            gates[n + j] = fg;
            gates[2 * n + j] = zg;
            gates[3 * n + j] = og;
            T c = fg * state[2 * n + j] + ig * zg;
            next[2 * n + j] = c;
            next[j] = og * c;
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
        int surrogate = Weights.Surrogate.ParameterCount, rows = 4 * n, d = _c.InputSize;
        Span<T> own = gradient[surrogate..];
        for (int i = 0; i < rows * (d + n); i++)
        {
            own[i] += lstmGradient[i];
        }

        for (int i = 0; i < rows; i++)
        {
            own[rows * (d + n) + i] += lstmGradient[rows * (d + n) + i];
        }

        _s.Backward(da, inputs, inputAdjoints, gradient[..surrogate], scratch, count, accumulateInputs: true);
    }

    /// <summary>One scan for h~, the gates of every step at once (one GEMM), one scan for c, then h = o ⊙ c.</summary>
    public void SolveLinear(ReadOnlySpan<T> projections, ReadOnlySpan<T> initialState, Span<T> states, int length)
    {
        int n = N, s = 3 * n, p = 6 * n;
        var a = new T[length * n];
        var b = new T[length * n];
        var surrogate = new T[length * n];
        T[] h0 = initialState.IsEmpty ? new T[s] : initialState.ToArray();
        for (int t = 0; t < length; t++)
        {
            for (int j = 0; j < n; j++)
            {
                T g = projections[t * p + j];
                a[t * n + j] = g;
                b[t * n + j] = (T.One - g) * projections[t * p + n + j];
            }
        }

        LinearRecurrence.SolveDiagonalSequential<T>(a, b, h0.AsSpan(n, n), surrogate, n);

        // Gates from h~_{t-1} for every step: h~_{-1} is the initial state's.
        var previous = new T[length * n];
        h0.AsSpan(n, n).CopyTo(previous);
        surrogate.AsSpan(0, (length - 1) * n).CopyTo(previous.AsSpan(n));
        var gates = new T[length * 4 * n];
        _c.Hidden(previous, gates, length, n);
        for (int t = 0; t < length; t++)
        {
            for (int j = 0; j < n; j++)
            {
                int q = t * 4 * n;
                T ig = Activations.Sigmoid(projections[t * p + 2 * n + j] + gates[q + j]);
                T fg = Activations.Sigmoid(projections[t * p + 3 * n + j] + gates[q + n + j]);
                T zg = Activations.Tanh(projections[t * p + 4 * n + j] + gates[q + 2 * n + j]);
                gates[q + 3 * n + j] = Activations.Sigmoid(projections[t * p + 5 * n + j] + gates[q + 3 * n + j]);
                a[t * n + j] = fg;
                b[t * n + j] = ig * zg;
            }
        }

        var c = new T[length * n];
        LinearRecurrence.SolveDiagonalSequential<T>(a, b, h0.AsSpan(2 * n, n), c, n);
        for (int t = 0; t < length; t++)
        {
            for (int j = 0; j < n; j++)
            {
                states[t * s + j] = gates[t * 4 * n + 3 * n + j] * c[t * n + j];
                states[t * s + n + j] = surrogate[t * n + j];
                states[t * s + 2 * n + j] = c[t * n + j];
            }
        }
    }
}
