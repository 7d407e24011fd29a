namespace DeerSharp.Cpu;

/// <summary>
/// Long-lived background threads for the CPU engine's parallel work (the loop's projection helper,
/// <see cref="ProjectionPipeline{TCell, T}"/>, and the batch's sequences, <see cref="CpuEngine{TCell, T}"/>), one fewer
/// than the cores, made on first use. A job given to the thread pool started a median of 1.9 ms late on the 2-core VM
/// (30 tries, up to 9 ms: the pool's parked workers wake slowly there), a tenth of a 65,536-step solve, and
/// <c>Parallel.For</c> over a batch of 16 gave no speedup over one core; a thread woken by an event started a median of
/// 41 µs late (a scratch program, 2026-12-07). A helper that is busy (another solve has it) is not used: the
/// caller then does more of the work itself.
/// </summary>
internal static class Helpers
{
    private static readonly Helper[] s_helpers =
        [.. Enumerable.Range(0, Math.Max(0, Environment.ProcessorCount - 1)).Select(i => new Helper(i))];

    /// <summary>Starts <paramref name="job"/> on up to <paramref name="wanted"/> idle helpers; returns those it started.</summary>
    public static Helper[] Start(Action job, int wanted)
    {
        var started = new List<Helper>();
        foreach (Helper helper in s_helpers)
        {
            if (started.Count >= wanted)
            {
                break;
            }

            if (helper.TryStart(job))
            {
                started.Add(helper);
            }
        }

        return [.. started];
    }

    /// <summary>Waits for every helper <see cref="Start"/> returned, frees them, and rethrows what their jobs threw.</summary>
    public static void Wait(Helper[] started)
    {
        List<Exception>? errors = null;
        foreach (Helper helper in started)
        {
            if (helper.Wait() is { } error)
            {
                (errors ??= []).Add(error);
            }
        }

        if (errors is not null)
        {
            throw new AggregateException(errors);
        }
    }

    /// <summary>One thread, one job at a time, handed over under a monitor.</summary>
    internal sealed class Helper(int index)
    {
        private readonly object _gate = new();
        private Thread? _thread;
        private Action? _job;
        private Exception? _error;
        private bool _hasJob, _finished;
        private int _busy;

        public bool TryStart(Action job)
        {
            if (Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
            {
                return false;
            }

            lock (_gate)
            {
                if (_thread is null)
                {
                    _thread = new Thread(Loop) { IsBackground = true, Name = $"Deer helper {index}" };
                    _thread.Start();
                }

                (_job, _error, _hasJob, _finished) = (job, null, true, false);
                Monitor.PulseAll(_gate);
            }

            return true;
        }

        public Exception? Wait()
        {
            Exception? error;
            lock (_gate)
            {
                while (!_finished)
                {
                    Monitor.Wait(_gate);
                }

                error = _error;
            }

            Volatile.Write(ref _busy, 0);
            return error;
        }

        private void Loop()
        {
            while (true)
            {
                Action job;
                lock (_gate)
                {
                    while (!_hasJob)
                    {
                        Monitor.Wait(_gate);
                    }

                    (job, _hasJob) = (_job!, false);
                }

                Exception? error = null;
                try
                {
                    job();
                }
                catch (Exception e)
                {
                    error = e;
                }

                lock (_gate)
                {
                    (_job, _error, _finished) = (null, error, true);
                    Monitor.PulseAll(_gate);
                }
            }
        }
    }
}
