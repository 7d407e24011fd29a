using System.Collections.Concurrent;
using DeerSharp.Engines;

namespace DeerSharp.Cpu;

/// <summary>
/// The CPU engine: each sequence of a piece by <see cref="Solver.SolveWindow{TCell, T}"/>, generic over the cell's struct
/// type so the JIT specialises every loop. Several sequences run side by side, one per core (each single-threaded), when
/// the settings give it workers; one sequence alone gets every core. With the sequential method and a fused loop, a core
/// steps four sequences at a time (<see cref="FusedLoop.HasQuad"/>) or two (<see cref="FusedLoop.HasPair"/>). Workspaces
/// are kept for the engine's lifetime and reused across pieces.
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
        // The loop steps four sequences at a time on one core where the fused loop can (Cpu/FusedLoop.Quads; AVX-512's 32
        // registers), else two (Cpu/FusedLoop.Pairs).
        bool sequential = settings.Method == SolveMethod.Sequential && count >= 2;
        int group = sequential && FusedLoop.HasQuad<TCell, T>(cell) ? 4 : sequential && FusedLoop.HasPair<TCell, T>(cell) ? 2 : 1;
        if (workers < 2)
        {
            int step = settings.MaxDegreeOfParallelism == 1 ? group : 1;
            SequenceWorkspace<T>[] ws = RentGroup(step);
            for (int q = 0; q < count; q += step)
            {
                SolveGroup(piece, q, Math.Min(step, count - q), inputs, starts, warmStart, states, settings, ws, outcomes);
            }

            ReturnGroup(ws);
            return;
        }

        // Spans cannot cross into the workers, so they are pinned for the duration and passed by address rather than copied.
        // The caller and up to workers − 1 helper threads (Helpers: the thread pool wakes too slowly here) take the
        // sequences one (or, for the fused loop, four or two) at a time from a shared counter, as many at a time as still
        // leaves every worker a share.
        var inner = settings with { MaxDegreeOfParallelism = 1 };
        var results = new SequenceOutcome[count];
        int next = 0, take = group == 4 && count >= 4 * workers ? 4 : group >= 2 && count >= 2 * workers ? 2 : 1;
        unsafe
        {
            fixed (T* px = inputs, ph0 = starts, pguess = warmStart)
            {
                nint x = (nint)px, h0 = (nint)ph0, guess = (nint)pguess;
                int xs = inputs.Length, h0s = starts.Length, guesses = warmStart.Length;
                void Work()
                {
                    SequenceWorkspace<T>[] ws = RentGroup(take);
                    try
                    {
                        for (int q = Interlocked.Add(ref next, take) - take; q < count; q = Interlocked.Add(ref next, take) - take)
                        {
                            SolveGroup(piece, q, Math.Min(take, count - q), new ReadOnlySpan<T>((T*)x, xs), new ReadOnlySpan<T>((T*)h0, h0s),
                                new ReadOnlySpan<T>((T*)guess, guesses), states, inner, ws, results);
                        }
                    }
                    finally
                    {
                        ReturnGroup(ws);
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

    /// <summary>
    /// Sequences q .. q + size − 1 of the piece (size ≤ the group <paramref name="ws"/> was rented for): four by the quad
    /// loop, else two at a time by the pair loop where the cell has one, and one alone for what is left.
    /// </summary>
    private void SolveGroup(Piece piece, int q, int size, ReadOnlySpan<T> inputs, ReadOnlySpan<T> starts, ReadOnlySpan<T> warmStart, T[] states,
        in SolverSettings<T> settings, SequenceWorkspace<T>[] ws, Span<SequenceOutcome> outcomes)
    {
        if (size == 4 && ws.Length == 4)
        {
            Solver.SolveSequentialQuad(cell, piece, q, inputs, starts, states, ws, outcomes.Slice(q, 4), settings.EngineChecksInputs, settings.CancellationToken);
            return;
        }

        for (int end = q + size; q < end;)
        {
            if (ws.Length >= 2 && q + 1 < end)
            {
                (outcomes[q], outcomes[q + 1]) = SolvePair(piece, q, inputs, starts, states, settings, ws[0], ws[1]);
                q += 2;
            }
            else
            {
                outcomes[q] = SolveOne(piece, q, inputs, starts, warmStart, states, settings, ws[0]);
                q++;
            }
        }
    }

    private SequenceWorkspace<T>[] RentGroup(int size)
    {
        var ws = new SequenceWorkspace<T>[size];
        for (int i = 0; i < size; i++)
        {
            ws[i] = Rent();
        }

        return ws;
    }

    private void ReturnGroup(SequenceWorkspace<T>[] ws)
    {
        foreach (SequenceWorkspace<T> w in ws)
        {
            _workspaces.Add(w);
        }
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
            states.AsSpan((int)piece.Offset(q, s), steps * s), states.AsSpan((int)piece.Offset(q + 1, s), steps * s), a, b, settings.EngineChecksInputs,
            settings.CancellationToken);
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
