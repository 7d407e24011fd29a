using System.Numerics.Tensors;

namespace DeerSharp.Ode;

/// <summary>
/// A neural vector field dy/dt = MLP([y; x]): linear layers with an activation between consecutive ones, as a PyTorch
/// <c>nn.Sequential(nn.Linear, act, nn.Linear, act, …, nn.Linear)</c>. Its Jacobian and vector-Jacobian products are
/// analytic (no AD).
/// </summary>
/// <remarks>
/// <para>
/// The first layer reads n + m values: the state y, then the input x(t) if the field has one (pass t itself as an input
/// channel for a time-dependent field). The last layer writes n values.
/// </para>
/// <para>
/// θ is every layer's weight (row-major [out, in]) then its bias, layer by layer: the order of PyTorch's
/// <c>parameters()</c>. <see cref="Parameters"/> exposes them; the field shares its arrays with its copies, so change
/// them only between solves.
/// </para>
/// </remarks>
public readonly partial struct MlpField<T> : IOdeField<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T[] _parameters;
    private readonly int[] _widths;
    private readonly int[] _weightOffsets;
    private readonly int[] _biasOffsets;
    private readonly MlpActivation _activation;
    private readonly int _n;
    private readonly int _m;
    private readonly int _maxWidth;
    private readonly int _workspaceSize;
    private readonly int _hiddenTotal;

    /// <summary>Builds an MLP field from its layer widths and parameters θ (copied).</summary>
    /// <param name="widths">Every layer's width, input first and output last: [n + m, h1, …, n]. At least two entries.</param>
    /// <param name="inputSize">m, the dimension of the input x(t) (0 for none); widths[0] must be n + m.</param>
    /// <param name="activation">The nonlinearity between layers.</param>
    /// <param name="parameters">θ: each layer's weight [out, in] then bias [out]; empty for a fresh zero field.</param>
    /// <param name="biases">Whether the layers have biases (all or none).</param>
    public MlpField(ReadOnlySpan<int> widths, int inputSize, MlpActivation activation, ReadOnlySpan<T> parameters, bool biases = true)
    {
        if (widths.Length < 2)
        {
            throw new ArgumentException($"widths needs at least an input and an output width; it has {widths.Length} entries.", nameof(widths));
        }

        foreach (int w in widths)
        {
            if (w < 1)
            {
                throw new ArgumentException($"every width must be at least 1; widths is [{string.Join(", ", widths.ToArray())}].", nameof(widths));
            }
        }

        if (!Enum.IsDefined(activation))
        {
            throw new ArgumentOutOfRangeException(nameof(activation), activation, "not an MlpActivation.");
        }

        _widths = widths.ToArray();
        _n = _widths[^1];
        _m = inputSize;
        if (inputSize < 0 || _widths[0] != _n + inputSize)
        {
            throw new ArgumentException(
                $"the first layer reads [y; x], so widths[0] must be n + m = {_n} + {inputSize}; it is {_widths[0]}.", nameof(inputSize));
        }

        int layers = _widths.Length - 1;
        _weightOffsets = new int[layers];
        _biasOffsets = new int[layers];
        int count = 0;
        for (int l = 0; l < layers; l++)
        {
            _weightOffsets[l] = count;
            count += _widths[l + 1] * _widths[l];
            _biasOffsets[l] = biases ? count : -1;
            count += biases ? _widths[l + 1] : 0;
        }

        if (parameters.Length != 0)
        {
            Require.Length(parameters, count, nameof(parameters), $"[{count}] (every layer's weight then bias)");
            Require.Finite(parameters, nameof(parameters));
        }

        _parameters = new T[count];
        parameters.CopyTo(_parameters);
        _activation = activation;
        _maxWidth = _widths.Max();
        int hidden = 0;
        for (int l = 1; l < layers; l++)
        {
            hidden += _widths[l];
        }

        // a_0; z and σ(z) for each hidden layer; two Jacobian panels; two cotangent vectors; an n×n Jacobian.
        _hiddenTotal = hidden;
        _workspaceSize = _widths[0] + 2 * hidden + 2 * _maxWidth * _n + 2 * _maxWidth + _n * _n;
    }

    /// <summary>A field with PyTorch's default initialisation: every weight and bias uniform in ±1/√(fan-in).</summary>
    public static MlpField<T> Random(ReadOnlySpan<int> widths, int inputSize, MlpActivation activation, Random random, bool biases = true)
    {
        ArgumentNullException.ThrowIfNull(random);
        var field = new MlpField<T>(widths, inputSize, activation, ReadOnlySpan<T>.Empty, biases);
        for (int l = 0; l < field.Layers; l++)
        {
            double bound = 1 / Math.Sqrt(field._widths[l]);
            int size = field._widths[l + 1] * field._widths[l] + (biases ? field._widths[l + 1] : 0);
            for (int i = 0; i < size; i++)
            {
                field._parameters[field._weightOffsets[l] + i] = T.CreateChecked((2 * random.NextDouble() - 1) * bound);
            }
        }

        return field;
    }

    /// <inheritdoc/>
    public void Evaluate(ReadOnlySpan<T> y, T t, ReadOnlySpan<T> x, Span<T> dydt, Span<T> workspace) => Forward(y, x, dydt, workspace);

    /// <inheritdoc/>
    public void EvaluateJacobian(ReadOnlySpan<T> y, T t, ReadOnlySpan<T> x, Span<T> dydt, Span<T> jacobian, Span<T> workspace)
    {
        Forward(y, x, dydt, workspace);
        Jacobian(jacobian, workspace);
    }

    /// <inheritdoc/>
    public void EvaluateJacobianDiagonal(ReadOnlySpan<T> y, T t, ReadOnlySpan<T> x, Span<T> dydt, Span<T> diagonal, Span<T> workspace)
    {
        Forward(y, x, dydt, workspace);
        Span<T> full = workspace.Slice(_workspaceSize - _n * _n, _n * _n);
        Jacobian(full, workspace);
        for (int i = 0; i < _n; i++)
        {
            diagonal[i] = full[i * _n + i];
        }
    }

    /// <inheritdoc/>
    public void Backward(ReadOnlySpan<T> y, T t, ReadOnlySpan<T> x, ReadOnlySpan<T> v, Span<T> stateAdjoint, Span<T> parameterGradient,
        Span<T> workspace)
    {
        Span<T> output = workspace.Slice(_workspaceSize - _n * _n, _n);
        Forward(y, x, output, workspace);
        int cot = _widths[0] + 2 * _hiddenTotal + 2 * _maxWidth * _n;
        Span<T> g = workspace.Slice(cot, _maxWidth), next = workspace.Slice(cot + _maxWidth, _maxWidth);
        v[.._n].CopyTo(g);
        for (int l = Layers - 1; l >= 0; l--)
        {
            int rows = _widths[l + 1], cols = _widths[l];
            ReadOnlySpan<T> input = LayerInput(workspace, l);
            ReadOnlySpan<T> gl = g[..rows];
            ReadOnlySpan<T> weight = _parameters.AsSpan(_weightOffsets[l], rows * cols);
            Span<T> dWeight = parameterGradient.Slice(_weightOffsets[l], rows * cols);
            Span<T> gin = next[..cols];
            gin.Clear();
            for (int r = 0; r < rows; r++)
            {
                TensorPrimitives.MultiplyAdd(input, gl[r], dWeight.Slice(r * cols, cols), dWeight.Slice(r * cols, cols));
                TensorPrimitives.MultiplyAdd(weight.Slice(r * cols, cols), gl[r], gin, gin);
            }

            if (_biasOffsets[l] >= 0)
            {
                Span<T> dBias = parameterGradient.Slice(_biasOffsets[l], rows);
                TensorPrimitives.Add(dBias, gl, dBias);
            }

            if (l == 0)
            {
                gin[.._n].CopyTo(stateAdjoint);
                return;
            }

            ReadOnlySpan<T> z = PreActivation(workspace, l - 1);
            for (int i = 0; i < cols; i++)
            {
                g[i] = gin[i] * Slope(z[i]);
            }
        }
    }

    /// <summary>The pre-activation z of hidden layer k (k = 0 is the first linear layer's output).</summary>
    private Span<T> PreActivation(Span<T> workspace, int k)
    {
        int offset = _widths[0];
        for (int j = 0; j < k; j++)
        {
            offset += 2 * _widths[j + 1];
        }

        return workspace.Slice(offset, _widths[k + 1]);
    }

    /// <summary>What linear layer l reads: [y; x] for l = 0, else σ(z) of hidden layer l − 1.</summary>
    private Span<T> LayerInput(Span<T> workspace, int l)
    {
        if (l == 0)
        {
            return workspace[.._widths[0]];
        }

        int offset = _widths[0];
        for (int j = 0; j < l - 1; j++)
        {
            offset += 2 * _widths[j + 1];
        }

        return workspace.Slice(offset + _widths[l], _widths[l]);
    }

    private void Forward(ReadOnlySpan<T> y, ReadOnlySpan<T> x, Span<T> output, Span<T> workspace)
    {
        Span<T> a0 = workspace[.._widths[0]];
        y[.._n].CopyTo(a0);
        x[.._m].CopyTo(a0[_n..]);
        for (int l = 0; l < Layers; l++)
        {
            int rows = _widths[l + 1], cols = _widths[l];
            ReadOnlySpan<T> input = LayerInput(workspace, l);
            Span<T> z = l == Layers - 1 ? output[..rows] : PreActivation(workspace, l);
            Linear.MatVec(_parameters.AsSpan(_weightOffsets[l], rows * cols), input, z);
            if (_biasOffsets[l] >= 0)
            {
                TensorPrimitives.Add(z, _parameters.AsSpan(_biasOffsets[l], rows), z);
            }

            if (l < Layers - 1)
            {
                Activate(z, LayerInput(workspace, l + 1));
            }
        }
    }

    /// <summary>∂f/∂y = W_L D_{L−1} W_{L−1} ⋯ D_1 W_1[:, :n], after <see cref="Forward"/> filled the pre-activations.</summary>
    private void Jacobian(Span<T> jacobian, Span<T> workspace)
    {
        // The panel is kept transposed, Pᵀ [n, width] with row stride maxWidth, so every product is a unit-stride dot
        // product over a layer's width rather than n-long updates.
        int n = _n, w = _maxWidth, panelAt = _widths[0] + 2 * _hiddenTotal;
        Span<T> p = workspace.Slice(panelAt, w * n), q = workspace.Slice(panelAt + w * n, w * n);
        Span<T> slopes = workspace.Slice(panelAt + 2 * w * n, w);
        int rows0 = _widths[1], cols0 = _widths[0];
        ReadOnlySpan<T> w0 = _parameters.AsSpan(_weightOffsets[0], rows0 * cols0);
        if (Layers == 1)
        {
            for (int r = 0; r < rows0; r++)
            {
                w0.Slice(r * cols0, n).CopyTo(jacobian.Slice(r * n, n));
            }

            return;
        }

        for (int r = 0; r < rows0; r++)
        {
            for (int c = 0; c < n; c++)
            {
                p[c * w + r] = w0[r * cols0 + c];
            }
        }

        for (int l = 1; l < Layers; l++)
        {
            int rows = _widths[l + 1], cols = _widths[l];
            ReadOnlySpan<T> z = PreActivation(workspace, l - 1);
            for (int k = 0; k < cols; k++)
            {
                slopes[k] = Slope(z[k]);
            }

            ReadOnlySpan<T> weights = _parameters.AsSpan(_weightOffsets[l], rows * cols);
            bool last = l == Layers - 1;
            for (int c = 0; c < n; c++)
            {
                Span<T> column = p.Slice(c * w, cols);
                TensorPrimitives.Multiply(column, slopes[..cols], column);
                for (int r = 0; r < rows; r++)
                {
                    T dot = TensorPrimitives.Dot(weights.Slice(r * cols, cols), column);
                    if (last)
                    {
                        jacobian[r * n + c] = dot;
                    }
                    else
                    {
                        q[c * w + r] = dot;
                    }
                }
            }

            if (!last)
            {
                Span<T> swap = p;
                p = q;
                q = swap;
            }
        }
    }

    private void Activate(ReadOnlySpan<T> z, Span<T> a)
    {
        switch (_activation)
        {
            case MlpActivation.Tanh:
                TensorPrimitives.Tanh(z, a);
                break;
            case MlpActivation.Softplus:
                for (int i = 0; i < z.Length; i++)
                {
                    // log(1 + eᶻ) without overflow: max(z, 0) + log1p(e^{−|z|}).
                    a[i] = T.Max(z[i], T.Zero) + T.LogP1(T.Exp(-T.Abs(z[i])));
                }

                break;
            default:
                TensorPrimitives.Max(z, T.Zero, a);
                break;
        }
    }

    private T Slope(T z)
    {
        switch (_activation)
        {
            case MlpActivation.Tanh:
                T th = T.Tanh(z);
                return T.One - th * th;
            case MlpActivation.Softplus:
                return T.One / (T.One + T.Exp(-z));
            default:
                return z > T.Zero ? T.One : T.Zero;
        }
    }
}
