using DeerSharp.Engines;
using DeerSharp.Scan;

namespace DeerSharp.Ode;

/// <summary>
/// DEER for ODEs (reference §8) on one sequence: Newton iterations of linearise, discretise by the matrix exponential, scan;
/// then Simpson's-rule error estimates per interval and refinement of the internal grid until they meet atol/rtol.
/// </summary>
/// <remarks>
/// Each iteration linearises f around the iterate y: G_i = ∂f/∂y(y_i, t_i), z_i = f(y_i) − G_i y_i. Interval i gets
/// M_i = ½(G_i + G_{i+1}) Δt_i and c_i = ½(z_i + z_{i+1}) Δt_i and steps the constant linear ODE exactly:
/// y_{i+1} = Φ_i y_i + ψ_i with Φ_i = e^{M_i}, ψ_i = φ₁(M_i) c_i. The residual of the current iterate against those maps is
/// checked first; only if it is too large does the scan produce the next iterate. So "converged" always describes the
/// trajectory returned.
/// </remarks>
internal sealed partial class DeerOde<TField, T>
    where TField : IOdeField<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The Newton residual must sit this far below the accuracy tolerance.</summary>
    private const double NewtonFactor = 1e-2;

    /// <summary>Failed Newton solves that may be retried on a grid twice as fine.</summary>
    private const int MaxRetries = 3;

    /// <summary>Grid refinements before giving up on the tolerance.</summary>
    private const int MaxRefinements = 30;

    private readonly TField _field;
    private readonly OdeProblem<T> _p;
    private readonly bool _quasi;
    private readonly int _n;
    private readonly int _m;
    private readonly Scratch[] _scratch;
    private T[] _jacobians = [];
    private T[] _a = [];
    private T[] _b = [];
    private long _evaluations;
    private int _windows = 1;

    public DeerOde(TField field, OdeProblem<T> problem, bool quasi)
    {
        _field = field;
        _p = problem;
        _quasi = quasi;
        _n = problem.StateSize;
        _m = problem.InputSize;
        _scratch = new Scratch[Math.Max(1, problem.Cores * 4)];
    }

    /// <summary>Solves one sequence, writing y at the requested times into <paramref name="output"/> ([N + 1, n]).</summary>
    public OdeOutcome Solve(ReadOnlySpan<T> y0, ReadOnlySpan<T> guess, Span<T> output, out DeerOdeGrid<T> grid)
    {
        int n = _n;
        grid = UserGrid();
        FillInitialGuess(grid, y0, guess);
        int iterations = 0, refinements = 0, retries = 0;
        while (true)
        {
            var (status, used, residual, windows) = Windowed(grid);
            iterations += used;
            if (status != OdeStatus.Converged)
            {
                if (_p.Options.Adaptive && retries < MaxRetries && 2L * grid.Intervals + 1 <= _p.Options.MaxGridSize)
                {
                    // Even one interval failed: its exponential overflowed or Newton could not settle. Halve every interval.
                    retries++;
                    refinements++;
                    grid = Refine(grid, null, fromScratch: true, y0);
                    continue;
                }

                Copy(grid, output);
                string why = status == OdeStatus.Diverged
                    ? "the Newton iterate became NaN or infinite"
                    : $"the Newton residual was still {residual:G3} after {used} iterations (limit {_p.MaxIterations} per window)";
                return new OdeOutcome(status, $"{Name} failed on a grid of {grid.Times.Length} points, even in windows of one interval: {why}.",
                    iterations, refinements, grid.Times.Length, residual, double.NaN, _evaluations);
            }

            _windows = Math.Max(_windows, windows);
            double[] errors = ErrorEstimates(grid);
            double worst = errors.Length == 0 ? 0 : errors.Max();
            if (worst <= 1 || !_p.Options.Adaptive)
            {
                Copy(grid, output);
                OdeStatus met = ResultContract.OdeStatus(OdeStatus.Converged, worst, errorControlled: true);
                string note = met == OdeStatus.Converged ? ""
                    : $" But the local error estimate is {worst:G3}× the tolerance on this fixed grid (Adaptive is off): the tolerance is not met. Turn Adaptive on, or request more points.";
                return new OdeOutcome(met,
                    $"{Name}'s Newton iteration converged in {iterations} iterations on {grid.Times.Length} points ({refinements} refinements{Windows}).{note}",
                    iterations, refinements, grid.Times.Length, residual, worst, _evaluations);
            }

            long inserted = 0;
            foreach (double e in errors)
            {
                inserted += e > 1 ? Pieces(e) - 1 : 0;
            }

            if (refinements >= MaxRefinements || grid.Times.Length + inserted > _p.Options.MaxGridSize)
            {
                Copy(grid, output);
                return new OdeOutcome(OdeStatus.AccuracyNotReached,
                    $"{Name}'s local error estimate is still {worst:G3}× the tolerance on {grid.Times.Length} points; "
                    + $"meeting it needs about {grid.Times.Length + inserted} (MaxGridSize {_p.Options.MaxGridSize}).",
                    iterations, refinements, grid.Times.Length, residual, worst, _evaluations);
            }

            refinements++;
            grid = Refine(grid, errors, fromScratch: false, y0);
        }
    }

    private string Name => _quasi ? "quasi-DEER" : "DEER";

    private string Windows => _windows > 1 ? $"; at most {_windows} time windows" : "";

    /// <summary>
    /// Newton over the whole grid, or, where it fails, over consecutive time windows, each starting from the previous
    /// one's converged end: a failing window is halved and retried from a fresh guess, down to single intervals. Newton
    /// from a poor guess can diverge over a long horizon (the linearised ODE explodes); over a short window it cannot
    /// stray as far. Every window's residual is checked on its final iterate, so together they check the whole trajectory.
    /// Returns the status, the iterations, the largest final residual and the most windows used.
    /// </summary>
    private (OdeStatus Status, int Iterations, double Residual, int Windows) Windowed(DeerOdeGrid<T> grid)
    {
        int n = _n, k = grid.Intervals, position = 0, length = k, iterations = 0, windows = 0;
        double residual = 0;
        while (position < k)
        {
            int end = (int)Math.Min(k, (long)position + length);
            var (status, used, r) = Newton(grid, position, end);
            iterations += used;
            if (status == OdeStatus.Converged)
            {
                residual = Math.Max(residual, r);
                position = end;
                windows++;
                continue;
            }

            if (end - position == 1)
            {
                return (status, iterations, r, windows + 1);
            }

            length = Math.Max(1, (end - position) / 2);
            for (int i = position + 1; i <= end; i++)
            {
                grid.Y.AsSpan(position * n, n).CopyTo(grid.Y.AsSpan(i * n, n));
            }
        }

        return (OdeStatus.Converged, iterations, residual, windows);
    }

    /// <summary>How many pieces an interval with scaled local error e (an O(Δt³) quantity) is split into: down to about ½.</summary>
    private static int Pieces(double e) => double.IsFinite(e) ? Math.Clamp((int)Math.Ceiling(Math.Cbrt(2 * e)), 2, 32) : 32;

    private DeerOdeGrid<T> UserGrid()
    {
        int count = _p.Times.Length;
        var index = new int[count];
        for (int i = 0; i < count; i++)
        {
            index[i] = i;
        }

        var grid = new DeerOdeGrid<T>((T[])_p.Times.Clone(), index, _n, _m);
        if (_m > 0)
        {
            _p.Inputs!.AsSpan(0, count * _m).CopyTo(grid.Inputs);
        }

        return grid;
    }

    private void FillInitialGuess(DeerOdeGrid<T> grid, ReadOnlySpan<T> y0, ReadOnlySpan<T> guess)
    {
        int n = _n;
        for (int i = 0; i < grid.Times.Length; i++)
        {
            (guess.IsEmpty ? y0 : guess.Slice(i * n, n)).CopyTo(grid.Y.AsSpan(i * n, n));
        }

        y0.CopyTo(grid.Y);
    }

    private void Copy(DeerOdeGrid<T> grid, Span<T> output)
    {
        for (int i = 0; i < grid.UserIndex.Length; i++)
        {
            grid.Y.AsSpan(grid.UserIndex[i] * _n, _n).CopyTo(output.Slice(i * _n, _n));
        }
    }

    /// <summary>
    /// Newton on intervals [first, end) of the grid, from the fixed state at point first, by the one Newton driver
    /// (<see cref="NewtonIteration"/>): status, iterations, last residual.
    /// </summary>
    private (OdeStatus Status, int Iterations, double Residual) Newton(DeerOdeGrid<T> grid, int first, int end)
    {
        EnsureBuffers(end - first, dense: !_quasi);
        var system = new NewtonSystem(this, grid, first, end);
        var outcome = new SequenceOutcome[1];
        NewtonIteration.Run(ref system, new IterationPolicy(_p.MaxIterations, _p.Atol, typeof(T) == typeof(float), null, _p.Options.CancellationToken), outcome);
        OdeStatus status = outcome[0].Status switch
        {
            SolveStatus.Converged => OdeStatus.Converged,
            SolveStatus.MaxIterationsReached => OdeStatus.MaxIterationsReached,
            _ => OdeStatus.Diverged,
        };
        return (status, outcome[0].Iterations, outcome[0].MaxResidual);
    }

    /// <summary>
    /// One window's Newton system: the residual of the iterate against its interval maps, then the scan of those maps
    /// for the next iterate. A scan that is not finite leaves the iterate as it was and fails the next check.
    /// </summary>
    private struct NewtonSystem(DeerOde<TField, T> ode, DeerOdeGrid<T> grid, int first, int end) : INewtonSystem
    {
        private readonly T[] _h0 = grid.Y.AsSpan(first * ode._n, ode._n).ToArray();
        private bool _blewUp;

        public readonly void Linearise(bool last, ReadOnlySpan<bool> active, Span<IterateResidual> residuals)
        {
            if (_blewUp)
            {
                residuals[0] = new IterateResidual(double.NaN, false, false);
                return;
            }

            (double ratio, double residual) = ode.Linearise(grid, dense: !ode._quasi, first, end);
            residuals[0] = new IterateResidual(residual, ratio <= 1, double.IsFinite(ratio));
        }

        public readonly void Settle(int sequence)
        {
            // The iterate is in the grid.
        }

        public void Update(ReadOnlySpan<bool> active)
        {
            int n = ode._n, k = end - first;
            LinearRecurrence.Solve(ode._a, ode._b, _h0, ode._b, k, n, dense: !ode._quasi, ode._p.Cores);
            if (!AllFinite(ode._b.AsSpan(0, k * n)))
            {
                _blewUp = true;
                return;
            }

            ode._b.AsSpan(0, k * n).CopyTo(grid.Y.AsSpan((first + 1) * n));
        }
    }

    private static bool AllFinite(ReadOnlySpan<T> values)
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

    private void EnsureBuffers(int intervals, bool dense)
    {
        int n = _n, per = dense ? n * n : n;
        if (_jacobians.Length < (intervals + 1) * per)
        {
            _jacobians = new T[(intervals + 1) * per];
        }

        if (_a.Length < intervals * per)
        {
            _a = new T[intervals * per];
        }

        if (_b.Length < intervals * n)
        {
            _b = new T[intervals * n];
        }
    }
}
