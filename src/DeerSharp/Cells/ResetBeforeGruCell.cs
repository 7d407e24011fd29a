namespace DeerSharp.Cells;

/// <summary>
/// The GRU with the reset gate applied before the recurrent product (Cho et al. 2014; ONNX's GRU with
/// linear_before_reset = 0, its default; Keras' reset_after = False): r = σ(W_ir x + b_ir + W_hr h + b_hr),
/// z = σ(W_iz x + b_iz + W_hz h + b_hz), n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn), h' = (1 − z) ⊙ n + z ⊙ h.
/// Weights in PyTorch's layout and gate order (r, z, n), as <see cref="GruCell{T}"/> takes them; only the place of r
/// differs (<see cref="GruCell{T}"/> is PyTorch's r ⊙ (W_hn h + b_hn)).
/// </summary>
/// <remarks>
/// The Jacobian: with a = (1 − z)(1 − n²), c = (h − n) z (1 − z) and q = h r (1 − r),
/// J = diag(a) (W_hn diag(r) + W_hn diag(q) W_hr) + diag(c) W_hz + diag(z). Its diagonal costs O(n²) per step, the full
/// Jacobian O(n³). On a device it runs as a compiled device recurrence (<see cref="ResetBeforeGruFunction"/>), whose
/// Jacobian the device takes by dual numbers. Gradients (<see cref="IDifferentiableCell{T}"/>) are not implemented.
/// </remarks>
public readonly struct ResetBeforeGruCell<T> : IRecurrentCell<T>, IConstructedCell, IDeviceFormSource<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    bool IConstructedCell.IsDefault => _input is null;

    private readonly RecurrentWeights<T> _w;
    private readonly InputProjection<T> _input;
    private readonly T[] _hidden;   // W_hh, [3n, n], rows r, z, n

    /// <summary>Wraps one layer's weights (G = 3, PyTorch's order r, z, n), taking a snapshot of them.</summary>
    public ResetBeforeGruCell(RecurrentWeights<T> weights)
    {
        LayerWeights.RequireGates(weights, weights?.Gates ?? 0, 3, "A GRU layer has 3 gate blocks (r, z, n)");
        _w = weights;
        int n = weights.HiddenSize;
        // Every bias lies outside the gates' products, b_hn included: all of b_hh folds into the input projection.
        _input = new InputProjection<T>(weights.WeightIH, weights.BiasIH, weights.BiasHH, 3 * n, weights.InputSize, foldedRows: 3 * n);
        _hidden = (T[])weights.WeightHH.Clone();
    }

    /// <summary>The layer's weights as given.</summary>
    public RecurrentWeights<T> Weights => _w;

    /// <summary>The device form: the same equations as a device recurrence, θ = [W_hh; the projection's bias folded in; W_ih].</summary>
    DeviceCell<T>? IDeviceFormSource<T>.DeviceForm()
    {
        var function = new ResetBeforeGruFunction(HiddenSize, InputSize);
        return DeviceCell<T>.Custom(new DeviceRecurrence<ResetBeforeGruFunction>(function), HiddenSize, InputSize,
            [.. _hidden, .. _input.ProjectionBias, .. _input.InputRows]);
    }

    private int HiddenSize => _w.HiddenSize;

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

    /// <inheritdoc/>
    public int BlockWorkspaceSize(int count) => (6 * _w.HiddenSize) + (_w.HiddenSize * _w.HiddenSize);

    /// <inheritdoc/>
    public void ProjectInputs(ReadOnlySpan<T> inputs, Span<T> projections, int count) => _input.Project(inputs, projections, count);

    /// <inheritdoc/>
    public void Evaluate(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> workspace) =>
        Step(state, projection, next, workspace, out _, out _, out _);

    /// <summary>One step; r, z and n are left in the workspace (its first 3n values) for the Jacobian.</summary>
    private void Step(ReadOnlySpan<T> h, ReadOnlySpan<T> xp, Span<T> next, Span<T> workspace, out Span<T> r, out Span<T> z, out Span<T> candidate)
    {
        int n = HiddenSize;
        ReadOnlySpan<T> weights = _hidden;
        r = workspace[..n];
        z = workspace.Slice(n, n);
        candidate = workspace.Slice(2 * n, n);
        Span<T> gated = workspace.Slice(3 * n, n);
        for (int i = 0; i < n; i++)
        {
            r[i] = Activations.Sigmoid(xp[i] + Linear.Dot(weights.Slice(i * n, n), h));
            z[i] = Activations.Sigmoid(xp[n + i] + Linear.Dot(weights.Slice((n + i) * n, n), h));
            gated[i] = r[i] * h[i];
        }

        for (int i = 0; i < n; i++)
        {
            candidate[i] = Activations.Tanh(xp[(2 * n) + i] + Linear.Dot(weights.Slice(((2 * n) + i) * n, n), gated));
            next[i] = ((T.One - z[i]) * candidate[i]) + (z[i] * h[i]);
        }
    }

    /// <inheritdoc/>
    public void EvaluateBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> next, Span<T> jacobians, JacobianMode mode,
        Span<T> workspace, int count)
    {
        int n = HiddenSize;
        ReadOnlySpan<T> weights = _hidden;
        Span<T> q = workspace.Slice(4 * n, n), a = workspace.Slice(5 * n, n), product = workspace.Slice(6 * n, n * n);
        for (int k = 0; k < count; k++)
        {
            ReadOnlySpan<T> h = states.Slice(k * n, n);
            Span<T> f = next.Slice(k * n, n);
            Step(h, projections.Slice(k * 3 * n, 3 * n), f, workspace, out Span<T> r, out Span<T> z, out Span<T> candidate);
            if (mode == JacobianMode.None)
            {
                continue;
            }

            for (int i = 0; i < n; i++)
            {
                q[i] = h[i] * r[i] * (T.One - r[i]);
                a[i] = (T.One - z[i]) * (T.One - (candidate[i] * candidate[i]));
            }

            if (mode == JacobianMode.Diagonal)
            {
                Span<T> d = jacobians.Slice(k * n, n);
                for (int i = 0; i < n; i++)
                {
                    // (W_hn diag(q) W_hr)_ii = Σ_j W_hn[i, j] q_j W_hr[j, i].
                    T through = T.Zero;
                    for (int j = 0; j < n; j++)
                    {
                        through += weights[(((2 * n) + i) * n) + j] * q[j] * weights[(j * n) + i];
                    }

                    T c = (h[i] - candidate[i]) * z[i] * (T.One - z[i]);
                    d[i] = (a[i] * ((weights[(((2 * n) + i) * n) + i] * r[i]) + through)) + (c * weights[((n + i) * n) + i]) + z[i];
                }

                continue;
            }

            if (mode != JacobianMode.Full)
            {
                throw new NotSupportedException($"{nameof(ResetBeforeGruCell<T>)} has a dense Jacobian: JacobianMode.{mode} does not apply.");
            }

            // product = W_hn diag(q) W_hr, row by row.
            Span<T> jac = jacobians.Slice(k * n * n, n * n);
            product.Clear();
            for (int i = 0; i < n; i++)
            {
                Span<T> row = product.Slice(i * n, n);
                for (int j = 0; j < n; j++)
                {
                    T scale = weights[(((2 * n) + i) * n) + j] * q[j];
                    ReadOnlySpan<T> rRow = weights.Slice(j * n, n);
                    for (int c = 0; c < n; c++)
                    {
                        row[c] += scale * rRow[c];
                    }
                }
            }

            for (int i = 0; i < n; i++)
            {
                T c = (h[i] - candidate[i]) * z[i] * (T.One - z[i]);
                for (int j = 0; j < n; j++)
                {
                    jac[(i * n) + j] = (a[i] * ((weights[(((2 * n) + i) * n) + j] * r[j]) + product[(i * n) + j])) + (c * weights[((n + i) * n) + j])
                        + (i == j ? z[i] : T.Zero);
                }
            }
        }
    }
}

/// <summary>
/// <see cref="ResetBeforeGruCell{T}"/>'s equations written one unit at a time, for the device: θ = [W_hh (3n × n), the
/// projection bias (3n, b_ih + b_hh), W_ih (3n × d)]. Public so that ILGPU's generated launcher can name it.
/// </summary>
/// <param name="hiddenSize">n.</param>
/// <param name="inputSize">d.</param>
public readonly struct ResetBeforeGruFunction(int hiddenSize, int inputSize) : IDeviceRecurrence
{
    /// <inheritdoc/>
    public int StateSize => hiddenSize;

    /// <inheritdoc/>
    public int InputSize => inputSize;

    /// <inheritdoc/>
    public int ParameterCount => (3 * hiddenSize * hiddenSize) + (3 * hiddenSize) + (3 * hiddenSize * inputSize);

    /// <inheritdoc/>
    public TNum Apply<TNum, TVector>(int unit, TVector state, TVector input, TVector parameters)
        where TNum : IFloatingPointIeee754<TNum>
        where TVector : IReadOnlyVector<TNum>, allows ref struct
    {
        int n = hiddenSize, d = inputSize, bias = 3 * n * n, w = bias + (3 * n);
        TNum candidate = Projection<TNum, TVector>((2 * n) + unit, input, parameters, bias, w, d);
        for (int j = 0; j < n; j++)
        {
            TNum r = Sigmoid(Projection<TNum, TVector>(j, input, parameters, bias, w, d) + Row<TNum, TVector>(j, state, parameters, n));
            candidate += parameters[(((2 * n) + unit) * n) + j] * r * state[j];
        }

        TNum z = Sigmoid(Projection<TNum, TVector>(n + unit, input, parameters, bias, w, d) + Row<TNum, TVector>(n + unit, state, parameters, n));
        return ((TNum.One - z) * TNum.Tanh(candidate)) + (z * state[unit]);
    }

    private static TNum Sigmoid<TNum>(TNum x)
        where TNum : IFloatingPointIeee754<TNum> => TNum.One / (TNum.One + TNum.Exp(-x));

    /// <summary>Row <paramref name="row"/> of W_ih x plus its bias.</summary>
    private static TNum Projection<TNum, TVector>(int row, TVector input, TVector parameters, int bias, int w, int d)
        where TNum : IFloatingPointIeee754<TNum>
        where TVector : IReadOnlyVector<TNum>, allows ref struct
    {
        TNum sum = parameters[bias + row];
        for (int j = 0; j < d; j++)
        {
            sum += parameters[w + (row * d) + j] * input[j];
        }

        return sum;
    }

    /// <summary>Row <paramref name="row"/> of W_hh h.</summary>
    private static TNum Row<TNum, TVector>(int row, TVector state, TVector parameters, int n)
        where TNum : IFloatingPointIeee754<TNum>
        where TVector : IReadOnlyVector<TNum>, allows ref struct
    {
        TNum sum = TNum.Zero;
        for (int j = 0; j < n; j++)
        {
            sum += parameters[(row * n) + j] * state[j];
        }

        return sum;
    }
}
