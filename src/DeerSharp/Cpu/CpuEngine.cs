using System.Collections.Concurrent;
using DeerSharp.Engines;

namespace DeerSharp.Cpu;

/// <summary>
/// The CPU engine: each sequence of a piece by <see cref="Solver.SolveWindow{TCell, T}"/>, generic over the cell's struct
/// type so the JIT specialises every loop. Several sequences run side by side, one per core (each single-threaded), when
/// the settings give it workers; one sequence alone gets every core. Workspaces are kept for the engine's lifetime and
/// reused across pieces.
/// </summary>
internal sealed class CpuEngine<TCell, T>(TCell cell) : ISolveEngine<T>
    where TCell : IRecurrentCell<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly ConcurrentBag<SequenceWorkspace<T>> _workspaces = [];

    public ComputeDevice Device => ComputeDevice.Cpu;

    public void Solve(Piece piece, ReadOnlySpan<T> inputs, ReadOnlySpan<T> starts, ReadOnlySpan<T> warmStart, T[] states, in SolverSettings<T> settings,
        Span<SequenceOutcome> outcomes)
    {
        int count = piece.Sequences.Length;
        int workers = Math.Min(count, settings.Workers);
        // The loop steps two sequences at a time on one core where the fused loop can (Cpu/FusedLoop.Pairs).
        bool pairs = settings.Method == SolveMethod.Sequential && FusedLoop.HasPair<TCell, T>(cell) && count >= 2;
        if (workers < 2)
        {
            SequenceWorkspace<T> ws = Rent(), second = Rent();
            int step = pairs && settings.MaxDegreeOfParallelism == 1 ? 2 : 1;
            for (int q = 0; q < count; q += step)
            {
                if (step == 2 && q + 1 < count)
                {
                    (outcomes[q], outcomes[q + 1]) = SolvePair(piece, q, inputs, starts, states, settings, ws, second);
                }
                else
                {
                    outcomes[q] = SolveOne(piece, q, inputs, starts, warmStart, states, settings, ws);
                }
            }

            _workspaces.Add(ws);
            _workspaces.Add(second);
            return;
        }

        // Spans cannot cross into the workers, so they are pinned for the duration and passed by address rather than copied.
        // The caller and up to workers − 1 helper threads (Helpers: the thread pool wakes too slowly here) take the
        // sequences one (or, for the fused loop, two) at a time from a shared counter.
        var inner = settings with { MaxDegreeOfParallelism = 1 };
        var results = new SequenceOutcome[count];
        int next = 0, take = pairs && count >= 2 * workers ? 2 : 1;
        unsafe
        {
            fixed (T* px = inputs, ph0 = starts, pguess = warmStart)
            {
                nint x = (nint)px, h0 = (nint)ph0, guess = (nint)pguess;
                int xs = inputs.Length, h0s = starts.Length, guesses = warmStart.Length;
                void Work()
                {
                    SequenceWorkspace<T> ws = Rent(), second = Rent();
                    try
                    {
                        for (int q = Interlocked.Add(ref next, take) - take; q < count; q = Interlocked.Add(ref next, take) - take)
                        {
                            var xq = new ReadOnlySpan<T>((T*)x, xs);
                            var h0q = new ReadOnlySpan<T>((T*)h0, h0s);
                            if (take == 2 && q + 1 < count)
                            {
                                (results[q], results[q + 1]) = SolvePair(piece, q, xq, h0q, states, inner, ws, second);
                            }
                            else
                            {
                                results[q] = SolveOne(piece, q, xq, h0q, new ReadOnlySpan<T>((T*)guess, guesses), states, inner, ws);
                            }
                        }
                    }
                    finally
                    {
                        _workspaces.Add(ws);
                        _workspaces.Add(second);
                    }
                }

                Helpers.Helper[] helpers = Helpers.Start(Work, workers - 1);
                Exception? failed = null;
                try
                {
                    Work();
                }
                catch (Exception e)
                {
                    failed = e;
                    Interlocked.Exchange(ref next, count);          // the helpers take no further sequence
                }

                try
                {
                    Helpers.Finish(helpers);                        // they read the pinned inputs: wait for those that started
                }
                catch (AggregateException e)
                {
                    // The caller's own exception comes first; a cancelled solve throws what a one-core solve throws, not
                    // the workers' wrapper.
                    failed ??= e.InnerExceptions.OfType<OperationCanceledException>().FirstOrDefault() ?? (Exception)e;
                }

                if (failed is not null)
                {
                    System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failed).Throw();
                }
            }
        }

        results.CopyTo(outcomes);
    }

    private SequenceOutcome SolveOne(Piece piece, int q, ReadOnlySpan<T> inputs, ReadOnlySpan<T> starts, ReadOnlySpan<T> warmStart, T[] states,
        in SolverSettings<T> settings, SequenceWorkspace<T> ws)
    {
        int s = cell.StateSize, d = cell.InputSize, steps = piece.Steps;
        return Solver.SolveWindow(cell, piece.Sequences[q], piece.Window, inputs.Slice((int)piece.Offset(q, d), steps * d),
            starts.IsEmpty ? default : starts.Slice(q * s, s), warmStart.IsEmpty ? default : warmStart.Slice((int)piece.Offset(q, s), steps * s),
            states.AsSpan((int)piece.Offset(q, s), steps * s), settings, ws);
    }

    /// <summary>Sequences q and q + 1 of the piece by the loop, stepped together.</summary>
    private (SequenceOutcome, SequenceOutcome) SolvePair(Piece piece, int q, ReadOnlySpan<T> inputs, ReadOnlySpan<T> starts, T[] states,
        in SolverSettings<T> settings, SequenceWorkspace<T> a, SequenceWorkspace<T> b)
    {
        int s = cell.StateSize, d = cell.InputSize, steps = piece.Steps;
        return Solver.SolveSequentialPair(cell,
            inputs.Slice((int)piece.Offset(q, d), steps * d), inputs.Slice((int)piece.Offset(q + 1, d), steps * d),
            starts.IsEmpty ? default : starts.Slice(q * s, s), starts.IsEmpty ? default : starts.Slice((q + 1) * s, s),
            states.AsSpan((int)piece.Offset(q, s), steps * s), states.AsSpan((int)piece.Offset(q + 1, s), steps * s), a, b, settings.CancellationToken);
    }

    private SequenceWorkspace<T> Rent() => _workspaces.TryTake(out SequenceWorkspace<T>? ws) ? ws : new SequenceWorkspace<T>();

    public void Dispose()
    {
        while (_workspaces.TryTake(out SequenceWorkspace<T>? ws))
        {
            ws.Dispose();
        }
    }
}
