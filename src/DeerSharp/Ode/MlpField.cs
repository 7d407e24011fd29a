using System.Globalization;
using System.Numerics;
using System.Numerics.Tensors;
using DeerSharp.IO;

namespace DeerSharp.Ode;

/// <summary>The nonlinearity between the linear layers of an <see cref="MlpField{T}"/>.</summary>
public enum MlpActivation
{
    /// <summary>tanh (nn.Tanh).</summary>
    Tanh,

    /// <summary>softplus, log(1 + eˣ) (nn.Softplus with beta 1).</summary>
    Softplus,

    /// <summary>max(0, x) (nn.ReLU); its derivative is taken as 0 at 0. Newton's quadratic convergence needs a smooth field.</summary>
    Relu,
}

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
public readonly struct MlpField<T> : IOdeField<T>
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

    /// <summary>
    /// Reads a PyTorch nn.Sequential MLP from a safetensors state_dict: keys <c>{prefix}0.weight</c>, <c>0.bias</c>,
    /// <c>2.weight</c>, … (the activations sit at the odd indices and have no tensors).
    /// </summary>
    /// <param name="file">The safetensors file.</param>
    /// <param name="activation">The activation the module used between its linear layers.</param>
    /// <param name="inputSize">m: how many of the first layer's inputs are the input x(t) rather than y.</param>
    /// <param name="prefix">Prepended to every key, for an MLP saved inside a larger model (e.g. "func.net.").</param>
    /// <exception cref="TensorFormatException">A key is missing, mis-shaped, stray, or holds NaN or infinity.</exception>
    public static MlpField<T> Load(SafetensorsFile file, MlpActivation activation, int inputSize = 0, string prefix = "")
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(prefix);
        string Key(int index, string name) => string.Create(CultureInfo.InvariantCulture, $"{prefix}{index}.{name}");
        if (!file.Contains(Key(0, "weight")))
        {
            string near = string.Join(", ", file.Keys.Where(k => k.EndsWith(".weight", StringComparison.Ordinal)).Take(4).Select(k => $"'{k}'"));
            throw new TensorFormatException(
                $"no tensor '{Key(0, "weight")}': not an nn.Sequential MLP state_dict{(prefix.Length > 0 ? $" under prefix '{prefix}'" : "")}"
                + (near.Length > 0 ? $" (keys like {near} exist: check the prefix)" : ""));
        }

        var widths = new List<int>();
        var values = new List<T>();
        bool biases = file.Contains(Key(0, "bias"));
        int index = 0;
        for (; file.Contains(Key(index, "weight")); index += 2)
        {
            T[] weight = TorchRecurrentWeights.Read<T>(file, Key(index, "weight"), out IReadOnlyList<int> shape);
            if (shape.Count != 2 || (widths.Count > 0 && shape[1] != widths[^1]))
            {
                string expected = widths.Count > 0 ? $"[out, {widths[^1]}] (it reads layer {index - 2}'s {widths[^1]} outputs)" : "[out, in]";
                throw TorchRecurrentWeights.Shape(Key(index, "weight"), expected, shape);
            }

            if (widths.Count == 0)
            {
                widths.Add(shape[1]);
            }

            widths.Add(shape[0]);
            values.AddRange(weight);
            if (file.Contains(Key(index, "bias")) != biases)
            {
                throw new TensorFormatException(
                    $"'{Key(0, "bias")}' is {(biases ? "present" : "absent")} but '{Key(index, "bias")}' is {(biases ? "absent" : "present")}: all layers need biases or none.");
            }

            if (biases)
            {
                T[] bias = TorchRecurrentWeights.Read<T>(file, Key(index, "bias"), out IReadOnlyList<int> biasShape);
                if (biasShape.Count != 1 || biasShape[0] != shape[0])
                {
                    throw TorchRecurrentWeights.Shape(Key(index, "bias"), $"[{shape[0]}]", biasShape);
                }

                values.AddRange(bias);
            }
        }

        foreach (string key in file.Keys)
        {
            if (key.StartsWith(prefix, StringComparison.Ordinal)
                && int.TryParse(key.AsSpan(prefix.Length, Math.Max(0, key.IndexOf('.', prefix.Length) - prefix.Length)), NumberStyles.None,
                    CultureInfo.InvariantCulture, out int at)
                && (at >= index || at % 2 == 1))
            {
                throw new TensorFormatException(
                    $"tensor '{key}' does not fit an MLP whose linear layers sit at 0, 2, …, {index - 2}: "
                    + (at % 2 == 1 ? "the odd indices hold the activations, which have no tensors." : "the layers must be consecutive."));
            }
        }

        int n = widths[^1];
        if (widths[0] != n + inputSize)
        {
            throw new TensorFormatException(
                $"'{Key(0, "weight")}' reads {widths[0]} values but the field's state has {n} (the last layer's output) and its input {inputSize}: "
                + $"the first layer must read n + m = {n + inputSize}.");
        }

        return new MlpField<T>(widths.ToArray(), inputSize, activation, values.ToArray(), biases);
    }

    /// <summary>The tensors of a PyTorch nn.Sequential state_dict for this field (keys 0.weight, 0.bias, 2.weight, …).</summary>
    public Dictionary<string, TensorData> ToTensors(string prefix = "")
    {
        var tensors = new Dictionary<string, TensorData>();
        for (int l = 0; l < Layers; l++)
        {
            int rows = _widths[l + 1], cols = _widths[l];
            tensors[string.Create(CultureInfo.InvariantCulture, $"{prefix}{2 * l}.weight")] =
                TensorData.From(_parameters.AsSpan(_weightOffsets[l], rows * cols).ToArray(), rows, cols);
            if (_biasOffsets[l] >= 0)
            {
                tensors[string.Create(CultureInfo.InvariantCulture, $"{prefix}{2 * l}.bias")] =
                    TensorData.From(_parameters.AsSpan(_biasOffsets[l], rows).ToArray(), rows);
            }
        }

        return tensors;
    }

    /// <summary>The number of linear layers.</summary>
    public int Layers => _widths.Length - 1;

    /// <summary>Every layer's width, input first: [n + m, h1, …, n].</summary>
    public ReadOnlySpan<int> Widths => _widths;

    /// <summary>The activation between layers.</summary>
    public MlpActivation Activation => _activation;

    /// <summary>θ, writable: each layer's weight then bias. Shared with every copy of this field; change it only between solves.</summary>
    public Span<T> Parameters => _parameters;

    /// <inheritdoc/>
    public int StateSize => _n;

    /// <inheritdoc/>
    public int InputSize => _m;

    /// <inheritdoc/>
    public int ParameterCount => _parameters.Length;

    /// <inheritdoc/>
    public int WorkspaceSize => _workspaceSize;

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
