using System.Runtime.CompilerServices;
using System.Numerics;
using DeerSharp.Cells;

namespace DeerSharp.Solvers;

internal static partial class Solver
{
    /// <summary>Steps whose input projections the loop computes at a time (one matrix product per chunk).</summary>
    internal const int SequentialChunk = 2048;

    /// <summary>
    /// The reference loop h_t = f(h_{t-1}, x_t), with the input projection done a chunk of steps at a time (one matrix
    /// product per chunk, into a reused buffer). Each state is f of the one before by construction, so the fixed-point
    /// residual is zero exactly when every state is finite, which is checked per step.
    /// </summary>
    private static SequenceOutcome SolveSequential<TCell, T>(in TCell cell, SequenceWorkspace<T> ws, ReadOnlySpan<T> inputs, int length, Span<T> states,
        int maxDegreeOfParallelism, CancellationToken cancellation)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int d = cell.InputSize;
        for (int t0 = 0; t0 < length; t0 += SequentialChunk)
        {
            cancellation.ThrowIfCancellationRequested();
            int count = Math.Min(SequentialChunk, length - t0);
            Project(cell, inputs.Slice(t0 * d, count * d), ws.Projections, count, maxDegreeOfParallelism);
            int failed = RunLoop(cell, ws, t0, count, states);
            if (failed >= 0)
            {
                return new SequenceOutcome(0, SolveStatus.Diverged, [], double.NaN, failed);
            }
        }

        return new SequenceOutcome(0, SolveStatus.Converged, [], 0.0, -1);
    }

    /// <summary>Steps t0 .. t0 + count − 1 from the state before t0; returns the first step that is not finite, or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int RunLoop<TCell, T>(in TCell cell, SequenceWorkspace<T> ws, int t0, int count, Span<T> states)
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
            cell.Evaluate(previous, ws.Projections.AsSpan(i * p, p), current, scratch);
            if (!AllFinite<T>(current))
            {
                return t0 + i;
            }

            previous = current;
        }

        return -1;
    }

    private static bool AllFinite<T>(ReadOnlySpan<T> values)
        where T : IFloatingPointIeee754<T>
    {
        foreach (T v in values)
        {
            if (!T.IsFinite(v))
            {
                return false;
            }
        }

        return true;
    }
}
