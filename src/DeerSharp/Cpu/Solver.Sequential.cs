using DeerSharp.Engines;

namespace DeerSharp.Cpu;

internal static partial class Solver
{
    /// <summary>Steps whose input projections the loop computes at a time (one matrix product per chunk).</summary>
    internal const int SequentialChunk = 2048;

    /// <summary>
    /// The reference loop h_t = f(h_{t-1}, x_t), with the input projection done a chunk of steps at a time (one matrix
    /// product per chunk, into a reused buffer). Each state is f of the one before by construction, so the fixed-point
    /// residual is zero exactly when every state is finite, which is checked on every state of each chunk.
    /// The projection of a chunk runs on this thread unless the inputs are much wider than the state (d > 4·S, where the
    /// projection dominates the step; that threshold is a guess, not a measurement). Measured on the 2-core VM
    /// (2026-12-02, GRU and LSTM at d = n = 32, interleaved rounds): splitting each chunk's projection over both cores was
    /// no faster than doing it inline, and projecting the next chunk on a pool thread while the loop ran was slower (the
    /// pool thread often started hundreds of microseconds late, and the loop waited on it).
    /// </summary>
    private static unsafe SequenceOutcome SolveSequential<TCell, T>(in TCell cell, SequenceWorkspace<T> ws, ReadOnlySpan<T> inputs, int length, Span<T> states,
        int maxDegreeOfParallelism, CancellationToken cancellation)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // With a second core, the output's fresh pages are faulted in beside the loop (Prefault); the buffer stays pinned
        // until that is done.
        fixed (T* output = states)
        {
            Task? prefault = maxDegreeOfParallelism >= 2 ? Prefault.Start((nint)output, (long)states.Length * sizeof(T)) : null;
            try
            {
                return RunChunks(cell, ws, inputs, length, states, maxDegreeOfParallelism, cancellation);
            }
            finally
            {
                prefault?.Wait(CancellationToken.None);
            }
        }
    }

    private static SequenceOutcome RunChunks<TCell, T>(in TCell cell, SequenceWorkspace<T> ws, ReadOnlySpan<T> inputs, int length, Span<T> states,
        int maxDegreeOfParallelism, CancellationToken cancellation)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int d = cell.InputSize, p = cell.ProjectionSize;
        int projectionParallelism = d > 4 * cell.StateSize ? maxDegreeOfParallelism : 1;
        for (int t0 = 0; t0 < length; t0 += SequentialChunk)
        {
            cancellation.ThrowIfCancellationRequested();
            int count = Math.Min(SequentialChunk, length - t0);
            Project(cell, inputs.Slice(t0 * d, count * d), ws.Projections, count, projectionParallelism);
            int failed = RunLoop(cell, ws, ws.Projections.AsSpan(0, count * p), t0, count, states);
            if (failed >= 0)
            {
                return new SequenceOutcome(0, SolveStatus.Diverged, [], double.NaN, failed);
            }
        }

        return new SequenceOutcome(0, SolveStatus.Converged, [], 0.0, -1);
    }

    /// <summary>
    /// Steps t0 .. t0 + count − 1 from the state before t0; returns the first step that is not finite, or -1. The chunk's
    /// states are checked once, after the loop, in one SIMD pass: a scalar check per step cost about a tenth of a GRU
    /// step at n = 32. Steps after a non-finite one are computed and then reported as the failure they follow.
    /// </summary>
    private static int RunLoop<TCell, T>(in TCell cell, SequenceWorkspace<T> ws, ReadOnlySpan<T> projections, int t0, int count, Span<T> states)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize;
        int p = cell.ProjectionSize;
        Span<T> scratch = ws.CellScratch.AsSpan(0, cell.WorkspaceSize);
        ReadOnlySpan<T> previous = t0 == 0 ? ws.InitialState.AsSpan(0, s) : states.Slice((t0 - 1) * s, s);
        for (int i = 0; i < count; i++)
        {
            Span<T> current = states.Slice((t0 + i) * s, s);
            cell.Evaluate(previous, projections.Slice(i * p, p), current, scratch);
            previous = current;
        }

        int bad = FirstNonFinite<T>(states.Slice(t0 * s, count * s));
        return bad < 0 ? -1 : t0 + bad / s;
    }

    /// <summary>The index of the first value that is not finite, or -1.</summary>
    internal static int FirstNonFinite<T>(ReadOnlySpan<T> values)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // x·0 is ±0 for finite x and NaN for ±∞ or NaN, so one multiply-add per lane tells whether any value is not finite.
        int v = Vector<T>.Count, i = 0;
        Vector<T> sum = Vector<T>.Zero;
        for (; i + v <= values.Length; i += v)
        {
            sum += new Vector<T>(values[i..]) * Vector<T>.Zero;
        }

        int from = Vector.EqualsAll(sum, Vector<T>.Zero) ? i : 0;         // all the vector part is finite: only the tail is left
        for (i = from; i < values.Length; i++)
        {
            if (!T.IsFinite(values[i]))
            {
                return i;
            }
        }

        return -1;
    }
}
