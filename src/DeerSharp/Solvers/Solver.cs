using System.Diagnostics;
using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;
using DeerSharp.Cells;

namespace DeerSharp.Solvers;

/// <summary>Validates a batch, solves its sequences (in parallel over the batch or over time) and reports.</summary>
internal static partial class Solver
{
    public static SolveResult<T> Solve<TCell, T>(TCell cell, ReadOnlySpan<T> inputs, int batchSize, int length,
        ReadOnlySpan<T> initialState, ReadOnlySpan<T> warmStart, SolveOptions? options, int layer = 0)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        options ??= SolveOptions.Default;
        options.Validate();
        RequireSupportedType<T>();
        CellCheck.Require(cell, nameof(cell));
        int s = cell.StateSize, d = cell.InputSize;
        if (s < 1 || d < 0 || cell.OutputSize < 1 || cell.OutputSize > s || cell.ProjectionSize < 0 || cell.WorkspaceSize < 0)
        {
            throw new ArgumentException(
                $"The cell reports inconsistent sizes: StateSize {s}, InputSize {d}, OutputSize {cell.OutputSize}, ProjectionSize {cell.ProjectionSize}, WorkspaceSize {cell.WorkspaceSize}.",
                nameof(cell));
        }

        ArgumentOutOfRangeException.ThrowIfNegative(batchSize);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        long stepsTotal = (long)batchSize * length;
        Require.Length(inputs, stepsTotal * d, nameof(inputs), $"[{batchSize}, {length}, {d}]");
        if (!initialState.IsEmpty)
        {
            Require.Length(initialState, (long)batchSize * s, nameof(initialState), $"[{batchSize}, {s}]");
        }

        if (!warmStart.IsEmpty)
        {
            Require.Length(warmStart, stepsTotal * s, nameof(warmStart), $"[{batchSize}, {length}, {s}]");
        }

        if (stepsTotal * s > Array.MaxLength)
        {
            throw new ArgumentException(
                $"The states would hold {stepsTotal * s} values, more than one .NET array can hold ({Array.MaxLength}); split the batch.", nameof(inputs));
        }

        Require.Finite(inputs, nameof(inputs), batchSize, length, d);
        Require.Finite(initialState, nameof(initialState), batchSize, s);
        Require.Finite(warmStart, nameof(warmStart), batchSize, length, s);

        if (options.Device != ComputeDevice.Cpu
            && Gpu.IlgpuBackend.TrySolve(cell, inputs, batchSize, length, initialState, warmStart, options, out SolveResult<T>? onDevice))
        {
            return onDevice;
        }

        var clock = Stopwatch.StartNew();
        bool surrogate = cell is ILinearSurrogateCell<T>;
        if (options.Method == SolveMethod.Scan && !surrogate)
        {
            throw new ArgumentException(
                $"SolveMethod.Scan needs a linear-surrogate cell (GilrCell, GilrLstmCell: ILinearSurrogateCell); {typeof(TCell).Name} is not one.", nameof(options));
        }

        var settings = SolverSettings<T>.Resolve(options, batchSize, length, s, layer, surrogate, JacobianStructure.Of<TCell, T>(cell));
        var states = new T[stepsTotal * s];
        var outcomes = new SequenceOutcome[batchSize];
        if (length > 0)
        {
            SolveBatch(cell, inputs, initialState, warmStart, batchSize, length, settings, states, outcomes);
        }
        else
        {
            // Nothing to solve: the empty trajectory satisfies the recurrence.
            Array.Fill(outcomes, new SequenceOutcome(0, SolveStatus.Converged, [], 0.0, -1));
        }

        clock.Stop();
        return Report(cell, states, batchSize, length, settings, outcomes, clock.Elapsed);
    }

    private static void SolveBatch<TCell, T>(TCell cell, ReadOnlySpan<T> inputs, ReadOnlySpan<T> initialState, ReadOnlySpan<T> warmStart,
        int batchSize, int length, SolverSettings<T> settings, T[] states, SequenceOutcome[] outcomes)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize, d = cell.InputSize;
        int perSequence = length * s;
        if (batchSize < 2 || settings.MaxDegreeOfParallelism < 2)
        {
            // Few sequences: one at a time, each parallel over time.
            using var ws = new SequenceWorkspace<T>();
            for (int b = 0; b < batchSize; b++)
            {
                outcomes[b] = SolveOne(cell, b, inputs.Slice(b * length * d, length * d), Slice(initialState, b, s), Slice(warmStart, b, perSequence),
                    states.AsSpan(b * perSequence, perSequence), settings, ws);
            }

            return;
        }

        // Many sequences: parallel over the batch, each sequence on one core, each worker with its share of the memory
        // budget (the budget bounds the whole solve, not each worker). Spans cannot cross into the workers, so they are
        // pinned for the duration and passed by address rather than copied.
        int workers = Math.Min(batchSize, settings.MaxDegreeOfParallelism);
        var inner = settings.WithParallelism(1) with { MemoryBudgetBytes = Math.Max(1, settings.MemoryBudgetBytes / workers) };
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = workers };
        unsafe
        {
            fixed (T* px = inputs, ph0 = initialState, pguess = warmStart)
            {
                nint x = (nint)px, h0 = (nint)ph0, guess = (nint)pguess;
                bool hasH0 = !initialState.IsEmpty, hasGuess = !warmStart.IsEmpty;
                Parallel.For(0, batchSize, parallel, () => new SequenceWorkspace<T>(), (b, _, ws) =>
                {
                    var xs = new ReadOnlySpan<T>((T*)x + (b * length * d), length * d);
                    ReadOnlySpan<T> start = hasH0 ? new ReadOnlySpan<T>((T*)h0 + (b * s), s) : default;
                    ReadOnlySpan<T> warm = hasGuess ? new ReadOnlySpan<T>((T*)guess + (b * perSequence), perSequence) : default;
                    outcomes[b] = SolveOne(cell, b, xs, start, warm, states.AsSpan(b * perSequence, perSequence), inner, ws);
                    return ws;
                }, ws => ws.Dispose());
            }
        }
    }

    private static ReadOnlySpan<T> Slice<T>(ReadOnlySpan<T> values, int index, int size) =>
        values.IsEmpty ? default : values.Slice(index * size, size);

    private static SequenceOutcome SolveOne<TCell, T>(in TCell cell, int sequence, ReadOnlySpan<T> inputs, ReadOnlySpan<T> initialState,
        ReadOnlySpan<T> warmStart, Span<T> states, in SolverSettings<T> settings, SequenceWorkspace<T> ws)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize, d = cell.InputSize;
        int length = states.Length / s;
        int window = WindowLength(cell, length, settings);
        int windows = (length + window - 1) / window;
        var history = new List<double>();
        int iterations = 0, fallbacks = 0;
        double finalResidual = 0;
        string? reason = null;
        SequenceOutcome last = default;
        for (int w = 0; w < windows; w++)
        {
            settings.CancellationToken.ThrowIfCancellationRequested();
            int w0 = w * window, w1 = Math.Min(length, w0 + window);
            ReadOnlySpan<T> h0 = w0 == 0 ? initialState : states.Slice((w0 - 1) * s, s);
            Span<T> part = states.Slice(w0 * s, (w1 - w0) * s);
            last = SolveWindow(cell, sequence, w, inputs.Slice(w0 * d, (w1 - w0) * d), h0,
                warmStart.IsEmpty ? default : warmStart.Slice(w0 * s, (w1 - w0) * s), part, settings, ws);
            iterations += last.Iterations;
            history.AddRange(last.ResidualHistory);
            if (last.Status != SolveStatus.Converged && settings.Fallback && settings.Method != SolveMethod.Sequential)
            {
                // The iterative method failed on this window: evaluate it with the loop from the same starting state.
                reason ??= Describe(last.Status, settings, last.Iterations, last.MaxResidual, w1 - w0, 1, 0, last.FailedAt, last.Message, 0, null);
                fallbacks++;
                last = SolveWindow(cell, sequence, w, inputs.Slice(w0 * d, (w1 - w0) * d), h0, default, part,
                    settings with { Method = SolveMethod.Sequential }, ws);
            }

            finalResidual = double.IsNaN(last.MaxResidual) ? double.NaN : Math.Max(finalResidual, last.MaxResidual);
            if (last.Status != SolveStatus.Converged)
            {
                // No later window can start from a state that is not a solution: mark them as not computed.
                states[(w1 * s)..].Fill(T.NaN);
                break;
            }
        }

        return last with { Iterations = iterations, ResidualHistory = [.. history], MaxResidual = finalResidual, Fallbacks = fallbacks, FallbackReason = reason, Windows = windows };
    }

    /// <summary>
    /// The most steps one window may hold so the working buffers fit <see cref="SolverSettings{T}.MemoryBudgetBytes"/>:
    /// the whole sequence when they fit.
    /// </summary>
    internal static int WindowLength<TCell, T>(in TCell cell, int length, in SolverSettings<T> settings)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        long s = cell.StateSize;
        long perStep = cell.ProjectionSize + settings.Method switch
        {
            SolveMethod.Sequential => 0,
            SolveMethod.Deer => 2 * s + settings.JacobianPerStep(settings.UpdateMode, (int)s),
            SolveMethod.QuasiElk => 7 * s,
            _ => 3 * s,
        };
        long bytesPerStep = Math.Max(1, perStep * Unsafe.SizeOf<T>());
        // The buffers are rented from ArrayPool, which rounds each one up to a power of two: at most twice what is asked.
        long fits = settings.MemoryBudgetBytes / 2 / bytesPerStep;
        if (fits < 1)
        {
            throw new InsufficientMemoryException(
                $"One step of {settings.Method} needs {bytesPerStep} bytes of working memory, over the memory budget of {settings.MemoryBudgetBytes} bytes; raise SolveOptions.MemoryBudgetBytes or use SolveMethod.QuasiDeer.");
        }

        return (int)Math.Clamp(fits, 1, Math.Max(1, length));
    }

    private static SequenceOutcome SolveWindow<TCell, T>(in TCell cell, int sequence, int window, ReadOnlySpan<T> inputs, ReadOnlySpan<T> initialState,
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
        int projected = iterative ? length : Math.Min(length, SequentialChunk);
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
            return SolveSequential(cell, ws, inputs, length, states, settings.MaxDegreeOfParallelism, settings.CancellationToken);
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

    private static SolveResult<T> Report<TCell, T>(TCell cell, T[] states, int batchSize, int length, SolverSettings<T> settings,
        SequenceOutcome[] outcomes, TimeSpan elapsed)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int iterations = 0, historyLength = 0, fallbacks = 0, windows = 1;
        double maxResidual = 0;
        SolveStatus status = SolveStatus.Converged;
        int failedSequence = -1, failedAt = -1;
        string? detail = null, reason = null;
        for (int b = 0; b < outcomes.Length; b++)
        {
            SequenceOutcome o = outcomes[b];
            iterations = Math.Max(iterations, o.Iterations);
            historyLength = Math.Max(historyLength, o.ResidualHistory.Length);
            maxResidual = double.IsNaN(o.MaxResidual) || double.IsNaN(maxResidual) ? double.NaN : Math.Max(maxResidual, o.MaxResidual);
            fallbacks += o.Fallbacks;
            reason ??= o.FallbackReason;
            windows = Math.Max(windows, o.Windows);
            if (o.Status != SolveStatus.Converged && (status == SolveStatus.Converged || o.Status == SolveStatus.Diverged))
            {
                status = o.Status;
                failedSequence = b;
                failedAt = o.FailedAt;
                detail = o.Message;
            }
        }

        // Each sequence's history, padded with its final value, then the maximum over the batch at each iteration.
        var history = new double[historyLength];
        foreach (SequenceOutcome o in outcomes)
        {
            for (int k = 0; k < historyLength && o.ResidualHistory.Length > 0; k++)
            {
                double r = o.ResidualHistory[Math.Min(k, o.ResidualHistory.Length - 1)];
                history[k] = double.IsNaN(r) || double.IsNaN(history[k]) ? double.NaN : Math.Max(history[k], r);
            }
        }

        string message = Describe(status, settings, iterations, maxResidual, length, batchSize, failedSequence, failedAt, detail, fallbacks, reason);
        return new SolveResult<T>(states, batchSize, length, cell.StateSize, cell.OutputSize, settings.Method, iterations, status,
            message, history, maxResidual, elapsed, null, fallbacks, reason, windows);
    }

    private static string Describe<T>(SolveStatus status, SolverSettings<T> settings, int iterations, double residual, int length,
        int batchSize, int failedSequence, int failedAt, string? detail, int fallbacks, string? reason)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var c = CultureInfo.InvariantCulture;
        string where = batchSize > 1 ? string.Create(c, $" (sequence {failedSequence})") : "";
        string tolerance = string.Create(c, $"atol {double.CreateTruncating(settings.AbsoluteTolerance):G3} + rtol {double.CreateTruncating(settings.RelativeTolerance):G3}·|f|");
        string method = settings.Method.ToString();
        if (status == SolveStatus.Converged && fallbacks > 0)
        {
            return string.Create(c,
                $"{method} did not converge on {fallbacks} sequence(s) or window(s), which the sequential loop evaluated instead ({reason}) Every returned state satisfies the recurrence: residual {residual:G3}.");
        }

        return (status, settings.Method) switch
        {
            (SolveStatus.Converged, SolveMethod.Sequential) =>
                "Evaluated sequentially: every state is f of the one before by construction, and every state was checked to be finite.",
            (SolveStatus.Converged, _) => length == 0
                ? "Nothing to solve: the sequences are empty."
                : string.Create(c, $"Converged: the fixed-point residual of the returned states, {residual:G3}, is within {tolerance}."),
            (SolveStatus.Diverged, SolveMethod.Sequential) => string.Create(c,
                $"The sequential evaluation produced NaN or infinity at step {failedAt}{where}: the recurrence itself overflows for these weights and inputs."),
            (SolveStatus.Diverged, _) => string.Create(c,
                $"Diverged: {detail ?? "an iterate became NaN or infinite"} at iteration {failedAt}{where}. Newton iterations can diverge on non-contractive recurrences; use SolveMethod.QuasiElk (damped), SolveMethod.Sequential, or FallbackPolicy.Sequential."),
            _ => string.Create(c,
                $"Not converged: after {iterations} iteration(s) the fixed-point residual is {residual:G3}{where}, above {tolerance}. Raise MaxIterations{(settings.Method == SolveMethod.QuasiElk ? "" : $" (every undamped method is exact after T = {length} iterations)")}, loosen the tolerances, or use SolveMethod.Deer (quadratic convergence) or SolveMethod.Sequential."),
        };
    }

    private static void RequireSupportedType<T>()
    {
        if (typeof(T) != typeof(float) && typeof(T) != typeof(double))
        {
            throw new NotSupportedException($"Deer solves in float or double; {typeof(T).Name} is not supported.");
        }
    }
}
