using System.Globalization;

namespace DeerSharp.Engines;

/// <summary>One iterate's fixed-point residual as an engine measured it.</summary>
/// <param name="Max">max |h − f| over the sequence (NaN when not finite).</param>
/// <param name="Within">Every |h − f| ≤ atol + rtol·|f|.</param>
/// <param name="Finite">Every |h − f| is a finite number.</param>
internal readonly record struct IterateResidual(double Max, bool Within, bool Finite);

/// <summary>What one checked iterate means for its sequence.</summary>
internal enum Verdict
{
    /// <summary>Not there yet: update and check again.</summary>
    Continue,

    /// <summary>The residual of this iterate is within tolerance: it is the answer.</summary>
    Converged,

    /// <summary>The residual is NaN or infinite.</summary>
    NotFinite,

    /// <summary>The residual ran away towards overflow (<see cref="ConvergenceWatch.Runaway"/>).</summary>
    Runaway,

    /// <summary>The iteration limit is reached with the residual above tolerance.</summary>
    LimitReached,
}

/// <summary>
/// The one iteration verdict (finite, runaway, within tolerance, at the limit), kept per sequence: the CPU's Newton loop,
/// the device's, the damped loops and the ODE's Newton all judge their iterates here.
/// </summary>
internal struct ConvergenceWatch
{
    private double _best;
    private bool _started;

    /// <summary>The smallest residual seen so far.</summary>
    public readonly double Best => _started ? _best : double.PositiveInfinity;

    /// <summary>The verdict on iterate <paramref name="iteration"/>, whose residual is <paramref name="residual"/>.</summary>
    public Verdict Judge(IterateResidual residual, int iteration, int maxIterations, double atol, bool single)
    {
        if (!residual.Finite)
        {
            return Verdict.NotFinite;
        }

        if (Runaway(residual.Max, Best, atol, single))
        {
            return Verdict.Runaway;
        }

        _best = Math.Min(Best, residual.Max);
        _started = true;
        return residual.Within ? Verdict.Converged
            : iteration >= maxIterations ? Verdict.LimitReached
            : Verdict.Continue;
    }

    /// <summary>
    /// A residual 10^10 times past the best seen and near overflow (10^18 in float, 10^150 in double) is a run-away
    /// iteration: a few more steps overflow to infinity. Stopping here saves those steps and reports why. Large residuals
    /// short of that are not fatal: Newton's lower-triangular structure keeps fixing one more leading state per iteration
    /// however wrong the later ones are, and exact DEER on a non-contractive cell recovers from residuals of 10^16.
    /// </summary>
    public static bool Runaway(double residual, double best, double atol, bool single) =>
        residual > (single ? 1e18 : 1e150) && residual > 1e10 * (best + atol);

    /// <summary>The status a final verdict reports.</summary>
    public static SolveStatus Status(Verdict verdict) => verdict switch
    {
        Verdict.Converged => SolveStatus.Converged,
        Verdict.LimitReached => SolveStatus.MaxIterationsReached,
        Verdict.NotFinite or Verdict.Runaway => SolveStatus.Diverged,
        _ => throw new ArgumentOutOfRangeException(nameof(verdict), verdict, "Continue is not a final verdict."),
    };

    /// <summary>The outcome of a sequence whose iterate <paramref name="iteration"/> got the final verdict <paramref name="verdict"/>.</summary>
    public readonly SequenceOutcome Outcome(Verdict verdict, int iteration, double[] history, double residual) =>
        new(iteration, Status(verdict), history, residual, verdict is Verdict.NotFinite or Verdict.Runaway ? iteration : -1,
            Message: verdict == Verdict.Runaway ? string.Create(CultureInfo.InvariantCulture, $"the residual grew from {Best:G3} to {residual:G3}") : null);
}

/// <summary>The rules one iteration loop runs by, from <see cref="SolverSettings{T}.Iterations"/> (or the ODE's options).</summary>
/// <param name="MaxIterations">The most updates.</param>
/// <param name="AbsoluteTolerance">atol, for the runaway test.</param>
/// <param name="Single">Whether the element type is float (the runaway test's overflow line).</param>
/// <param name="Report">Receives (sequence of the piece, iteration, residual) after every checked iterate; null for none.</param>
/// <param name="Cancellation">Checked before every iteration.</param>
internal readonly record struct IterationPolicy(int MaxIterations, double AbsoluteTolerance, bool Single, Action<int, int, double>? Report,
    CancellationToken Cancellation);

/// <summary>What Newton's method (or Picard's) iterates on: one sequence, or many independent ones advanced together.</summary>
internal interface INewtonSystem
{
    /// <summary>
    /// Evaluates f at the current iterate of every active sequence, and what the update needs unless this is the
    /// <paramref name="last"/> check; writes each active sequence's residual.
    /// </summary>
    void Linearise(bool last, ReadOnlySpan<bool> active, Span<IterateResidual> residuals);

    /// <summary>Sequence <paramref name="sequence"/> has its final verdict: its current iterate, just checked, is its answer.</summary>
    void Settle(int sequence);

    /// <summary>Moves every active sequence to its next iterate.</summary>
    void Update(ReadOnlySpan<bool> active);
}

/// <summary>
/// The one Newton driver (as the reference code's deer_iteration serves RNNs and ODEs by swapping the linear solve):
/// check the iterate, judge it, update, until every sequence has its verdict. It stops a sequence only on the residual
/// of the iterate it returns, so "converged" always describes the states returned.
/// </summary>
internal static class NewtonIteration
{
    /// <summary>Runs <paramref name="system"/> to a verdict for each of its <paramref name="outcomes"/>.Length sequences.</summary>
    public static void Run<TSystem>(ref TSystem system, in IterationPolicy policy, Span<SequenceOutcome> outcomes)
        where TSystem : INewtonSystem, allows ref struct
    {
        int count = outcomes.Length;
        var active = new bool[count];
        var residuals = new IterateResidual[count];
        var watches = new ConvergenceWatch[count];
        var histories = new List<double>[count];
        for (int q = 0; q < count; q++)
        {
            active[q] = true;
            histories[q] = [];
        }

        for (int k = 0; ; k++)
        {
            policy.Cancellation.ThrowIfCancellationRequested();
            system.Linearise(k >= policy.MaxIterations, active, residuals);
            bool going = false;
            for (int q = 0; q < count; q++)
            {
                if (!active[q])
                {
                    continue;
                }

                IterateResidual r = residuals[q];
                double max = r.Finite ? r.Max : double.NaN;
                histories[q].Add(max);
                policy.Report?.Invoke(q, k, max);
                Verdict verdict = watches[q].Judge(r, k, policy.MaxIterations, policy.AbsoluteTolerance, policy.Single);
                if (verdict == Verdict.Continue)
                {
                    going = true;
                    continue;
                }

                outcomes[q] = watches[q].Outcome(verdict, k, [.. histories[q]], max);
                active[q] = false;
                system.Settle(q);
            }

            if (!going)
            {
                return;
            }

            system.Update(active);
        }
    }
}
