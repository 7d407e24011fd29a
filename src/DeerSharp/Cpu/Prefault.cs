using System.Runtime.InteropServices;

namespace DeerSharp.Cpu;

/// <summary>
/// Faults in a fresh output buffer on a pool thread while the sequential loop fills it from the front. The first write
/// to a fresh page costs a page fault (0.4-5 ms per MB on the VMs measured, docs/benchmarks.md "Cold start"), and the
/// loop pays it on its one core; <c>madvise(MADV_POPULATE_WRITE)</c> (Linux 5.14+) makes the pages present and writable
/// without writing to them, so it can run beside the loop with no race on the contents. Anywhere else (another OS, an
/// older kernel, no glibc) it does nothing.
/// </summary>
internal static partial class Prefault
{
    /// <summary>Below this, the faults cost less than starting the helper.</summary>
    internal const long MinimumBytes = 4L << 20;

    private const int MadvisePopulateWrite = 23;

    private static volatile bool s_unavailable = !OperatingSystem.IsLinux();

    [LibraryImport("libc.so.6", EntryPoint = "madvise", SetLastError = true)]
    private static partial int Madvise(nint address, nuint length, int advice);

    /// <summary>Starts faulting in [address, address + bytes) a megabyte at a time, front to back; null when it does not apply.</summary>
    public static Task? Start(nint address, long bytes) =>
        s_unavailable || bytes < MinimumBytes ? null : Task.Run(() => Populate(address, bytes));

    private static void Populate(nint address, long bytes)
    {
        long page = Environment.SystemPageSize, step = 1L << 20;
        long start = (address + page - 1) & ~(page - 1), end = (address + bytes) & ~(page - 1);
        try
        {
            for (long p = start; p < end; p += step)
            {
                if (Madvise((nint)p, (nuint)Math.Min(step, end - p), MadvisePopulateWrite) != 0)
                {
                    s_unavailable = true;                                   // EINVAL before Linux 5.14: stop trying
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
