using System.Runtime.InteropServices;

namespace DeerSharp;

/// <summary>
/// Keeps a helper thread (<see cref="Helpers"/>) off the core its caller runs on, on Linux. A helper woken by a caller
/// that had slept was often placed on the caller's own core, and the two then shared one core for milliseconds before
/// the kernel moved one: on the 2-core VM, a batch of 16 LSTM sequences (T = 4,096) took 11-15 ms in those runs against
/// 6 ms when the helper woke on the other core (a scratch program calling <c>OnnxModel.Run</c> after 30 ms pauses, 20
/// runs, sched_getcpu() of both threads logged: 11 of the 20 slow runs had both threads on one core).
/// <see cref="Avoid"/> narrows the helper's affinity to the process's allowed cores less the caller's current one. The
/// caller's thread itself is never pinned: it is the user's. Anywhere else (another OS, no glibc, one allowed core) it
/// does nothing.
/// </summary>
internal static unsafe partial class CpuPlacement
{
    /// <summary>Up to 1,024 cores, glibc's cpu_set_t.</summary>
    private const int MaskWords = 16;

    private static readonly ulong[]? s_allowed = ReadAllowed();

    private static volatile bool s_unavailable = s_allowed is null;

    [LibraryImport("libc.so.6", EntryPoint = "sched_getcpu")]
    private static partial int SchedGetCpu();

    [LibraryImport("libc.so.6", EntryPoint = "gettid")]
    private static partial int GetTid();

    [LibraryImport("libc.so.6", EntryPoint = "sched_setaffinity", SetLastError = true)]
    private static partial int SchedSetAffinity(int tid, nuint size, ulong* mask);

    [LibraryImport("libc.so.6", EntryPoint = "sched_getaffinity", SetLastError = true)]
    private static partial int SchedGetAffinity(int tid, nuint size, ulong* mask);

    /// <summary>The calling thread's kernel id, or 0 where placement does not apply.</summary>
    public static int CurrentThreadId()
    {
        if (s_unavailable)
        {
            return 0;
        }

        try
        {
            return GetTid();
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            s_unavailable = true;
            return 0;
        }
    }

    /// <summary>The core the calling thread runs on now, or -1 where that is not known.</summary>
    public static int CurrentCpu()
    {
        if (s_unavailable)
        {
            return -1;
        }

        try
        {
            return SchedGetCpu();
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            s_unavailable = true;
            return -1;
        }
    }

    /// <summary>
    /// Lets thread <paramref name="tid"/> run on every allowed core but <paramref name="cpu"/>; false (and nothing
    /// changed) where placement does not apply or no other core is allowed.
    /// </summary>
    public static bool Avoid(int tid, int cpu)
    {
        if (s_unavailable || s_allowed is null || tid <= 0 || cpu < 0 || cpu >= MaskWords * 64)
        {
            return false;
        }

        ulong* mask = stackalloc ulong[MaskWords];
        bool any = false;
        for (int i = 0; i < MaskWords; i++)
        {
            mask[i] = s_allowed[i] & (i == cpu / 64 ? ~(1UL << (cpu % 64)) : ulong.MaxValue);
            any |= mask[i] != 0;
        }

        return any && SchedSetAffinity(tid, MaskWords * sizeof(ulong), mask) == 0;
    }

    /// <summary>The cores thread <paramref name="tid"/> (0: the calling thread) may run on, or null where not known.</summary>
    public static int[]? Affinity(int tid)
    {
        if (s_unavailable)
        {
            return null;
        }

        ulong* mask = stackalloc ulong[MaskWords];
        if (SchedGetAffinity(tid, MaskWords * sizeof(ulong), mask) != 0)
        {
            return null;
        }

        var cores = new List<int>();
        for (int i = 0; i < MaskWords * 64; i++)
        {
            if ((mask[i / 64] & (1UL << (i % 64))) != 0)
            {
                cores.Add(i);
            }
        }

        return [.. cores];
    }

    /// <summary>The process's allowed cores when it started (taskset, a cgroup's cpuset), or null where placement does not apply.</summary>
    private static ulong[]? ReadAllowed()
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        try
        {
            var allowed = new ulong[MaskWords];
            fixed (ulong* mask = allowed)
            {
                if (SchedGetAffinity(0, MaskWords * sizeof(ulong), mask) != 0)
                {
                    return null;
                }
            }

            int count = allowed.Sum(w => System.Numerics.BitOperations.PopCount(w));
            return count >= 2 ? allowed : null;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }
}
