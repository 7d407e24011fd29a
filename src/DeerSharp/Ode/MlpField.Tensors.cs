using System.Globalization;
using DeerSharp.IO;

namespace DeerSharp.Ode;

// Reading and writing the field's parameters as named tensors (PyTorch's nn.Sequential state dict).
public readonly partial struct MlpField<T>
{
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
}
