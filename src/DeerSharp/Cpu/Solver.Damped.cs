using System.Globalization;
using DeerSharp.Engines;

namespace DeerSharp.Cpu;

internal static partial class Solver
{
    /// <summary>λ beyond this means no step lowers the residual: the damped iteration has stalled.</summary>
    private const double MaximumDamping = 1e16;

    /// <summary>
    /// quasi-ELK (reference §6): Levenberg-Marquardt on r(h) = h_t - f(h_{t-1}) with the Jacobian's diagonal. Each step
    /// minimises Σ_t |r_t + δ_t - d_t ⊙ δ_{t-1}|² + λ Σ_t |δ_t|², which per state channel is the symmetric positive definite
    /// tridiagonal system (1 + λ + d_{t+1}²) δ_t - d_t δ_{t-1} - d_{t+1} δ_{t+1} = -(r_t - d_{t+1} r_{t+1}), solved by the Thomas
    /// algorithm (sequential in t, all channels at once). λ → 0 gives the quasi-DEER step exactly; λ adapts: ×0.3 after a
    /// step that lowers Σ|r|², ×10 and retry after one that does not.
    /// </summary>
    private static SequenceOutcome SolveDamped<TCell, T>(in TCell cell, SequenceWorkspace<T> ws, int length, ReadOnlySpan<T> warmStart,
        in SolverSettings<T> settings, int sequence, int window)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize, count = length * s;
        InitialIterate(ws, length, s, warmStart, settings);
        var history = new List<double>();
        var watch = new ConvergenceWatch();
        IterationPolicy policy = settings.Iterations(sequence, window);
        var (max, within, finite) = EvaluateAll(cell, ws, length, JacobianMode.Diagonal, settings, newtonTerm: false);
        history.Add(max);
        policy.Report?.Invoke(0, 0, max);
        Verdict verdict = watch.Judge(new IterateResidual(max, within, finite), 0, settings.MaxIterations, policy.AbsoluteTolerance, policy.Single);
        if (verdict != Verdict.Continue)
        {
            return watch.Outcome(verdict, 0, [.. history], max);
        }

        double merit = Residual(ws.States, ws.Evaluations, ws.Residual, count);
        Array.Copy(ws.Jacobians, ws.Diagonal, count);
        double lambda = double.CreateTruncating(settings.InitialDamping);
        int accepted = 0;
        while (true)
        {
            policy.Cancellation.ThrowIfCancellationRequested();
            TridiagonalStep(ws.Residual, ws.Diagonal, T.CreateTruncating(lambda), ws.Sweep, ws.Step, length, s);
            Array.Copy(ws.States, ws.Backup, count);
            for (int i = 0; i < count; i++)
            {
                ws.States[i] += ws.Step[i];
            }

            var (candidateMax, candidateWithin, candidateFinite) = EvaluateAll(cell, ws, length, JacobianMode.Diagonal, settings, newtonTerm: false);
            double candidateMerit = candidateFinite ? Residual(ws.States, ws.Evaluations, ws.Step, count) : double.PositiveInfinity;
            // Accept a step that lowers Σ|r|² (the Levenberg-Marquardt merit) or max|r| (what the stopping test measures):
            // undamped steps converge front to back, lowering the worst residual while Σ|r|² can rise for a while.
            if (candidateFinite && (candidateMerit < merit || candidateMax < max))
            {
                // Accept: the candidate's residual (in Step) and diagonal become the current ones; damp less.
                accepted++;
                (ws.Residual, ws.Step) = (ws.Step, ws.Residual);
                Array.Copy(ws.Jacobians, ws.Diagonal, count);
                merit = candidateMerit;
                max = candidateMax;
                history.Add(max);
                policy.Report?.Invoke(0, accepted, max);
                verdict = watch.Judge(new IterateResidual(max, candidateWithin, true), accepted, settings.MaxIterations, policy.AbsoluteTolerance, policy.Single);
                if (verdict != Verdict.Continue)
                {
                    return watch.Outcome(verdict, accepted, [.. history], max);
                }

                lambda = Math.Max(lambda * 0.3, 1e-12);
            }
            else
            {
                // Reject: back to the accepted iterate, damp more and retry from it.
                Array.Copy(ws.Backup, ws.States, count);
                lambda *= 10;
                if (lambda > MaximumDamping)
                {
                    return new SequenceOutcome(accepted, SolveStatus.MaxIterationsReached, [.. history], max, -1,
                        Message: string.Create(CultureInfo.InvariantCulture, $"no step lowered Σ|r|² below {merit:G3} (damping grew past {MaximumDamping:G1})"));
                }
            }
        }
    }

    /// <summary>r = h - f into <paramref name="residual"/>; returns Σ r² (in double, so float residuals cannot overflow it).</summary>
    private static double Residual<T>(T[] states, T[] evaluations, T[] residual, int count)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        double sum = 0;
        for (int i = 0; i < count; i++)
        {
            T r = states[i] - evaluations[i];
            residual[i] = r;
            double v = double.CreateTruncating(r);
            sum += v * v;
        }

        return sum;
    }

    /// <summary>Solves the damped tridiagonal systems of every channel at once; the step δ goes to <paramref name="step"/>.</summary>
    private static void TridiagonalStep<T>(T[] r, T[] d, T lambda, T[] sweep, T[] step, int length, int s)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int t = 0; t < length; t++)
        {
            bool hasNext = t + 1 < length;
            for (int i = 0; i < s; i++)
            {
                int k = t * s + i;
                T dNext = hasNext ? d[k + s] : T.Zero;
                T rNext = hasNext ? r[k + s] : T.Zero;
                T diagonal = T.One + lambda + dNext * dNext;
                T below = t > 0 ? -d[k] : T.Zero;                       // coefficient of δ_{t-1}
                T rhs = -(r[k] - dNext * rNext);
                T cPrevious = t > 0 ? sweep[k - s] : T.Zero, ePrevious = t > 0 ? step[k - s] : T.Zero;
                T pivot = diagonal - below * cPrevious;                  // > 0: the system is symmetric positive definite
                sweep[k] = -dNext / pivot;                                 // coefficient of δ_{t+1}, over the pivot
                step[k] = (rhs - below * ePrevious) / pivot;
            }
        }

        for (int t = length - 2; t >= 0; t--)
        {
            for (int i = 0; i < s; i++)
            {
                int k = t * s + i;
                step[k] -= sweep[k] * step[k + s];
            }
        }
    }
}
