using System.Globalization;

namespace DeerSharp.IO;

/// <summary>
/// Reads the layers of a structured cell (<see cref="IndRnnCell{T}"/> G = 1, <see cref="DiagonalGruCell{T}"/> G = 3,
/// <see cref="DiagonalLstmCell{T}"/> G = 4) from a safetensors state_dict in PyTorch's key layout:
/// <c>{prefix}weight_ih_l{k}</c> [G·n, d], <c>weight_hh_l{k}</c> [G·n, k] (or [G·n] for k = 1), and optional
/// <c>bias_ih_l{k}</c>, <c>bias_hh_l{k}</c> [G·n].
/// </summary>
public static class StructuredRecurrentWeights
{
    /// <summary>Reads every layer, bottom first, validating shapes and values key by key.</summary>
    /// <param name="file">The safetensors file.</param>
    /// <param name="gates">G: 1, 3 or 4.</param>
    /// <param name="prefix">Prepended to every key.</param>
    /// <param name="blockSize">k; null infers it from weight_hh's shape. Given, it must match that shape.</param>
    /// <exception cref="TensorFormatException">A key is missing, mis-shaped, of a non-float dtype, or holds NaN or infinity.</exception>
    public static StructuredWeights<T>[] Load<T>(SafetensorsFile file, int gates, string prefix = "", int? blockSize = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(prefix);
        ArgumentOutOfRangeException.ThrowIfLessThan(gates, 1);
        if (blockSize is < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "The block size must be at least 1.");
        }

        string Key(string name, int k) => string.Create(CultureInfo.InvariantCulture, $"{prefix}{name}_l{k}");
        if (!file.Contains(Key("weight_ih", 0)))
        {
            throw new TensorFormatException($"no tensor '{Key("weight_ih", 0)}': not a structured-cell state_dict{(prefix.Length > 0 ? $" under prefix '{prefix}'" : "")}.");
        }

        var layers = new List<StructuredWeights<T>>();
        for (int k = 0; file.Contains(Key("weight_ih", k)); k++)
        {
            T[] wih = TorchRecurrentWeights.Read<T>(file, Key("weight_ih", k), out IReadOnlyList<int> ihShape);
            T[] whh = TorchRecurrentWeights.Read<T>(file, Key("weight_hh", k), out IReadOnlyList<int> hhShape);
            if (ihShape.Count != 2 || ihShape[0] % gates != 0 || ihShape[0] == 0)
            {
                throw TorchRecurrentWeights.Shape(Key("weight_ih", k), $"[{gates}·n, d]", ihShape);
            }

            int n = ihShape[0] / gates, d = ihShape[1];
            int inferred = hhShape.Count == 1 && hhShape[0] == gates * n ? 1
                : hhShape.Count == 2 && hhShape[0] == gates * n ? hhShape[1]
                : throw TorchRecurrentWeights.Shape(Key("weight_hh", k), $"[{gates * n}, k] (or [{gates * n}] for k = 1)", hhShape);
            if (blockSize is { } declared && declared != inferred)
            {
                throw TorchRecurrentWeights.Shape(Key("weight_hh", k), $"[{gates * n}, {declared}] (--block-size {declared})", hhShape);
            }

            if (inferred < 1 || n % inferred != 0)
            {
                throw new TensorFormatException(
                    $"tensor '{Key("weight_hh", k)}' has shape [{string.Join(", ", hhShape)}]: its block size {inferred} must divide the hidden size n = {n} (from '{Key("weight_ih", k)}' [{ihShape[0]}, {d}]).");
            }

            if (k > 0 && d != layers[^1].HiddenSize)
            {
                throw TorchRecurrentWeights.Shape(Key("weight_ih", k), $"[{gates * n}, {layers[^1].HiddenSize}] (layer {k} reads layer {k - 1}'s output)", ihShape);
            }

            bool hasIh = file.Contains(Key("bias_ih", k)), hasHh = file.Contains(Key("bias_hh", k));
            if (hasIh != hasHh)
            {
                throw new TensorFormatException($"'{Key(hasIh ? "bias_ih" : "bias_hh", k)}' is present but '{Key(hasIh ? "bias_hh" : "bias_ih", k)}' is not.");
            }

            T[]? bih = null, bhh = null;
            if (hasIh)
            {
                bih = TorchRecurrentWeights.Read<T>(file, Key("bias_ih", k), out IReadOnlyList<int> bihShape);
                bhh = TorchRecurrentWeights.Read<T>(file, Key("bias_hh", k), out IReadOnlyList<int> bhhShape);
                if (bihShape.Count != 1 || bihShape[0] != gates * n)
                {
                    throw TorchRecurrentWeights.Shape(Key("bias_ih", k), $"[{gates * n}]", bihShape);
                }

                if (bhhShape.Count != 1 || bhhShape[0] != gates * n)
                {
                    throw TorchRecurrentWeights.Shape(Key("bias_hh", k), $"[{gates * n}]", bhhShape);
                }
            }

            layers.Add(new StructuredWeights<T>(gates, n, d, inferred, wih, whh, bih, bhh));
        }

        return [.. layers];
    }
}
