using System.Diagnostics;
using DeerSharp.Cpu;
using DeerSharp.Engines;
using DeerSharp.Gpu;

namespace DeerSharp.Driver;

/// <summary>
/// The one driver every solve goes through (docs/architecture.md): it validates, picks the engine (the CPU, or the ILGPU
/// device), resolves the options into settings once, cuts the batch into the pieces the memory budget allows, falls back
/// to the loop per failed sequence, and builds the result and its message. The engines only solve pieces.
/// </summary>
internal static class SolveDriver
{
    /// <remarks><c>states</c>: where to write the states (exactly batchSize·length·S values, every one written), or null for a new array.</remarks>
    public static SolveResult<T> Solve<TCell, T>(TCell cell, ReadOnlySpan<T> inputs, int batchSize, int length,
        ReadOnlySpan<T> initialState, ReadOnlySpan<T> warmStart, SolveOptions? options, int layer = 0, bool separateScan = false, T[]? states = null)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        options ??= SolveOptions.Default;
        if (SolverSettings<T>.Cores(options) >= 2)
        {
            Helpers.Nudge();                                                // they poll for work from here on: the checks below use them
        }

        SolveValidation.Check(cell, inputs, batchSize, length, initialState, warmStart, options);
        if (states is not null)
        {
            CheckStates(states, batchSize, length, cell.StateSize, inputs, initialState, warmStart);
        }

        var clock = Stopwatch.StartNew();
        (ISolveEngine<T>? device, SolverSettings<T> settings) = DeviceEngine<T>.TryCreate(cell, options, batchSize, length, layer);
        using ISolveEngine<T> engine = device ?? new CpuEngine<TCell, T>(cell);
        if (device is null)
        {
            settings = SolverSettings<T>.Resolve(options, Backend.Cpu, CellFootprint.Of<TCell, T>(cell), batchSize, length, layer, separateScan);
        }

        if (!settings.EngineChecksInputs)
        {
            SolveValidation.FiniteInputs(inputs, batchSize, length, cell.InputSize, SolverSettings<T>.Cores(options) >= 2);
        }

        if (states is null)
        {
            states = new T[(long)batchSize * length * cell.StateSize];
            Prefault.HugePages(states);
        }

        SequenceTotals[] totals = length > 0
            ? Run(engine, cell, settings, inputs, initialState, warmStart, states, batchSize, length)
            : [.. Enumerable.Range(0, batchSize).Select(_ => SequenceTotals.Empty())];
        clock.Stop();
        return Report(cell, states, batchSize, length, settings, totals, clock.Elapsed);
    }

    /// <summary>A caller's states array: exactly B·T·S values, overlapping none of the solve's other arrays.</summary>
    private static void CheckStates<T>(T[] states, int batchSize, int length, int stateSize, ReadOnlySpan<T> inputs, ReadOnlySpan<T> initialState,
        ReadOnlySpan<T> warmStart)
    {
        long expected = (long)batchSize * length * stateSize;
        if (states.LongLength != expected)
        {
            throw new ArgumentException(
                $"states: {states.LongLength} values, expected batch·length·state = {batchSize}·{length}·{stateSize} = {expected}.", nameof(states));
        }

        Span<T> span = states;
        string? overlapped = span.Overlaps(inputs) ? "inputs" : span.Overlaps(initialState) ? "initial state" : span.Overlaps(warmStart) ? "warm start" : null;
        if (overlapped is not null)
        {
            throw new ArgumentException($"states: the array the states are written to overlaps the {overlapped}; give a separate array.", nameof(states));
        }
    }

    /// <summary>
    /// Groups of sequences, each in windows of steps, as the settings allow. After each piece, the sequences the method
    /// failed on are evaluated by the CPU's loop from the same starting states (when the fallback applies); a sequence that
    /// still failed stops there, and its later states are NaN, never reported as solved.
    /// </summary>
    private static SequenceTotals[] Run<TCell, T>(ISolveEngine<T> engine, TCell cell, SolverSettings<T> settings, ReadOnlySpan<T> inputs,
        ReadOnlySpan<T> initialState, ReadOnlySpan<T> warmStart, T[] states, int batchSize, int length)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize;
        var totals = new SequenceTotals[batchSize];
        for (int b = 0; b < batchSize; b++)
        {
            totals[b] = new SequenceTotals();
        }

        bool fallback = settings.Fallback && settings.Method != SolveMethod.Sequential;
        using CpuEngine<TCell, T>? loop = fallback && engine.Device != ComputeDevice.Cpu ? new CpuEngine<TCell, T>(cell) : null;
        ISolveEngine<T> loopEngine = loop ?? engine;
        SolverSettings<T> loopSettings = settings.WithMethod(SolveMethod.Sequential);
        var outcomes = new SequenceOutcome[settings.Group];
        for (int b0 = 0; b0 < batchSize; b0 += settings.Group)
        {
            int count = Math.Min(settings.Group, batchSize - b0);
            for (int t0 = 0, w = 0; t0 < length; t0 += settings.Window, w++)
            {
                settings.CancellationToken.ThrowIfCancellationRequested();
                int[] live = [.. Enumerable.Range(b0, count).Where(b => !totals[b].Stopped)];
                if (live.Length == 0)
                {
                    break;
                }

                var piece = new Piece(live, t0, Math.Min(settings.Window, length - t0), length, w);
                Span<SequenceOutcome> done = outcomes.AsSpan(0, live.Length);
                engine.Solve(piece, inputs, Starts(piece, initialState, states, s), warmStart, states, settings, done);
                if (settings.EngineChecksInputs && !AllConverged(done))
                {
                    // The loop stops a sequence at a non-finite input, or at a state, before it has read the rest: an input
                    // that is not finite anywhere is the caller's error, reported as the scan up front would have.
                    SolveValidation.FiniteInputs(inputs, batchSize, length, cell.InputSize, settings.MaxDegreeOfParallelism >= 2);
                }
                var failed = new List<int>();
                for (int q = 0; q < live.Length; q++)
                {
                    totals[live[q]].Add(done[q]);
                    if (fallback && done[q].Status != SolveStatus.Converged)
                    {
                        failed.Add(q);
                    }
                }

                if (failed.Count > 0)
                {
                    // The method failed on these sequences: the loop evaluates them instead, from the same starting states.
                    var again = new Piece([.. failed.Select(q => live[q])], t0, piece.Steps, length, w);
                    var redone = new SequenceOutcome[failed.Count];
                    loopEngine.Solve(again, inputs, Starts(again, initialState, states, s), default, states, loopSettings, redone);
                    for (int i = 0; i < failed.Count; i++)
                    {
                        SequenceOutcome first = done[failed[i]];
                        string reason = SolveMessages.Describe(first.Status, settings, first.Iterations, first.MaxResidual, piece.Steps, 1, 0, first.FailedAt,
                            first.Message, 0, null);
                        totals[again.Sequences[i]].FellBack(redone[i], reason);
                    }
                }

                foreach (int b in live)
                {
                    totals[b].Fold();
                    if (totals[b].Last.Status != SolveStatus.Converged)
                    {
                        // No later window can start from a state that is not a solution: mark them as not computed.
                        states.AsSpan((int)((((long)b * length) + t0 + piece.Steps) * s), (length - t0 - piece.Steps) * s).Fill(T.NaN);
                        totals[b].Stopped = true;
                    }
                }
            }
        }

        return totals;
    }

    private static bool AllConverged(ReadOnlySpan<SequenceOutcome> outcomes)
    {
        foreach (SequenceOutcome o in outcomes)
        {
            if (o.Status != SolveStatus.Converged)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Each sequence's state before the piece's window: h0 (or empty for zeros) at step 0, else the state the window before ended on.</summary>
    private static ReadOnlySpan<T> Starts<T>(Piece piece, ReadOnlySpan<T> initialState, T[] states, int s)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (piece.FirstStep == 0 && initialState.IsEmpty)
        {
            return default;
        }

        var starts = new T[piece.Sequences.Length * s];
        for (int q = 0; q < piece.Sequences.Length; q++)
        {
            ReadOnlySpan<T> from = piece.FirstStep == 0
                ? initialState.Slice(piece.Sequences[q] * s, s)
                : states.AsSpan((int)piece.Offset(q, s) - s, s);
            from.CopyTo(starts.AsSpan(q * s, s));
        }

        return starts;
    }

    private static SolveResult<T> Report<TCell, T>(TCell cell, T[] states, int batchSize, int length, in SolverSettings<T> settings,
        SequenceTotals[] totals, TimeSpan elapsed)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int iterations = 0, historyLength = 0, fallbacks = 0, windows = 1;
        double maxResidual = 0;
        SolveStatus status = SolveStatus.Converged;
        int failedSequence = -1, failedAt = -1;
        string? detail = null, reason = null;
        bool statesChecked = true;
        for (int b = 0; b < totals.Length; b++)
        {
            SequenceTotals o = totals[b];
            iterations = Math.Max(iterations, o.Iterations);
            historyLength = Math.Max(historyLength, o.History.Count);
            maxResidual = double.IsNaN(o.MaxResidual) || double.IsNaN(maxResidual) ? double.NaN : Math.Max(maxResidual, o.MaxResidual);
            fallbacks += o.Fallbacks;
            reason ??= o.FallbackReason;
            windows = Math.Max(windows, o.Windows);
            statesChecked &= o.Checked;
            if (o.Last.Status != SolveStatus.Converged && (status == SolveStatus.Converged || o.Last.Status == SolveStatus.Diverged))
            {
                status = o.Last.Status;
                failedSequence = b;
                failedAt = o.Last.FailedAt;
                detail = o.Last.Message;
            }
        }

        // Each sequence's history, padded with its final value, then the maximum over the batch at each iteration.
        var history = new double[historyLength];
        foreach (SequenceTotals o in totals)
        {
            for (int k = 0; k < historyLength && o.History.Count > 0; k++)
            {
                double r = o.History[Math.Min(k, o.History.Count - 1)];
                history[k] = double.IsNaN(r) || double.IsNaN(history[k]) ? double.NaN : Math.Max(history[k], r);
            }
        }

        string message = SolveMessages.Describe(status, settings, iterations, maxResidual, length, batchSize, failedSequence, failedAt, detail, fallbacks, reason);
        return new SolveResult<T>(states, batchSize, length, cell.StateSize, cell.OutputSize, settings.Method, iterations, status,
            message, history, maxResidual, elapsed, null, fallbacks, reason, windows, parallelCheck: settings.MaxDegreeOfParallelism >= 2,
            statesChecked: statesChecked)
        {
            Device = settings.Device,
        };
    }

    /// <summary>One sequence's outcomes over its windows: iterations and history add up, the residual is the largest.</summary>
    private sealed class SequenceTotals
    {
        public int Iterations;
        public readonly List<double> History = [];
        public double MaxResidual;
        public int Fallbacks;
        public string? FallbackReason;
        public int Windows;
        public bool Stopped;

        /// <summary>Every window's returned states were checked finite by the engine that stored them (<see cref="SequenceOutcome.Checked"/>).</summary>
        public bool Checked = true;
        public SequenceOutcome Last = new(0, SolveStatus.Converged, [], 0.0, -1);

        public static SequenceTotals Empty() => new() { Windows = 1 };

        public void Add(SequenceOutcome outcome)
        {
            Windows++;
            Iterations += outcome.Iterations;
            History.AddRange(outcome.ResidualHistory);
            Last = outcome;
        }

        /// <summary>The loop's outcome replaces the failed method's for this window; its iterations and history stay counted.</summary>
        public void FellBack(SequenceOutcome loop, string reason)
        {
            Fallbacks++;
            FallbackReason ??= reason;
            Last = loop;
        }

        /// <summary>The window is settled: the residual of the states it returned joins the sequence's.</summary>
        public void Fold()
        {
            MaxResidual = double.IsNaN(Last.MaxResidual) || double.IsNaN(MaxResidual) ? double.NaN : Math.Max(MaxResidual, Last.MaxResidual);
            Checked &= Last.Checked && Last.Status == SolveStatus.Converged;
        }
    }
}
