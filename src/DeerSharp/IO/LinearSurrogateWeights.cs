using System.Globalization;

namespace DeerSharp.IO;

/// <summary>
/// Reads GILR and GILR-LSTM weights from safetensors. One layer: keys gate.weight [n, d], gate.bias [n], impulse.weight,
/// impulse.bias (GILR-LSTM: the same under "surrogate.", then weight_ih [4n, d], weight_hh [4n, n], bias [4n]). A stack:
/// the same keys under "0.", "1.", … (as a ModuleList saves them). An optional prefix goes before all of them.
/// </summary>
public static class LinearSurrogateWeights
{
    /// <summary>Every GILR layer, bottom first.</summary>
    public static GilrWeights<T>[] LoadGilr<T>(SafetensorsFile file, string prefix = "")
        where T : unmanaged, IFloatingPointIeee754<T> =>
        [.. Layers(file, prefix, "gate.weight").Select(p => Gilr<T>(file, p, null))];

    /// <summary>Every GILR-LSTM layer, bottom first.</summary>
    public static GilrLstmWeights<T>[] LoadGilrLstm<T>(SafetensorsFile file, string prefix = "")
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var layers = new List<GilrLstmWeights<T>>();
        foreach (string p in Layers(file, prefix, "surrogate.gate.weight"))
        {
            GilrWeights<T> surrogate = Gilr<T>(file, p + "surrogate.", layers.Count == 0 ? null : layers[^1].HiddenSize);
            int n = surrogate.HiddenSize, d = surrogate.InputSize;
            T[] wih = Checked<T>(file, p + "weight_ih", [4 * n, d]), whh = Checked<T>(file, p + "weight_hh", [4 * n, n]), bias = Checked<T>(file, p + "bias", [4 * n]);
            layers.Add(new GilrLstmWeights<T>(surrogate, wih, whh, bias));
        }

        return [.. layers];
    }

    /// <summary>The key prefixes of the layers: the prefix itself for one layer, prefix + "k." for a stack.</summary>
    public static IReadOnlyList<string> Layers(SafetensorsFile file, string prefix, string probe)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(prefix);
        if (file.Contains(prefix + probe))
        {
            return [prefix];
        }

        var layers = new List<string>();
        for (int k = 0; file.Contains(string.Create(CultureInfo.InvariantCulture, $"{prefix}{k}.{probe}")); k++)
        {
            layers.Add(string.Create(CultureInfo.InvariantCulture, $"{prefix}{k}."));
        }

        if (layers.Count == 0)
        {
            throw new TensorFormatException($"no tensor '{prefix}{probe}' (one layer) or '{prefix}0.{probe}' (a stack).");
        }

        return layers;
    }

    private static GilrWeights<T> Gilr<T>(SafetensorsFile file, string p, int? previousHidden)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T[] u = TorchRecurrentWeights.Read<T>(file, p + "gate.weight", out IReadOnlyList<int> shape);
        if (shape.Count != 2 || shape[0] < 1 || shape[1] < 1)
        {
            throw TorchRecurrentWeights.Shape(p + "gate.weight", "[n, d]", shape);
        }

        int n = shape[0], d = shape[1];
        if (previousHidden is { } m && d != m)
        {
            throw TorchRecurrentWeights.Shape(p + "gate.weight", $"[{n}, {m}] (this layer reads the layer below's output)", shape);
        }

        return new GilrWeights<T>(n, d, u, Checked<T>(file, p + "gate.bias", [n]), Checked<T>(file, p + "impulse.weight", [n, d]), Checked<T>(file, p + "impulse.bias", [n]));
    }

    private static T[] Checked<T>(SafetensorsFile file, string key, int[] expected)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T[] values = TorchRecurrentWeights.Read<T>(file, key, out IReadOnlyList<int> shape);
        return shape.SequenceEqual(expected) ? values : throw TorchRecurrentWeights.Shape(key, $"[{string.Join(", ", expected)}]", shape);
    }
}
