using DeerSharp.Engines;

namespace DeerSharp.Cpu;

/// <summary>The CPU engine's methods on one window of one sequence: the loop, the Newton iterations, the damped step, a surrogate's scan.</summary>
internal static partial class Solver
{
    /// <summary>
    /// One window of one sequence by <paramref name="settings"/>' method, from <paramref name="initialState"/> (empty for
    /// zeros), into <paramref name="states"/>.
    /// </summary>
    internal static SequenceOutcome SolveWindow<TCell, T>(in TCell cell, int sequence, int window, ReadOnlySpan<T> inputs, ReadOnlySpan<T> initialState,
        ReadOnlySpan<T> warmStart, Span<T> states, in SolverSettings<T> settings, SequenceWorkspace<T> ws)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize, p = cell.ProjectionSize;
        int length = states.Length / s;
        bool iterative = settings.Method != SolveMethod.Sequential;
        long jacobianValues = (long)length * settings.JacobianPerStep(settings.UpdateMode, s);
        int chunks = iterative ? EvaluationChunks(length, settings.MaxDegreeOfParallelism) : 1;
        int scratch = Math.Max(cell.WorkspaceSize, iterative ? BlockWorkspaceSize<TCell, T>(cell) : 0);
        // The loop needs each step's projection once: it projects a chunk at a time into a small buffer that stays in
        // cache and is reused, instead of a [T, P] array whose first touch alone (page faults on fresh memory) costs
        // more than the loop (docs/benchmarks.md, "Cold start").
        int projected = iterative ? length : SequentialProjected(length, p);
        ws.Ensure(projected, s, p, scratch, jacobianValues, chunks, iterative, damped: settings.Method == SolveMethod.QuasiElk);
        if (initialState.IsEmpty)
        {
            ws.InitialState.AsSpan(0, s).Clear();
        }
        else
        {
            initialState.CopyTo(ws.InitialState);
        }

        if (!iterative)
        {
            return SolveSequential(cell, ws, inputs, length, states, settings.MaxDegreeOfParallelism, settings.EngineChecksInputs, settings.CancellationToken);
        }

        // The input projection depends on x alone: one matrix product, computed once, outside every iteration.
        Project(cell, inputs, ws.Projections, length, settings.MaxDegreeOfParallelism);

        SequenceOutcome outcome = settings.Method switch
        {
            SolveMethod.QuasiElk => SolveDamped(cell, ws, length, warmStart, settings, sequence, window),
            SolveMethod.Scan => SolveScan(cell, ws, length, settings, sequence, window),
            _ => SolveIterative(cell, ws, length, warmStart, settings, sequence, window),
        };
        ws.States.AsSpan(0, length * s).CopyTo(states);
        return outcome;
    }

    /// <summary>
    /// A linear-surrogate cell's own scans give the exact trajectory; the residual is then checked like any method's, and a
    /// residual outside tolerance (rounding gone wrong) is reported, not hidden.
    /// </summary>
    private static SequenceOutcome SolveScan<TCell, T>(in TCell cell, SequenceWorkspace<T> ws, int length, in SolverSettings<T> settings, int sequence, int window)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize;
        ((ILinearSurrogateCell<T>)cell).SolveLinear(ws.Projections.AsSpan(0, length * cell.ProjectionSize), ws.InitialState.AsSpan(0, s),
            ws.States.AsSpan(0, length * s), length);
        var (max, within, finite) = EvaluateAll(cell, ws, length, JacobianMode.None, settings, newtonTerm: false);
        settings.Report(sequence, window, 1, max);
        SolveStatus status = !finite ? SolveStatus.Diverged : within ? SolveStatus.Converged : SolveStatus.MaxIterationsReached;
        return new SequenceOutcome(1, status, [max], max, status == SolveStatus.Diverged ? 1 : -1);
    }

    /// <summary>The input projections of all steps, split over cores in row blocks when the sequence is long.</summary>
    private static unsafe void Project<TCell, T>(in TCell cell, ReadOnlySpan<T> inputs, T[] projections, int length, int maxDegreeOfParallelism)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int d = cell.InputSize, p = cell.ProjectionSize;
        int chunks = maxDegreeOfParallelism <= 1 || (long)length * d * p < 1 << 20 ? 1 : Math.Min(maxDegreeOfParallelism, length / MinimumEvaluationChunk);
        if (chunks <= 1)
        {
            cell.ProjectInputs(inputs, projections.AsSpan(0, length * p), length);
            return;
        }

        // The inputs arrive as a span, which a worker cannot capture: pin it for the duration and pass its address.
        fixed (T* pinned = inputs)
        {
            nint address = (nint)pinned;
            TCell local = cell;
            Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = maxDegreeOfParallelism }, k =>
            {
                (int start, int end) = Scan.LinearRecurrence.ChunkRange(k, chunks, length);
                var x = new ReadOnlySpan<T>((T*)address + (long)start * d, (end - start) * d);
                local.ProjectInputs(x, projections.AsSpan(start * p, (end - start) * p), end - start);
            });
        }
    }
}
