namespace DeerSharp.Cpu;

/// <summary>
/// One long-lived background thread for the sequential loop's projection helper (<see cref="ProjectionPipeline{TCell, T}"/>).
/// A job given to the thread pool started a median of 1.9 ms late on the 2-core VM (30 tries, up to 9 ms: the pool's
/// parked workers wake slowly there), which is a tenth of a whole 65,536-step solve; this thread, woken by an event,
/// started a median of 41 µs late (a scratch program, 2026-12-07). One job at a time: a second solve that finds it busy
/// runs without a helper.
/// </summary>
internal static class HelperThread
{
    private static readonly ManualResetEventSlim s_start = new(false), s_done = new(false);
    private static readonly object s_gate = new();
    private static Thread? s_thread;
    private static Action? s_job;
    private static Exception? s_error;
    private static int s_busy;

    /// <summary>Starts <paramref name="job"/> on the helper thread; false (and nothing started) when it is busy.</summary>
    public static bool TryStart(Action job)
    {
        if (Interlocked.CompareExchange(ref s_busy, 1, 0) != 0)
        {
            return false;
        }

        lock (s_gate)
        {
            s_thread ??= new Thread(Loop) { IsBackground = true, Name = "Deer projection helper" };
            if (!s_thread.IsAlive)
            {
                s_thread.Start();
            }
        }

        s_job = job;
        s_error = null;
        s_done.Reset();
        s_start.Set();
        return true;
    }

    /// <summary>Waits for the job <see cref="TryStart"/> started, frees the thread, and rethrows what the job threw.</summary>
    public static void Wait()
    {
        s_done.Wait();
        Exception? error = s_error;
        Volatile.Write(ref s_busy, 0);
        if (error is not null)
        {
            throw new AggregateException(error);
        }
    }

    private static void Loop()
    {
        while (true)
        {
            s_start.Wait();
            s_start.Reset();
            try
            {
                s_job?.Invoke();
            }
            catch (Exception e)
            {
                s_error = e;
            }

            s_job = null;
            s_done.Set();
        }
    }
}
