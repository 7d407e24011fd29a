using System.Numerics;
using DeerSharp.Cells;
using DeerSharp.Scan;

namespace DeerSharp.Solvers;

internal static partial class Solver
{
    private const int MinimumEvaluationChunk = 256;

    private enum Linearisation
    {
        /// <summary>f only: Picard, or a final check after which no update follows.</summary>
        None,

        /// <summary>f and diag(J): quasi-DEER.</summary>
        Diagonal,

        /// <summary>f and J: DEER.</summary>
        Dense,
    }

    /// <summary>
    /// DEER, quasi-DEER and Picard (reference §3-5). Each pass evaluates f (and J) at the current iterate for all t in
    /// parallel; the residual of that iterate falls out of the same pass. The loop stops on a residual within tolerance,
    /// so convergence is only ever declared for an iterate whose residual was computed. Otherwise it updates:
    /// Picard h_t ← f_t; Newton solves h_t = J_t h_{t-1} + (f_t - J_t h^(k)_{t-1}) by one scan.
    /// </summary>
    private static SequenceOutcome SolveIterative<TCell, T>(in TCell cell, SequenceWorkspace<T> ws, int length, ReadOnlySpan<T> warmStart,
        in SolverSettings<T> settings)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize;
        Span<T> states = ws.States.AsSpan(0, length * s);
        if (!warmStart.IsEmpty)
        {
            warmStart.CopyTo(states);
        }
        else if (settings.InitialGuess == InitialGuess.BroadcastInitialState)
        {
            for (int t = 0; t < length; t++)
            {
                ws.InitialState.AsSpan(0, s).CopyTo(states.Slice(t * s, s));
            }
        }
        else
        {
            states.Clear();
        }

        Linearisation update = settings.Method switch
        {
            SolveMethod.Deer => Linearisation.Dense,
            SolveMethod.QuasiDeer => Linearisation.Diagonal,
            _ => Linearisation.None,
        };

        var history = new List<double>();
        for (int k = 0; ; k++)
        {
            bool last = k >= settings.MaxIterations;
            var (max, within, finite) = EvaluateAll(cell, ws, length, last ? Linearisation.None : update, settings);
            history.Add(max);
            if (!finite)
            {
                return new SequenceOutcome(k, SolveStatus.Diverged, [.. history], max, k);
            }

            if (within)
            {
                return new SequenceOutcome(k, SolveStatus.Converged, [.. history], max, -1);
            }

            if (last)
            {
                return new SequenceOutcome(k, SolveStatus.MaxIterationsReached, [.. history], max, -1);
            }

            if (update == Linearisation.None)
            {
                Array.Copy(ws.Evaluations, ws.States, length * s);
            }
            else
            {
                LinearRecurrence.Solve(ws.Jacobians, ws.Evaluations, ws.InitialState, ws.States, length, s,
                    dense: update == Linearisation.Dense, settings.MaxDegreeOfParallelism, ws.Scan);
            }
        }
    }

    /// <summary>Chunks for a parallel evaluation pass: a few per core for balance, none shorter than the minimum.</summary>
    internal static int EvaluationChunks(int length, int maxDegreeOfParallelism) =>
        maxDegreeOfParallelism <= 1 || length < 2 * MinimumEvaluationChunk
            ? 1
            : Math.Min(4 * maxDegreeOfParallelism, length / MinimumEvaluationChunk);

    /// <summary>One parallel pass over all t: f, J (as asked), the residual reduction, and b_t = f_t - J_t h_{t-1} for Newton.</summary>
    private static (double Max, bool Within, bool Finite) EvaluateAll<TCell, T>(TCell cell, SequenceWorkspace<T> ws, int length,
        Linearisation mode, SolverSettings<T> settings)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int chunks = EvaluationChunks(length, settings.MaxDegreeOfParallelism);
        if (chunks == 1)
        {
            EvaluateRange(cell, ws, 0, length, 0, mode, settings);
        }
        else
        {
            var parallel = new ParallelOptions { MaxDegreeOfParallelism = settings.MaxDegreeOfParallelism };
            Parallel.For(0, chunks, parallel, k =>
            {
                (int start, int end) = LinearRecurrence.ChunkRange(k, chunks, length);
                EvaluateRange(cell, ws, start, end, k, mode, settings);
            });
        }

        double max = 0;
        bool within = true, finite = true;
        for (int k = 0; k < chunks; k++)
        {
            max = Math.Max(max, ws.ChunkMax[k]);
            within &= ws.ChunkWithin[k];
            finite &= ws.ChunkFinite[k];
        }

        return (finite ? max : double.NaN, within && finite, finite);
    }

    private static void EvaluateRange<TCell, T>(TCell cell, SequenceWorkspace<T> ws, int start, int end, int chunk,
        Linearisation mode, SolverSettings<T> settings)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize;
        int p = cell.ProjectionSize;
        int w = Math.Max(1, cell.WorkspaceSize);
        Span<T> scratch = ws.CellScratch.AsSpan(chunk * w, w);
        T atol = settings.AbsoluteTolerance, rtol = settings.RelativeTolerance;
        T max = T.Zero;
        bool within = true, finite = true;
        for (int t = start; t < end; t++)
        {
            ReadOnlySpan<T> previous = t == 0 ? ws.InitialState.AsSpan(0, s) : ws.States.AsSpan((t - 1) * s, s);
            ReadOnlySpan<T> projection = ws.Projections.AsSpan(t * p, p);
            ReadOnlySpan<T> current = ws.States.AsSpan(t * s, s);
            Span<T> f = ws.Evaluations.AsSpan(t * s, s);
            switch (mode)
            {
                case Linearisation.Dense:
                    cell.EvaluateJacobian(previous, projection, f, ws.Jacobians.AsSpan(t * s * s, s * s), scratch);
                    break;
                case Linearisation.Diagonal:
                    cell.EvaluateJacobianDiagonal(previous, projection, f, ws.Jacobians.AsSpan(t * s, s), scratch);
                    break;
                default:
                    cell.Evaluate(previous, projection, f, scratch);
                    break;
            }

            for (int i = 0; i < s; i++)
            {
                T r = T.Abs(current[i] - f[i]);
                // NaN compares false everywhere, so test finiteness explicitly: r is non-finite if either side is.
                if (!T.IsFinite(r))
                {
                    finite = false;
                }
                else
                {
                    max = T.Max(max, r);
                    within &= r <= atol + rtol * T.Abs(f[i]);
                }
            }

            if (mode == Linearisation.Dense)
            {
                ReadOnlySpan<T> jt = ws.Jacobians.AsSpan(t * s * s, s * s);
                for (int i = 0; i < s; i++)
                {
                    f[i] -= Linear.Dot(jt.Slice(i * s, s), previous);
                }
            }
            else if (mode == Linearisation.Diagonal)
            {
                ReadOnlySpan<T> dt = ws.Jacobians.AsSpan(t * s, s);
                for (int i = 0; i < s; i++)
                {
                    f[i] -= dt[i] * previous[i];
                }
            }
        }

        ws.ChunkMax[chunk] = double.CreateTruncating(max);
        ws.ChunkWithin[chunk] = within;
        ws.ChunkFinite[chunk] = finite;
    }
}
