
namespace DeerSharp;

/// <summary>
/// What every result promises, decided once (docs/robustness.md, "The contract"). Solves, stacks, windows, fallbacks,
/// the GPU backend, ODEs and gradients all build their results through these checks, so no path can report success on
/// states that were not verified.
/// </summary>
internal static class ResultContract
{
    /// <summary>
    /// "Converged" holds only for finite states whose residual was computed (a finite number, 0 for the loop, whose states
    /// are f of the one before by construction). Says what broke otherwise. <paramref name="statesChecked"/>: the engine
    /// checked every state as it stored it (the sequential loop does, <see cref="Engines.SequenceOutcome.Checked"/>), so
    /// they are not scanned a second time: the race's LSTM B = 16 run writes 17 MB of states, and took 0.86-0.89 of its
    /// time without this second scan (docs/benchmarks.md, fifth round).
    /// </summary>
    public static bool ConvergedHolds<T>(ReadOnlySpan<T> states, double maxResidual, out string? broken, bool parallel = false, bool statesChecked = false)
        where T : IFloatingPointIeee754<T>
    {
        if (!double.IsFinite(maxResidual))
        {
            broken = "The residual of the returned states is not a finite number, so they cannot be reported as converged.";
            return false;
        }

        int i = statesChecked ? -1 : NonFinite.IndexOf(states, parallel);
        if (i >= 0)
        {
            broken = $"State value {i} is NaN or infinite, so the states cannot be reported as converged.";
            return false;
        }

        broken = null;
        return true;
    }

    /// <summary>The status an ODE result reports: it meets its error target only if an error estimate exists and is ≤ 1.</summary>
    public static Ode.OdeStatus OdeStatus(Ode.OdeStatus solved, double errorEstimate, bool errorControlled)
    {
        if (solved != Ode.OdeStatus.Converged)
        {
            return solved;
        }

        if (!errorControlled || double.IsNaN(errorEstimate))
        {
            return Ode.OdeStatus.ErrorNotControlled;
        }

        return errorEstimate <= 1 ? Ode.OdeStatus.Converged : Ode.OdeStatus.AccuracyNotReached;
    }
}
