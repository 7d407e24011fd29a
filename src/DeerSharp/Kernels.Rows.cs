using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace DeerSharp;

internal static partial class Kernels
{
    /// <summary>
    /// Copies <paramref name="rows"/> rows of <paramref name="width"/> values, row r from source[r·sourceStride ..] to
    /// destination[destinationStart + r·destinationStride ..] (a negative destination stride walks backward), in one tight
    /// loop: 512-bit (else 256-bit) moves where a row is whole vectors, else one block copy a row. An ONNX LSTM's Y (h out
    /// of each [h; c] state) is such a copy: 65,536 rows of 128 bytes in the race's B = 16 and B = 1 models.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A row would fall outside its span.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void CopyRows<T>(ReadOnlySpan<T> source, int sourceStride, Span<T> destination, long destinationStart, long destinationStride, int width,
        int rows)
        where T : unmanaged
    {
        if (rows <= 0 || width <= 0)
        {
            return;
        }

        long lastSource = (long)(rows - 1) * sourceStride, lastDestination = destinationStart + ((rows - 1) * destinationStride);
        if (sourceStride < 0 || lastSource + width > source.Length || Math.Min(destinationStart, lastDestination) < 0
            || Math.Max(destinationStart, lastDestination) + width > destination.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(rows),
                $"{rows} rows of {width} (source stride {sourceStride}, destination {destinationStart} + r·{destinationStride}) do not fit a source of {source.Length} and a destination of {destination.Length}.");
        }

        ref byte from = ref Unsafe.As<T, byte>(ref MemoryMarshal.GetReference(source));
        ref byte to = ref Unsafe.As<T, byte>(ref Unsafe.Add(ref MemoryMarshal.GetReference(destination), (nint)destinationStart));
        nint bytes = width * Unsafe.SizeOf<T>(), fromStep = sourceStride * (nint)Unsafe.SizeOf<T>(), toStep = (nint)destinationStride * Unsafe.SizeOf<T>();
        if (Vector512.IsHardwareAccelerated && bytes % 64 == 0)
        {
            for (int r = 0; r < rows; r++, from = ref Unsafe.Add(ref from, fromStep), to = ref Unsafe.Add(ref to, toStep))
            {
                for (nint j = 0; j < bytes; j += 64)
                {
                    Vector512.LoadUnsafe(ref from, (nuint)j).StoreUnsafe(ref to, (nuint)j);
                }
            }
        }
        else if (Vector256.IsHardwareAccelerated && bytes % 32 == 0)
        {
            for (int r = 0; r < rows; r++, from = ref Unsafe.Add(ref from, fromStep), to = ref Unsafe.Add(ref to, toStep))
            {
                for (nint j = 0; j < bytes; j += 32)
                {
                    Vector256.LoadUnsafe(ref from, (nuint)j).StoreUnsafe(ref to, (nuint)j);
                }
            }
        }
        else
        {
            for (int r = 0; r < rows; r++, from = ref Unsafe.Add(ref from, fromStep), to = ref Unsafe.Add(ref to, toStep))
            {
                Unsafe.CopyBlockUnaligned(ref to, ref from, (uint)bytes);
            }
        }
    }
}
