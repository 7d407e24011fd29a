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
        string first = string.Create(CultureInfo.InvariantCulture, $"{prefix}weight_ih_l0");
        if (file.Contains(first + "_reverse"))
        {
            throw new TensorFormatException(
                $"'{first}_reverse' is present: a bidirectional module. Load it with TorchRecurrentWeights.LoadDirections (RecurrentModule.Load runs it), or `deer run`, which reads both directions.");
        }

        return [.. LoadDirections<T>(file, kind, prefix).Select(directions => directions[0])];
    }

    /// <summary>
    /// Reads every layer and direction, bottom first: [layer][0] the forward direction, [layer][1] the reverse one (keys
    /// ending in <c>_reverse</c>) of a module built with bidirectional=True. Layer k &gt; 0 reads D·n inputs.
    /// </summary>
    /// <exception cref="TensorFormatException">A key is missing, mis-shaped, of a non-float dtype, or holds NaN or infinity.</exception>
    public static RecurrentWeights<T>[][] LoadDirections<T>(SafetensorsFile file, RecurrentKind kind, string prefix = "")
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

        if (file.Contains(Key("weight_hr", 0)))
        {
            throw new TensorFormatException($"'{Key("weight_hr", 0)}' is present: LSTMs with proj_size are not supported.");
        }

        string[] suffixes = file.Contains(Key("weight_ih", 0) + "_reverse") ? ["", "_reverse"] : [""];
        var layers = new List<RecurrentWeights<T>[]>();
        for (int k = 0; file.Contains(Key("weight_ih", k)); k++)
        {
            int below = k == 0 ? -1 : layers[^1][0].HiddenSize * suffixes.Length;
            layers.Add([.. suffixes.Select(suffix => Layer<T>(file, gates, name => Key(name, k) + suffix, k, below))]);
        }

        return [.. layers];
    }

    /// <summary>One layer and direction; <paramref name="below"/> is the width the layer below outputs (-1 for layer 0).</summary>
    private static RecurrentWeights<T> Layer<T>(SafetensorsFile file, int gates, Func<string, string> key, int k, int below)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T[] wih = Read<T>(file, key("weight_ih"), out IReadOnlyList<int> ihShape);
        T[] whh = Read<T>(file, key("weight_hh"), out IReadOnlyList<int> hhShape);
        if (ihShape.Count != 2 || ihShape[0] % gates != 0 || ihShape[0] == 0)
        {
            throw Shape(key("weight_ih"), $"[{gates}·n, d]", ihShape);
        }

        int n = ihShape[0] / gates, d = ihShape[1];
        if (hhShape.Count != 2 || hhShape[0] != gates * n || hhShape[1] != n)
        {
            throw Shape(key("weight_hh"), $"[{gates * n}, {n}]", hhShape);
        }

        if (below >= 0 && d != below)
        {
            throw Shape(key("weight_ih"), $"[{gates * n}, {below}] (layer {k} reads layer {k - 1}'s output)", ihShape);
        }

        bool hasIh = file.Contains(key("bias_ih")), hasHh = file.Contains(key("bias_hh"));
        if (hasIh != hasHh)
        {
            throw new TensorFormatException($"'{key(hasIh ? "bias_ih" : "bias_hh")}' is present but '{key(hasIh ? "bias_hh" : "bias_ih")}' is not.");
        }

        T[]? bih = null, bhh = null;
        if (hasIh)
        {
            bih = Read<T>(file, key("bias_ih"), out IReadOnlyList<int> bihShape);
            bhh = Read<T>(file, key("bias_hh"), out IReadOnlyList<int> bhhShape);
            if (bihShape.Count != 1 || bihShape[0] != gates * n)
            {
                throw Shape(key("bias_ih"), $"[{gates * n}]", bihShape);
            }

            if (bhhShape.Count != 1 || bhhShape[0] != gates * n)
            {
                throw Shape(key("bias_hh"), $"[{gates * n}]", bhhShape);
            }
        }

        return new RecurrentWeights<T>(gates, n, d, wih, whh, bih, bhh);
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
