using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace DeerSharp;

/// <summary>
/// Where the first NaN or ±∞ of a span is. Float and double are scanned at the widest vector the CPU runs: the input
/// check (<see cref="Require.Finite{T}(ReadOnlySpan{T}, string, int[])"/>) and the result contract
/// (<see cref="ResultContract.ConvergedHolds{T}"/>) read every input and every state of a solve, and a scalar
/// <c>IsFinite</c> per value cost about 3 ms of an 11 ms LSTM solve over 65,536 steps (docs/benchmarks.md).
/// </summary>
internal static class NonFinite
{
    /// <summary>Values per block: a block is scanned in vectors, and only a block that holds a non-finite value again by value.</summary>
    private const int Block = 1024;

    /// <summary>Values from which a scan is split between this thread and a helper (when allowed): 4 MB of float32.</summary>
    internal const int ParallelMinimum = 1 << 20;

    /// <summary>Pieces a parallel scan is cut into; this thread and the helper take them from one counter.</summary>
    private const int Pieces = 8;

    /// <summary>
    /// The index of the first value that is NaN or infinite, or −1 when all are finite. With <paramref name="parallel"/>,
    /// a span of at least <see cref="ParallelMinimum"/> float or double values is scanned on this thread and an idle
    /// <see cref="Helpers"/> thread together (the scan reads memory, and one core did not saturate it: 16 MB took 0.64 ms).
    /// </summary>
    public static int IndexOf<T>(ReadOnlySpan<T> values, bool parallel = false)
        where T : IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float))
        {
            return IndexOfVectorised(MemoryMarshal.CreateReadOnlySpan(ref Unsafe.As<T, float>(ref MemoryMarshal.GetReference(values)), values.Length), parallel);
        }

        if (typeof(T) == typeof(double))
        {
            return IndexOfVectorised(MemoryMarshal.CreateReadOnlySpan(ref Unsafe.As<T, double>(ref MemoryMarshal.GetReference(values)), values.Length), parallel);
        }

        return IndexOfScalar(values, 0, values.Length);
    }

    private static unsafe int IndexOfVectorised<TF>(ReadOnlySpan<TF> values, bool parallel)
        where TF : unmanaged, IFloatingPointIeee754<TF>
    {
        if (!parallel || values.Length < ParallelMinimum)
        {
            return IndexOfVectorised(values, 0, values.Length);
        }

        int length = values.Length;
        var found = new int[Pieces];
        fixed (TF* pinned = values)
        {
            nint address = (nint)pinned;
            Helpers.ForEachPiece(Pieces, parallel: true, k =>
            {
                var all = new ReadOnlySpan<TF>((TF*)address, length);
                found[k] = IndexOfVectorised(all, (int)((long)length * k / Pieces), (int)((long)length * (k + 1) / Pieces));
            });
        }

        return found.FirstOrDefault(i => i >= 0, -1);
    }

    /// <summary>
    /// x·0 is ±0 for a finite x and NaN for NaN or ±∞, so a block is finite exactly when the sum of its values times zero
    /// is zero: a multiply and an add per vector, four independent sums.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int IndexOfVectorised<TF>(ReadOnlySpan<TF> values, int from, int to)
        where TF : unmanaged, IFloatingPointIeee754<TF>
    {
        ref TF start = ref MemoryMarshal.GetReference(values);
        int at = from;
        for (; at + Block <= to; at += Block)
        {
            if (!BlockFinite(ref Unsafe.Add(ref start, at)))
            {
                return IndexOfScalar(values, at, to);
            }
        }

        return IndexOfScalar(values, at, to);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool BlockFinite<TF>(ref TF block)
        where TF : unmanaged, IFloatingPointIeee754<TF>
    {
        if (Vector512.IsHardwareAccelerated)
        {
            int v = Vector512<TF>.Count;
            Vector512<TF> a = Vector512<TF>.Zero, b = a, c = a, d = a;
            for (int i = 0; i < Block; i += 4 * v)
            {
                a += Vector512.LoadUnsafe(ref block, (nuint)i) * Vector512<TF>.Zero;
                b += Vector512.LoadUnsafe(ref block, (nuint)(i + v)) * Vector512<TF>.Zero;
                c += Vector512.LoadUnsafe(ref block, (nuint)(i + 2 * v)) * Vector512<TF>.Zero;
                d += Vector512.LoadUnsafe(ref block, (nuint)(i + 3 * v)) * Vector512<TF>.Zero;
            }

            return Vector512.EqualsAll((a + b) + (c + d), Vector512<TF>.Zero);
        }

        if (Vector256.IsHardwareAccelerated)
        {
            int v = Vector256<TF>.Count;
            Vector256<TF> a = Vector256<TF>.Zero, b = a, c = a, d = a;
            for (int i = 0; i < Block; i += 4 * v)
            {
                a += Vector256.LoadUnsafe(ref block, (nuint)i) * Vector256<TF>.Zero;
                b += Vector256.LoadUnsafe(ref block, (nuint)(i + v)) * Vector256<TF>.Zero;
                c += Vector256.LoadUnsafe(ref block, (nuint)(i + 2 * v)) * Vector256<TF>.Zero;
                d += Vector256.LoadUnsafe(ref block, (nuint)(i + 3 * v)) * Vector256<TF>.Zero;
            }

            return Vector256.EqualsAll((a + b) + (c + d), Vector256<TF>.Zero);
        }

        for (int i = 0; i < Block; i++)
        {
            if (!TF.IsFinite(Unsafe.Add(ref block, i)))
            {
                return false;
            }
        }

        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int IndexOfScalar<T>(ReadOnlySpan<T> values, int from, int to)
        where T : IFloatingPointIeee754<T>
    {
        for (int i = from; i < to; i++)
        {
            if (!T.IsFinite(values[i]))
            {
                return i;
            }
        }

        return -1;
    }
}
