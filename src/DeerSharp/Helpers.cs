using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace DeerSharp;

/// <summary>
/// Long-lived background threads for the CPU engine's parallel work (the loop's projection helper,
/// <c>Cpu.ProjectionPipeline</c>, and the batch's sequences, <c>Cpu.CpuEngine</c>), one fewer
/// than the cores, made on first use. A job given to the thread pool started a median of 1.9 ms late on the 2-core VM
/// (30 tries, up to 9 ms: the pool's parked workers wake slowly there), a tenth of a 65,536-step solve, and
/// <c>Parallel.For</c> over a batch of 16 gave no speedup over one core; a thread woken by an event started a median of
/// 41 µs late (a scratch program, 2026-12-07). A helper that is busy (another solve has it) is not used: the
/// caller then does more of the work itself. A job a helper has not taken by the time the caller is done is withdrawn
/// (<see cref="Finish"/>) rather than waited for: on this VM a helper took 0.06-3.5 ms to wake.
/// </summary>
internal static class Helpers
{
    private static readonly Helper[] s_helpers =
        [.. Enumerable.Range(0, Math.Max(0, Environment.ProcessorCount - 1)).Select(i => new Helper(i))];

    /// <summary>
    /// How long a helper polls for its next job before it blocks: a blocked helper took 0.06-3.5 ms to start a job on the
    /// 2-core VM, longer than a scan of the solve's inputs or states takes (0.3-0.6 ms). ONNX Runtime's intra-op threads
    /// spin likewise between operators.
    /// </summary>
    internal const double SpinSeconds = 0.002;

    /// <summary>
    /// Wakes the idle helpers ahead of work, so that they poll for it (<see cref="SpinSeconds"/>) when it comes: a solve
    /// calls this before it checks its inputs.
    /// </summary>
    public static void Nudge()
    {
        int cpu = CpuPlacement.CurrentCpu();
        foreach (Helper helper in s_helpers)
        {
            helper.Nudge(cpu);
        }
    }

    /// <summary>Starts <paramref name="job"/> on up to <paramref name="wanted"/> idle helpers; returns those it started.</summary>
    public static Helper[] Start(Action job, int wanted) => Start(job, wanted, CpuPlacement.CurrentCpu());

    /// <summary>
    /// <see cref="Start(Action, int)"/>, keeping the helpers off core <paramref name="callerCpu"/> (the caller's, or -1
    /// when not known).
    /// </summary>
    internal static Helper[] Start(Action job, int wanted, int callerCpu)
    {
        var started = new List<Helper>();
        foreach (Helper helper in s_helpers)
        {
            if (started.Count >= wanted)
            {
                break;
            }

            if (helper.TryStart(job, callerCpu))
            {
                started.Add(helper);
            }
        }

        return [.. started];
    }

    /// <summary>
    /// Runs <paramref name="body"/> for every piece in [0, <paramref name="pieces"/>), on this thread and, when
    /// <paramref name="parallel"/>, on one idle helper, both taking pieces from one counter; returns when every piece has
    /// run. The caller never waits for a helper to wake: it takes the pieces the helper has not.
    /// </summary>
    public static void ForEachPiece(int pieces, bool parallel, Action<int> body)
    {
        var next = new StrongBox<int>(0);
        void Work()
        {
            for (int k = Interlocked.Increment(ref next.Value) - 1; k < pieces; k = Interlocked.Increment(ref next.Value) - 1)
            {
                body(k);
            }
        }

        Helper[] started = parallel && pieces > 1 ? Start(Work, 1) : [];
        try
        {
            Work();
        }
        finally
        {
            Finish(started);
        }
    }

    /// <summary>
    /// Ends the jobs <see cref="Start(Action, int)"/> gave: a job no helper has taken yet is withdrawn, and the helpers that took
    /// theirs are waited for (<see cref="Wait"/>). For callers whose own thread did, or can do, all the work.
    /// </summary>
    public static void Finish(Helper[] started) => Wait([.. started.Where(h => !h.TryWithdraw())]);

    /// <summary>Waits for every helper <see cref="Start(Action, int)"/> returned, frees them, and rethrows what their jobs threw.</summary>
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
        private bool _hasJob, _finished, _nudged;
        private int _busy, _tid, _wanted = -1, _avoided = -1;

        /// <summary>
        /// Starts <paramref name="job"/> if this helper is idle, kept off <paramref name="callerCpu"/>, the core its
        /// caller runs on (<see cref="CpuPlacement"/>; -1: not known).
        /// </summary>
        public bool TryStart(Action job, int callerCpu)
        {
            if (Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
            {
                return false;
            }

            Place(callerCpu);

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

        /// <summary>Takes back a job this helper has not started; false once it has (then <see cref="Wait"/>).</summary>
        public bool TryWithdraw()
        {
            lock (_gate)
            {
                if (!_hasJob)
                {
                    return false;
                }

                (_job, _hasJob, _finished) = (null, false, true);
            }

            Volatile.Write(ref _busy, 0);
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

        /// <summary>Ends a wait for a job (the thread then spins for one again), so that a job given soon after starts at once.</summary>
        public void Nudge(int callerCpu)
        {
            if (Volatile.Read(ref _busy) != 0 || _thread is null)
            {
                return;
            }

            Place(callerCpu);
            lock (_gate)
            {
                _nudged = true;
                Monitor.PulseAll(_gate);
            }
        }

        /// <summary>The next job: polled for <see cref="SpinSeconds"/>, then waited for on the monitor until a job or a nudge comes.</summary>
        private Action Take()
        {
            long spinUntil = Stopwatch.GetTimestamp() + (long)(SpinSeconds * Stopwatch.Frequency);
            while (true)
            {
                if (Volatile.Read(ref _hasJob) || Stopwatch.GetTimestamp() > spinUntil)
                {
                    lock (_gate)
                    {
                        while (!_hasJob && !_nudged && Stopwatch.GetTimestamp() > spinUntil)
                        {
                            Monitor.Wait(_gate);
                        }

                        if (_hasJob)
                        {
                            _hasJob = false;
                            return _job!;
                        }

                        if (_nudged)
                        {
                            _nudged = false;
                            spinUntil = Stopwatch.GetTimestamp() + (long)(SpinSeconds * Stopwatch.Frequency);
                        }
                    }
                }

                Thread.SpinWait(32);
            }
        }

        /// <summary>
        /// Keeps this helper off <paramref name="callerCpu"/> (one system call, made only when that core changed since the
        /// last). Called by the caller while the helper is idle or just handed a job.
        /// </summary>
        private void Place(int callerCpu)
        {
            if (callerCpu < 0)
            {
                return;
            }

            lock (_gate)
            {
                _wanted = callerCpu;
                Apply();
            }
        }

        /// <summary>Narrows the thread's affinity to what <see cref="Place"/> last asked, if it has not been yet; under the gate.</summary>
        private void Apply()
        {
            if (_tid > 0 && _wanted >= 0 && _wanted != _avoided && CpuPlacement.Avoid(_tid, _wanted))
            {
                _avoided = _wanted;
            }
        }

        private void Loop()
        {
            lock (_gate)
            {
                // The first job was handed over before this thread had an id to place: place it now, before it takes the job.
                _tid = CpuPlacement.CurrentThreadId();
                Apply();
            }

            while (true)
            {
                Action job = Take();

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
