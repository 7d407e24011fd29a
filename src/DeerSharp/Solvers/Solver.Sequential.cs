using System.Runtime.CompilerServices;
using System.Numerics;
using DeerSharp.Cells;

namespace DeerSharp.Solvers;

internal static partial class Solver
{
    /// <summary>
    /// The reference loop h_t = f(h_{t-1}, x_t) with the input projection hoisted out. Each state is f of the one
    /// before by construction, so the fixed-point residual is zero exactly when every state is finite, which is checked per step.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static SequenceOutcome SolveSequential<TCell, T>(in TCell cell, SequenceWorkspace<T> ws, int length, Span<T> states, CancellationToken cancellation)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize;
        int p = cell.ProjectionSize;
        Span<T> scratch = ws.CellScratch.AsSpan(0, cell.WorkspaceSize);
        ReadOnlySpan<T> previous = ws.InitialState.AsSpan(0, s);
        for (int t = 0; t < length; t++)
        {
            if ((t & 4095) == 4095)
            {
                cancellation.ThrowIfCancellationRequested();
            }

            Span<T> current = states.Slice(t * s, s);
            cell.Evaluate(previous, ws.Projections.AsSpan(t * p, p), current, scratch);
            if (!AllFinite<T>(current))
            {
                return new SequenceOutcome(0, SolveStatus.Diverged, [], double.NaN, t);
            }

            previous = current;
        }

        return new SequenceOutcome(0, SolveStatus.Converged, [], 0.0, -1);
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
