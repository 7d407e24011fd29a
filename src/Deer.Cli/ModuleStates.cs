using DeerSharp.IO;

namespace DeerSharp.Cli;

/// <summary>
/// A module's initial states on the command line: --h0 and --c0, each [num_layers, B, n] (or [num_layers, n] unbatched),
/// placed at their offsets in each layer's state [layers, B, S]; and their gradients, back in those shapes.
/// </summary>
internal static class ModuleStates
{
    /// <summary>[layers, B, S] from --h0 (at <paramref name="hOffset"/> in each state) and --c0 (at <paramref name="cOffset"/>); null when neither is given.</summary>
    public static T[]? Read<T>(RunCommand.Request q, int layers, int batch, int n, int s, int hOffset, int cOffset, bool batched)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (q.H0 is null && q.C0 is null)
        {
            return null;
        }

        T[]? h = q.H0 is null ? null : RunCommand.ReadState<T>(q.H0, "--h0", layers, batch, n, batched);
        T[]? c = q.C0 is null ? null : RunCommand.ReadState<T>(q.C0, "--c0", layers, batch, n, batched);
        var states = new T[layers * batch * s];
        for (int r = 0; r < layers * batch; r++)
        {
            h?.AsSpan(r * n, n).CopyTo(states.AsSpan((r * s) + hOffset, n));
            c?.AsSpan(r * n, n).CopyTo(states.AsSpan((r * s) + cOffset, n));
        }

        return states;
    }

    /// <summary>∂L/∂h0 and ∂L/∂c0 in the shapes of --h0 and --c0, for those that were given.</summary>
    public static void AddGradients<T>(RunCommand.Request q, GradientResult<T> g, int layers, int batch, int n, int s, int hOffset, int cOffset, bool batched,
        Dictionary<string, TensorData> tensors)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int rows = layers * batch;
        int[] shape = batched ? [layers, batch, n] : [layers, n];
        T[] Part(int offset) => [.. Enumerable.Range(0, rows).SelectMany(r => g.InitialStateGradient.AsSpan((r * s) + offset, n).ToArray())];
        if (q.H0 is not null)
        {
            tensors["h0"] = TensorData.From(Part(hOffset), shape);
        }

        if (q.C0 is not null)
        {
            tensors["c0"] = TensorData.From(Part(cOffset), shape);
        }
    }
}
