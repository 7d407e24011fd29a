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

    /// <summary>The index of the first value that is NaN or infinite, or −1 when all are finite.</summary>
    public static int IndexOf<T>(ReadOnlySpan<T> values)
        where T : IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float))
        {
            return IndexOfVectorised(MemoryMarshal.CreateReadOnlySpan(ref Unsafe.As<T, float>(ref MemoryMarshal.GetReference(values)), values.Length));
        }

        if (typeof(T) == typeof(double))
        {
            return IndexOfVectorised(MemoryMarshal.CreateReadOnlySpan(ref Unsafe.As<T, double>(ref MemoryMarshal.GetReference(values)), values.Length));
        }

        return IndexOfScalar(values, 0);
    }

    /// <summary>
    /// x·0 is ±0 for a finite x and NaN for NaN or ±∞, so a block is finite exactly when the sum of its values times zero
    /// is zero: a multiply and an add per vector, four independent sums.
    /// </summary>
    private static int IndexOfVectorised<TF>(ReadOnlySpan<TF> values)
        where TF : unmanaged, IFloatingPointIeee754<TF>
    {
        ref TF start = ref MemoryMarshal.GetReference(values);
        int length = values.Length, at = 0;
        for (; at + Block <= length; at += Block)
        {
            if (!BlockFinite(ref Unsafe.Add(ref start, at)))
            {
                return IndexOfScalar(values, at);
            }
        }

        return IndexOfScalar(values, at);
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

    private static int IndexOfScalar<T>(ReadOnlySpan<T> values, int from)
        where T : IFloatingPointIeee754<T>
    {
        for (int i = from; i < values.Length; i++)
        {
            if (!T.IsFinite(values[i]))
            {
                return i;
            }
        }

        return -1;
    }
}
