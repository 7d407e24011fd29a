using System.Runtime.InteropServices;

namespace DeerSharp.Cpu;

/// <summary>
/// Fresh memory, made cheaper to touch. The first write to a fresh page costs a page fault (0.4-5 ms per MB on the VMs
/// measured, docs/benchmarks.md "Cold start"), which the loop would pay on its one core. <see cref="HugePages(nint, long)"/>
/// asks for 2 MB pages over a large buffer; <see cref="Populate"/>, run by the projection helper ahead of the loop
/// (<see cref="ProjectionPipeline{TCell, T}"/>), makes a chunk's pages present and writable with
/// <c>madvise(MADV_POPULATE_WRITE)</c> (Linux 5.14+) without writing to them, so it can run beside the loop with no race
/// on the contents. Anywhere else (another OS, an older kernel, no glibc) both do nothing.
/// </summary>
internal static partial class Prefault
{
    /// <summary>Below this, a buffer is not worth a huge-page request.</summary>
    internal const long MinimumBytes = 4L << 20;

    private const int MadvisePopulateWrite = 23;

    private static volatile bool s_unavailable = !OperatingSystem.IsLinux(), s_noPopulate;

    [LibraryImport("libc.so.6", EntryPoint = "madvise", SetLastError = true)]
    private static partial int Madvise(nint address, nuint length, int advice);

    private const int MadviseHugePage = 14;

    private const long HugePage = 2L << 20;

    /// <summary>Asks for huge pages over a fresh array's memory (<see cref="HugePages(nint, long)"/>).</summary>
    public static unsafe void HugePages<T>(T[] array)
        where T : unmanaged
    {
        if (!s_unavailable && (long)array.Length * sizeof(T) >= MinimumBytes)
        {
            fixed (T* p = array)
            {
                HugePages((nint)p, (long)array.Length * sizeof(T));
            }
        }
    }

    /// <summary>
    /// Asks for transparent huge pages (<c>madvise(MADV_HUGEPAGE)</c>) over the 2 MB-aligned interior of a buffer of at
    /// least <see cref="MinimumBytes"/>, so its first touch faults 2 MB at a time instead of 4 KB: on the 2-core VM, where
    /// THP is "madvise" only, a fresh 8 MB array's first write went from a median of 20-21 ms to 0.5-7 ms (a scratch
    /// program, 10 arrays per mode, docs/benchmarks.md). It changes no contents, and does nothing where it does not apply.
    /// </summary>
    public static void HugePages(nint address, long bytes)
    {
        long start = (address + HugePage - 1) & ~(HugePage - 1), end = (address + bytes) & ~(HugePage - 1);
        if (s_unavailable || bytes < MinimumBytes || end <= start)
        {
            return;
        }

        try
        {
            _ = Madvise((nint)start, (nuint)(end - start), MadviseHugePage);      // EINVAL without THP: the pages stay small
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            s_unavailable = true;
        }
    }

    /// <summary>Faults in the whole pages of [address, address + bytes) on this thread, when it applies.</summary>
    public static void Populate(nint address, long bytes)
    {
        if (s_unavailable || s_noPopulate)
        {
            return;
        }

        long page = Environment.SystemPageSize, step = 1L << 20;
        long start = (address + page - 1) & ~(page - 1), end = (address + bytes) & ~(page - 1);
        try
        {
            for (long p = start; p < end; p += step)
            {
                if (Madvise((nint)p, (nuint)Math.Min(step, end - p), MadvisePopulateWrite) != 0)
                {
                    s_noPopulate = true;                                    // EINVAL before Linux 5.14: stop trying
                    return;
                }
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            s_unavailable = true;
        }
    }
}
