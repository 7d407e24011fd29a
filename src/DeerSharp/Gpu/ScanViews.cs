using ILGPU;

namespace DeerSharp.Gpu;

/// <summary>What both device scans check on the host before a launch, and how they cut the steps into chunks.</summary>
internal static class ScanViews
{
    /// <summary>
    /// Checks every view is long enough (an out-of-range index would end the process on the CPU accelerator), then fits
    /// <paramref name="chunks"/> to <paramref name="length"/>: the steps per chunk, and the chunks that then cover them.
    /// </summary>
    public static (int Chunk, int Chunks) Check<T>(ArrayView<T> a, long aValues, ArrayView<T> b, ArrayView<T> h, long values, ArrayView<T> h0, long h0Values,
        int length, int chunks)
        where T : unmanaged
    {
        Require(a, aValues, nameof(a));
        Require(b, values, nameof(b));
        Require(h, values, nameof(h));
        Require(h0, h0Values, nameof(h0));
        chunks = Math.Min(chunks, length);
        int chunk = (length + chunks - 1) / chunks;
        return (chunk, (length + chunk - 1) / chunk);
    }

    private static void Require<T>(ArrayView<T> view, long needed, string name)
        where T : unmanaged
    {
        if (view.Length < needed)
        {
            throw new ArgumentException($"{name} must hold at least {needed} values; it holds {view.Length}.", name);
        }
    }
}
