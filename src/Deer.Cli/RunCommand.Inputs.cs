using DeerSharp.IO;

namespace DeerSharp.Cli;

// `deer run`'s input files: initial states, .npy reads with the option named in every error, and output folders.
internal static partial class RunCommand
{
    /// <summary>[layers, B, S] from --h0 (and --c0): PyTorch's [num_layers, B, n], or [num_layers, n] when unbatched.</summary>
    internal static T[]? InitialStates<T>(Request q, RecurrentWeights<T>[] layers, int batch, bool batched)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (q.H0 is null && q.C0 is null)
        {
            return null;
        }

        int numLayers = layers.Length, n = layers[0].HiddenSize;
        bool lstm = q.Cell == "lstm";
        int s = lstm ? 2 * n : n;
        T[]? h = q.H0 is null ? null : ReadState<T>(q.H0, "--h0", numLayers, batch, n, batched);
        T[]? c = q.C0 is null ? null : ReadState<T>(q.C0, "--c0", numLayers, batch, n, batched);
        var states = new T[numLayers * batch * s];
        for (int k = 0; k < numLayers; k++)
        {
            for (int b = 0; b < batch; b++)
            {
                int src = (k * batch + b) * n, dst = (k * batch + b) * s;
                h?.AsSpan(src, n).CopyTo(states.AsSpan(dst, n));
                c?.AsSpan(src, n).CopyTo(states.AsSpan(dst + n, n));
            }
        }

        return states;
    }

    internal static T[] ReadState<T>(string path, string option, int numLayers, int batch, int n, bool batched)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        TensorData t = ReadNpy(path, option);
        int[] expected = batched ? [numLayers, batch, n] : [numLayers, n];
        if (!t.Shape.SequenceEqual(expected))
        {
            throw new UsageException($"{option} {path}: expected shape [{string.Join(", ", expected)}] (num_layers{(batched ? ", B" : "")}, n), got {t.ShapeText}.");
        }

        long bad = t.IndexOfNonFinite();
        if (bad >= 0)
        {
            throw new UsageException($"{option} {path}: holds NaN or infinity at {Coordinates(bad, t.Shape)}.");
        }

        return t.ToArray<T>();
    }

    internal static TensorData ReadNpy(string path, string option) => Wrap(path, option, () => Npy.Read(path));

    /// <summary>Runs a read and turns any failure into one line that names the option and the file.</summary>
    internal static TResult Wrap<TResult>(string path, string option, Func<TResult> read)
    {
        try
        {
            return read();
        }
        catch (TensorFormatException e)
        {
            string message = e.Message.StartsWith(path + ":", StringComparison.Ordinal) ? e.Message[(path.Length + 1)..].TrimStart() : e.Message;
            throw new UsageException($"{option} {path}: {message}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            string why = e is FileNotFoundException or DirectoryNotFoundException ? "no such file" : e.Message;
            throw new UsageException($"{option} {path}: cannot read it ({why}).");
        }
    }

    internal static void RequireDirectory(string path, string option)
    {
        string? directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is null || !Directory.Exists(directory))
        {
            throw new UsageException($"{option} {path}: the directory '{directory}' does not exist.");
        }
    }

    internal static string Coordinates(long flat, IReadOnlyList<int> shape)
    {
        var c = new long[shape.Count];
        for (int k = shape.Count - 1; k >= 0; k--)
        {
            c[k] = flat % Math.Max(1, shape[k]);
            flat /= Math.Max(1, shape[k]);
        }

        return $"[{string.Join(", ", c)}]";
    }
}
