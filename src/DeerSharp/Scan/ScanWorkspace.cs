
namespace DeerSharp.Scan;

/// <summary>
/// The blocked scan's per-chunk buffers (chunk maps, carries, composition scratch), kept so that repeated scans
/// (one per Newton iteration) allocate nothing. Not thread safe: give each concurrent solve its own.
/// </summary>
public sealed class ScanWorkspace<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    internal T[] MapA { get; private set; } = [];

    internal T[] MapB { get; private set; } = [];

    internal T[] Carries { get; private set; } = [];

    internal T[] Scratch { get; private set; } = [];

    /// <summary>Grows the buffers to hold <paramref name="chunks"/> chunk maps of <paramref name="perStep"/> coefficients and state dimension <paramref name="n"/>, and per-worker scratch.</summary>
    internal void Ensure(int chunks, int n, int perStep, int scratchPerWorker, int workers)
    {
        Grow(MapA, chunks * perStep, v => MapA = v);
        Grow(MapB, chunks * n, v => MapB = v);
        Grow(Carries, chunks * n, v => Carries = v);
        Grow(Scratch, workers * scratchPerWorker, v => Scratch = v);
    }

    private static void Grow(T[] current, int needed, Action<T[]> set)
    {
        if (current.Length < needed)
        {
            set(new T[needed]);
        }
    }
}
