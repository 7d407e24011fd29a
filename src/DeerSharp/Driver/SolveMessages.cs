using System.Globalization;
using DeerSharp.Engines;

namespace DeerSharp.Driver;

/// <summary>The one table of what a solve tells its user: every path's <see cref="SolveResult{T}.Message"/> comes from here.</summary>
internal static class SolveMessages
{
    /// <summary>The message for a solve (or one window of one sequence) that ended with <paramref name="status"/>.</summary>
    /// <param name="status">How it ended.</param>
    /// <param name="settings">The method, tolerances and device it ran with.</param>
    /// <param name="iterations">Updates applied.</param>
    /// <param name="residual">The residual of the returned states.</param>
    /// <param name="length">T.</param>
    /// <param name="batchSize">B.</param>
    /// <param name="failedSequence">The sequence the status comes from.</param>
    /// <param name="failedAt">The iteration (or, for the loop, the step) of a divergence.</param>
    /// <param name="detail">What diverged, when the engine said (a runaway residual).</param>
    /// <param name="fallbacks">Sequences or windows the loop evaluated instead.</param>
    /// <param name="reason">The first failure's own message, when there were fallbacks.</param>
    public static string Describe<T>(SolveStatus status, in SolverSettings<T> settings, int iterations, double residual, int length,
        int batchSize, int failedSequence, int failedAt, string? detail, int fallbacks, string? reason)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var c = CultureInfo.InvariantCulture;
        string where = batchSize > 1 ? string.Create(c, $" (sequence {failedSequence})") : "";
        string device = settings.Device == ComputeDevice.Cpu ? "" : $" on the {settings.Device} backend";
        string tolerance = string.Create(c, $"atol {double.CreateTruncating(settings.AbsoluteTolerance):G3} + rtol {double.CreateTruncating(settings.RelativeTolerance):G3}·|f|");
        string method = settings.Method.ToString();
        if (status == SolveStatus.Converged && fallbacks > 0)
        {
            return string.Create(c,
                $"{method} did not converge{device} on {fallbacks} sequence(s) or window(s), which the CPU's sequential loop evaluated instead ({reason}) Every returned state satisfies the recurrence: residual {residual:G3}.");
        }

        return (status, settings.Method) switch
        {
            (SolveStatus.Converged, SolveMethod.Sequential) when settings.Device == ComputeDevice.Cpu =>
                "Evaluated sequentially: every state is f of the one before by construction, and every state was checked to be finite.",
            (SolveStatus.Converged, _) => length == 0
                ? "Nothing to solve: the sequences are empty."
                : string.Create(c, $"Converged{device}: the fixed-point residual of the returned states, {residual:G3}, is within {tolerance}."),
            (SolveStatus.Diverged, SolveMethod.Sequential) when settings.Device == ComputeDevice.Cpu => string.Create(c,
                $"The sequential evaluation produced NaN or infinity at step {failedAt}{where}: the recurrence itself overflows for these weights and inputs."),
            (SolveStatus.Diverged, _) => string.Create(c,
                $"Diverged{device}: {detail ?? "an iterate became NaN or infinite"} at iteration {failedAt}{where}. Newton iterations can diverge on non-contractive recurrences; use SolveMethod.QuasiElk (damped), SolveMethod.Sequential, or FallbackPolicy.Sequential."),
            (_, SolveMethod.Sequential) => string.Create(c,
                $"The{device} loop gave states whose residual, {residual:G3}{where}, is above {tolerance} (rounding on the device)."),
            _ => string.Create(c,
                $"Not converged{device}: after {iterations} iteration(s) the fixed-point residual is {residual:G3}{where}, above {tolerance}. Raise MaxIterations{(settings.Method == SolveMethod.QuasiElk ? "" : $" (every undamped method is exact after T = {length} iterations)")}, loosen the tolerances, or use {Alternatives(settings.Method)}."),
        };
    }

    /// <summary>What to try instead of <paramref name="failed"/>: never the method that just failed.</summary>
    private static string Alternatives(SolveMethod failed) => failed switch
    {
        SolveMethod.Deer => "SolveMethod.QuasiElk (damped, never blows up) or SolveMethod.Sequential",
        SolveMethod.QuasiElk => "SolveMethod.Deer (quadratic convergence where it converges) or SolveMethod.Sequential",
        _ => "SolveMethod.Deer (quadratic convergence) or SolveMethod.Sequential",
    };
}
