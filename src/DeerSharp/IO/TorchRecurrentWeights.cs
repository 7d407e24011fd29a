using System.Globalization;

namespace DeerSharp.IO;

/// <summary>The PyTorch recurrent modules whose state_dicts Deer reads.</summary>
public enum RecurrentKind
{
    /// <summary>nn.RNN with nonlinearity='tanh' (1 gate block).</summary>
    TanhRnn,

    /// <summary>nn.GRU (3 gate blocks: r, z, n).</summary>
    Gru,

    /// <summary>nn.LSTM without proj_size (4 gate blocks: i, f, g, o).</summary>
    Lstm,
}

/// <summary>
/// Reads the layers of a PyTorch nn.RNN / nn.GRU / nn.LSTM state_dict saved as safetensors: keys
/// <c>{prefix}weight_ih_l{k}</c>, <c>weight_hh_l{k}</c> and, unless the module has bias=False, <c>bias_ih_l{k}</c> and
/// <c>bias_hh_l{k}</c>, for k = 0, 1, ... (num_layers).
/// </summary>
public static class TorchRecurrentWeights
{
    /// <summary>The number of gate blocks of <paramref name="kind"/>.</summary>
    public static int Gates(RecurrentKind kind) => kind switch
    {
        RecurrentKind.TanhRnn => 1,
        RecurrentKind.Gru => 3,
        RecurrentKind.Lstm => 4,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown recurrent kind."),
    };

    /// <summary>Reads every layer, bottom first, validating shapes and values key by key.</summary>
    /// <param name="file">The safetensors file.</param>
    /// <param name="kind">The module type.</param>
    /// <param name="prefix">Prepended to every key, for a module saved inside a larger model (e.g. "encoder.rnn.").</param>
    /// <exception cref="TensorFormatException">A key is missing, mis-shaped, of a non-float dtype, or holds NaN or infinity.</exception>
    public static RecurrentWeights<T>[] Load<T>(SafetensorsFile file, RecurrentKind kind, string prefix = "")
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(prefix);
        int gates = Gates(kind);
        string Key(string name, int k) => string.Create(CultureInfo.InvariantCulture, $"{prefix}{name}_l{k}");

        if (!file.Contains(Key("weight_ih", 0)))
        {
            string near = string.Join(", ", file.Keys.Where(k => k.Contains("weight_ih", StringComparison.Ordinal)).Take(4).Select(k => $"'{k}'"));
            throw new TensorFormatException(
                $"no tensor '{Key("weight_ih", 0)}': not a PyTorch {kind} state_dict{(prefix.Length > 0 ? $" under prefix '{prefix}'" : "")}"
                + (near.Length > 0 ? $" (keys like {near} exist: check the prefix)" : ""));
        }

        if (file.Contains(Key("weight_ih", 0) + "_reverse"))
        {
            throw new TensorFormatException($"'{Key("weight_ih", 0)}_reverse' is present: bidirectional modules are not supported.");
        }

        if (file.Contains(Key("weight_hr", 0)))
        {
            throw new TensorFormatException($"'{Key("weight_hr", 0)}' is present: LSTMs with proj_size are not supported.");
        }

        var layers = new List<RecurrentWeights<T>>();
        for (int k = 0; file.Contains(Key("weight_ih", k)); k++)
        {
            T[] wih = Read<T>(file, Key("weight_ih", k), out IReadOnlyList<int> ihShape);
            T[] whh = Read<T>(file, Key("weight_hh", k), out IReadOnlyList<int> hhShape);
            if (ihShape.Count != 2 || ihShape[0] % gates != 0 || ihShape[0] == 0)
            {
                throw Shape(Key("weight_ih", k), $"[{gates}·n, d]", ihShape);
            }

            int n = ihShape[0] / gates, d = ihShape[1];
            if (hhShape.Count != 2 || hhShape[0] != gates * n || hhShape[1] != n)
            {
                throw Shape(Key("weight_hh", k), $"[{gates * n}, {n}]", hhShape);
            }

            if (k > 0 && d != layers[^1].HiddenSize)
            {
                throw Shape(Key("weight_ih", k), $"[{gates * n}, {layers[^1].HiddenSize}] (layer {k} reads layer {k - 1}'s output)", ihShape);
            }

            bool hasIh = file.Contains(Key("bias_ih", k)), hasHh = file.Contains(Key("bias_hh", k));
            if (hasIh != hasHh)
            {
                throw new TensorFormatException($"'{Key(hasIh ? "bias_ih" : "bias_hh", k)}' is present but '{Key(hasIh ? "bias_hh" : "bias_ih", k)}' is not.");
            }

            T[]? bih = null, bhh = null;
            if (hasIh)
            {
                bih = Read<T>(file, Key("bias_ih", k), out IReadOnlyList<int> bihShape);
                bhh = Read<T>(file, Key("bias_hh", k), out IReadOnlyList<int> bhhShape);
                if (bihShape.Count != 1 || bihShape[0] != gates * n)
                {
                    throw Shape(Key("bias_ih", k), $"[{gates * n}]", bihShape);
                }

                if (bhhShape.Count != 1 || bhhShape[0] != gates * n)
                {
                    throw Shape(Key("bias_hh", k), $"[{gates * n}]", bhhShape);
                }
            }

            layers.Add(new RecurrentWeights<T>(gates, n, d, wih, whh, bih, bhh));
        }

        return [.. layers];
    }

    internal static T[] Read<T>(SafetensorsFile file, string key, out IReadOnlyList<int> shape)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!file.Contains(key))
        {
            throw new TensorFormatException($"no tensor '{key}', which the module needs.");
        }

        TensorData tensor = file.Get(key);
        long bad = tensor.IndexOfNonFinite();
        if (bad >= 0)
        {
            throw new TensorFormatException($"tensor '{key}' holds NaN or infinity (flat index {bad}).");
        }

        shape = tensor.Shape;
        return tensor.ToArray<T>();
    }

    internal static TensorFormatException Shape(string key, string expected, IReadOnlyList<int> actual) =>
        new($"tensor '{key}' should have shape {expected}, but has [{string.Join(", ", actual)}].");
}
