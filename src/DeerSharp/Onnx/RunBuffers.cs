using System.Collections.Concurrent;

namespace DeerSharp.Onnx;

/// <summary>
/// A model's large arrays (the solves' states, an LSTM's Y), kept between runs like ONNX Runtime's arena: a run rents
/// them here, and its <see cref="OnnxRunResult"/> gives them back when it is disposed, so the next run of the same
/// shapes writes into memory that is already faulted in instead of fresh pages (tens of ms per 8 MB in 4 KB faults on a
/// VM, docs/benchmarks.md). A result that is never disposed gives nothing back, and the GC collects its arrays as usual.
/// At most <see cref="MaxHeldBytes"/> are kept.
/// </summary>
internal sealed class BufferPool
{
    /// <summary>The most bytes a model keeps between runs.</summary>
    internal const long MaxHeldBytes = 1L << 30;

    private readonly ConcurrentDictionary<(Type, long), ConcurrentBag<Array>> _free = new();
    private long _held;

    /// <summary>An array of exactly <paramref name="length"/> elements: a returned one (stale contents), or a new one.</summary>
    public unsafe T[] Rent<T>(long length)
        where T : unmanaged
    {
        if (_free.TryGetValue((typeof(T), length), out ConcurrentBag<Array>? bag) && bag.TryTake(out Array? array))
        {
            Interlocked.Add(ref _held, -length * sizeof(T));
            return (T[])array;
        }

        var fresh = new T[length];
        Cpu.Prefault.HugePages(fresh);
        return fresh;
    }

    public unsafe void Return<T>(T[] array)
        where T : unmanaged
    {
        long bytes = array.LongLength * sizeof(T);
        if (Interlocked.Add(ref _held, bytes) > MaxHeldBytes)
        {
            Interlocked.Add(ref _held, -bytes);
            return;
        }

        _free.GetOrAdd((typeof(T), array.LongLength), _ => []).Add(array);
    }
}

/// <summary>The arrays one run rented from its model's <see cref="BufferPool"/>, given back together.</summary>
internal sealed class RunBuffers(BufferPool pool)
{
    private readonly ConcurrentBag<Action> _returns = [];
    private int _returned;

    /// <summary>Rents an array that every caller fills completely before anyone reads it.</summary>
    public T[] Rent<T>(long length)
        where T : unmanaged
    {
        T[] array = pool.Rent<T>(length);
        _returns.Add(() => pool.Return(array));
        return array;
    }

    /// <summary>Gives every rented array back, once.</summary>
    public void Return()
    {
        if (Interlocked.Exchange(ref _returned, 1) == 0)
        {
            foreach (Action giveBack in _returns)
            {
                giveBack();
            }
        }
    }
}
