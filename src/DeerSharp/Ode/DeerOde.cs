using System.Numerics;
using DeerSharp.Scan;

namespace DeerSharp.Ode;

/// <summary>DEER's internal grid for one sequence: the points, the inputs there, the iterate and f along it.</summary>
internal sealed class DeerOdeGrid<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    public DeerOdeGrid(T[] times, int[] userIndex, int n, int m)
    {
        Times = times;
        UserIndex = userIndex;
        Y = new T[times.Length * n];
        F = new T[times.Length * n];
        Inputs = new T[times.Length * m];
    }

    /// <summary>The K + 1 internal times.</summary>
    public T[] Times { get; }

    /// <summary>Where each requested time sits in <see cref="Times"/>.</summary>
    public int[] UserIndex { get; }

    /// <summary>The trajectory, [K + 1, n].</summary>
    public T[] Y { get; }

    /// <summary>f along <see cref="Y"/>, [K + 1, n] (filled by each linearisation).</summary>
    public T[] F { get; }

    /// <summary>x(t) at the internal times, [K + 1, m].</summary>
    public T[] Inputs { get; }

    public int Intervals => Times.Length - 1;
}

/// <summary>How one sequence's ODE solve ended.</summary>
internal readonly record struct OdeOutcome(OdeStatus Status, string Message, int Iterations, int Refinements, int GridSize, double MaxResidual,
    double ErrorEstimate, long Evaluations, long RejectedSteps = 0);

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
internal sealed class DeerOde<TField, T>
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

    /// <summary>Newton on intervals [first, end) of the grid, from the fixed state at point first: status, iterations, last residual.</summary>
    private (OdeStatus Status, int Iterations, double Residual) Newton(DeerOdeGrid<T> grid, int first, int end)
    {
        int n = _n, k = end - first;
        EnsureBuffers(k, dense: !_quasi);
        T[] h0 = grid.Y.AsSpan(first * n, n).ToArray();
        double residual = double.NaN;
        for (int iteration = 0; ; iteration++)
        {
            _p.Options.CancellationToken.ThrowIfCancellationRequested();
            (double ratio, residual) = Linearise(grid, dense: !_quasi, first, end);
            if (!double.IsFinite(ratio))
            {
                return (OdeStatus.Diverged, iteration, residual);
            }

            if (ratio <= 1)
            {
                return (OdeStatus.Converged, iteration, residual);
            }

            if (iteration >= _p.MaxIterations)
            {
                return (OdeStatus.MaxIterationsReached, iteration, residual);
            }

            LinearRecurrence.Solve(_a, _b, h0, _b, k, n, dense: !_quasi, _p.Cores);
            if (!AllFinite(_b.AsSpan(0, k * n)))
            {
                return (OdeStatus.Diverged, iteration + 1, residual);
            }

            _b.AsSpan(0, k * n).CopyTo(grid.Y.AsSpan((first + 1) * n));
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

    /// <summary>
    /// Evaluates f and G along the grid's iterate, forms every interval's map (Φ_i, ψ_i) into the A and B buffers, and
    /// measures the iterate's residual against them. Returns the largest residual relative to its tolerance and the
    /// largest absolute residual.
    /// </summary>
    internal (double Ratio, double Residual) Linearise(DeerOdeGrid<T> grid, bool dense, int first, int last)
    {
        int n = _n, m = _m, k = last - first, per = dense ? n * n : n;
        EnsureBuffers(k, dense);
        T[] jac = _jacobians;
        ForChunks(k + 1, (s, start, end) =>
        {
            for (int point = start; point < end; point++)
            {
                int i = first + point;
                ReadOnlySpan<T> y = grid.Y.AsSpan(i * n, n), x = grid.Inputs.AsSpan(i * m, m);
                if (dense)
                {
                    _field.EvaluateJacobian(y, grid.Times[i], x, grid.F.AsSpan(i * n, n), jac.AsSpan(point * per, per), s.Field);
                }
                else
                {
                    _field.EvaluateJacobianDiagonal(y, grid.Times[i], x, grid.F.AsSpan(i * n, n), jac.AsSpan(point * per, per), s.Field);
                }
            }
        });
        Interlocked.Add(ref _evaluations, k + 1);

        double[] ratios = new double[_scratch.Length], residuals = new double[_scratch.Length];
        int chunks = ForChunks(k, (s, start, end) =>
        {
            double ratio = 0, residual = 0;
            for (int interval = start; interval < end; interval++)
            {
                int i = first + interval;
                IntervalMap(grid, i, interval, dense, s);
                ReadOnlySpan<T> yi = grid.Y.AsSpan(i * n, n), yj = grid.Y.AsSpan((i + 1) * n, n);
                for (int r = 0; r < n; r++)
                {
                    double predicted = s.Psi[r], magnitude = Math.Abs(s.Psi[r]);
                    if (dense)
                    {
                        for (int c = 0; c < n; c++)
                        {
                            double term = s.Phi[r * n + c] * double.CreateTruncating(yi[c]);
                            predicted += term;
                            magnitude += Math.Abs(term);
                        }
                    }
                    else
                    {
                        double term = s.Phi[r] * double.CreateTruncating(yi[r]);
                        predicted += term;
                        magnitude += Math.Abs(term);
                    }

                    double actual = double.CreateTruncating(yj[r]), diff = Math.Abs(actual - predicted);
                    magnitude += Math.Abs(actual);
                    double tol = Math.Max(NewtonFactor * (_p.Atol + _p.Rtol * Math.Abs(actual)), 4 * (n + 2) * _p.Epsilon * magnitude);
                    residual = diff > residual || double.IsNaN(diff) ? diff : residual;
                    double q = tol > 0 ? diff / tol : (diff == 0 ? 0 : double.PositiveInfinity);
                    ratio = q > ratio || double.IsNaN(q) ? q : ratio;
                }

                Span<T> a = _a.AsSpan(interval * per, per), b = _b.AsSpan(interval * n, n);
                for (int j = 0; j < per; j++)
                {
                    a[j] = T.CreateTruncating(s.Phi[j]);
                }

                for (int j = 0; j < n; j++)
                {
                    b[j] = T.CreateTruncating(s.Psi[j]);
                }
            }

            ratios[s.Index] = Math.Max(ratios[s.Index], ratio);
            residuals[s.Index] = Math.Max(residuals[s.Index], residual);
            if (double.IsNaN(ratio))
            {
                ratios[s.Index] = double.NaN;
            }
        });
        double worst = 0, largest = 0;
        for (int c = 0; c < chunks; c++)
        {
            worst = double.IsNaN(ratios[c]) || double.IsNaN(worst) ? double.NaN : Math.Max(worst, ratios[c]);
            largest = Math.Max(largest, residuals[c]);
        }

        return (worst, largest);
    }

    /// <summary>Φ_i and ψ_i of interval i into the scratch's Phi and Psi (double), from F and the Jacobians along the grid.</summary>
    private void IntervalMap(DeerOdeGrid<T> grid, int i, int local, bool dense, Scratch s)
    {
        int n = _n, per = dense ? n * n : n;
        double dt = double.CreateTruncating(grid.Times[i + 1]) - double.CreateTruncating(grid.Times[i]);
        ReadOnlySpan<T> gi = _jacobians.AsSpan(local * per, per), gj = _jacobians.AsSpan((local + 1) * per, per);
        ReadOnlySpan<T> yi = grid.Y.AsSpan(i * n, n), yj = grid.Y.AsSpan((i + 1) * n, n);
        ReadOnlySpan<T> fi = grid.F.AsSpan(i * n, n), fj = grid.F.AsSpan((i + 1) * n, n);
        for (int r = 0; r < n; r++)
        {
            // z = f − G y at both ends, averaged: c = ½(z_i + z_{i+1}) Δt.
            double zi = double.CreateTruncating(fi[r]), zj = double.CreateTruncating(fj[r]);
            if (dense)
            {
                for (int c = 0; c < n; c++)
                {
                    double a = double.CreateTruncating(gi[r * n + c]), b = double.CreateTruncating(gj[r * n + c]);
                    zi -= a * double.CreateTruncating(yi[c]);
                    zj -= b * double.CreateTruncating(yj[c]);
                    s.M[r * n + c] = 0.5 * (a + b) * dt;
                }
            }
            else
            {
                double a = double.CreateTruncating(gi[r]), b = double.CreateTruncating(gj[r]);
                zi -= a * double.CreateTruncating(yi[r]);
                zj -= b * double.CreateTruncating(yj[r]);
                s.M[r] = 0.5 * (a + b) * dt;
            }

            s.C[r] = 0.5 * (zi + zj) * dt;
        }

        if (dense)
        {
            MatrixExponential.ExpAffine(s.M, s.C, s.Phi, s.Psi, n, s.Exp);
        }
        else
        {
            for (int r = 0; r < n; r++)
            {
                s.Phi[r] = Math.Exp(s.M[r]);
                s.Psi[r] = MatrixExponential.Phi1(s.M[r]) * s.C[r];
            }
        }
    }

    /// <summary>
    /// Each interval's local error estimate relative to atol + rtol·|y|: the defect of the converged trajectory against
    /// Simpson's rule with the cubic Hermite midpoint, y_{i+1} − y_i − Δt/6 (f_i + 4 f(y_m) + f_{i+1}). Simpson's rule is
    /// 4th order, so the defect measures the 2nd-order scheme's O(Δt³) local error.
    /// </summary>
    private double[] ErrorEstimates(DeerOdeGrid<T> grid)
    {
        int n = _n, m = _m, k = grid.Intervals;
        var errors = new double[k];
        ForChunks(k, (s, start, end) =>
        {
            Span<T> mid = s.Mid, fm = s.Fm, x = s.X;
            for (int i = start; i < end; i++)
            {
                T t0 = grid.Times[i], t1 = grid.Times[i + 1], dt = t1 - t0, half = T.CreateTruncating(0.5);
                ReadOnlySpan<T> yi = grid.Y.AsSpan(i * n, n), yj = grid.Y.AsSpan((i + 1) * n, n);
                ReadOnlySpan<T> fi = grid.F.AsSpan(i * n, n), fj = grid.F.AsSpan((i + 1) * n, n);
                T eighth = dt / T.CreateTruncating(8);
                for (int r = 0; r < n; r++)
                {
                    mid[r] = half * (yi[r] + yj[r]) + eighth * (fi[r] - fj[r]);
                }

                for (int r = 0; r < m; r++)
                {
                    x[r] = half * (grid.Inputs[i * m + r] + grid.Inputs[(i + 1) * m + r]);
                }

                _field.Evaluate(mid, t0 + half * dt, x, fm, s.Field);
                double worst = 0, h = double.CreateTruncating(dt);
                for (int r = 0; r < n; r++)
                {
                    double a = double.CreateTruncating(yi[r]), b = double.CreateTruncating(yj[r]);
                    double simpson = h / 6 * (double.CreateTruncating(fi[r]) + 4 * double.CreateTruncating(fm[r]) + double.CreateTruncating(fj[r]));
                    double defect = Math.Abs(b - a - simpson);
                    double scale = _p.Atol + _p.Rtol * Math.Max(Math.Abs(a), Math.Abs(b));
                    // The defect cannot be resolved below the rounding of y itself.
                    defect = Math.Max(0, defect - 8 * _p.Epsilon * (Math.Abs(a) + Math.Abs(b) + Math.Abs(simpson)));
                    double q = scale > 0 ? defect / scale : (defect == 0 ? 0 : double.PositiveInfinity);
                    worst = Math.Max(worst, double.IsNaN(q) ? double.PositiveInfinity : q);
                }

                errors[i] = worst;
            }
        });
        Interlocked.Add(ref _evaluations, k);
        return errors;
    }

    /// <summary>
    /// A finer grid: interval i split into <see cref="Pieces"/>(errors[i]) equal parts where errors[i] &gt; 1 (every
    /// interval in two when <paramref name="errors"/> is null). The new points start from the cubic Hermite interpolant
    /// of the old trajectory, or from y0 when <paramref name="fromScratch"/>.
    /// </summary>
    private DeerOdeGrid<T> Refine(DeerOdeGrid<T> old, double[]? errors, bool fromScratch, ReadOnlySpan<T> y0)
    {
        int n = _n, m = _m, k = old.Intervals;
        var pieces = new int[k];
        int total = 1;
        for (int i = 0; i < k; i++)
        {
            pieces[i] = errors is null ? 2 : errors[i] > 1 ? Pieces(errors[i]) : 1;
            total += pieces[i];
        }

        var times = new T[total];
        var oldToNew = new int[k + 1];
        int at = 0;
        for (int i = 0; i < k; i++)
        {
            oldToNew[i] = at;
            T t0 = old.Times[i], dt = old.Times[i + 1] - t0;
            for (int p = 0; p < pieces[i]; p++)
            {
                times[at++] = p == 0 ? t0 : t0 + dt * T.CreateTruncating((double)p / pieces[i]);
            }
        }

        oldToNew[k] = at;
        times[at] = old.Times[k];
        var userIndex = new int[old.UserIndex.Length];
        for (int u = 0; u < userIndex.Length; u++)
        {
            userIndex[u] = oldToNew[old.UserIndex[u]];
        }

        var grid = new DeerOdeGrid<T>(times, userIndex, n, m);
        for (int i = 0; i < total; i++)
        {
            _p.InputAt(times[i], grid.Inputs.AsSpan(i * m, m));
        }

        for (int i = 0; i < k; i++)
        {
            T dt = old.Times[i + 1] - old.Times[i];
            for (int p = 0; p < pieces[i]; p++)
            {
                Span<T> target = grid.Y.AsSpan((oldToNew[i] + p) * n, n);
                if (fromScratch)
                {
                    y0.CopyTo(target);
                    continue;
                }

                T s = T.CreateTruncating((double)p / pieces[i]), s2 = s * s, s3 = s2 * s, two = T.CreateTruncating(2), three = T.CreateTruncating(3);
                T h00 = two * s3 - three * s2 + T.One, h10 = s3 - two * s2 + s, h01 = three * s2 - two * s3, h11 = s3 - s2;
                for (int r = 0; r < n; r++)
                {
                    target[r] = h00 * old.Y[i * n + r] + h10 * dt * old.F[i * n + r] + h01 * old.Y[(i + 1) * n + r] + h11 * dt * old.F[(i + 1) * n + r];
                }
            }
        }

        (fromScratch ? y0 : old.Y.AsSpan(k * n, n)).CopyTo(grid.Y.AsSpan(total * n - n, n));
        y0.CopyTo(grid.Y);
        return grid;
    }

    /// <summary>
    /// The adjoint on the converged grid (reference §7 in continuous time): λ_K = g_K, λ_i = Φ_iᵀ λ_{i+1} + g_i with Φ_i from
    /// the full Jacobian, so a reverse-time linear recurrence; dL/dθ = Σ_i ½Δt_i [(∂f/∂θ)ᵀ(y_i) Φ_iᵀλ_{i+1} + (∂f/∂θ)ᵀ(y_{i+1}) λ_{i+1}].
    /// </summary>
    public void Gradient(DeerOdeGrid<T> grid, ReadOnlySpan<T> cotangent, Span<T> initialGradient, Span<T> parameterGradient)
    {
        int n = _n, m = _m, k = grid.Intervals, nn = n * n, parameters = _field.ParameterCount;
        Linearise(grid, dense: true, 0, k);
        var lambda = new T[(k + 1) * n];
        for (int u = 0; u < grid.UserIndex.Length; u++)
        {
            cotangent.Slice(u * n, n).CopyTo(lambda.AsSpan(grid.UserIndex[u] * n, n));
        }

        // The reverse-time recurrence λ_i = Φ_iᵀ λ_{i+1} + g_i, as a forward one in j = K − 1 − i solved by the scan:
        // h_j = Φ_{K−1−j}ᵀ h_{j−1} + g_{K−1−j}, h_{−1} = λ_K = g_K.
        var transposed = new T[k * nn];
        var forcing = new T[k * n];
        var reversed = new T[k * n];
        for (int j = 0; j < k; j++)
        {
            int i = k - 1 - j;
            ReadOnlySpan<T> phi = _a.AsSpan(i * nn, nn);
            Span<T> target = transposed.AsSpan(j * nn, nn);
            for (int r = 0; r < n; r++)
            {
                for (int c = 0; c < n; c++)
                {
                    target[c * n + r] = phi[r * n + c];
                }
            }

            lambda.AsSpan(i * n, n).CopyTo(forcing.AsSpan(j * n, n));
        }

        Scan.LinearRecurrence.Solve(transposed, forcing, lambda.AsSpan(k * n, n).ToArray(), reversed, k, n, dense: true, _p.Cores);
        for (int j = 0; j < k; j++)
        {
            int i = k - 1 - j;
            for (int r = 0; r < n; r++)
            {
                // λ_i^+ = Φ_iᵀ λ_{i+1} (the adjoint just after t_i) = λ_i − g_i, kept in _b for the parameter integral.
                _b[i * n + r] = reversed[j * n + r] - lambda[i * n + r];
            }

            reversed.AsSpan(j * n, n).CopyTo(lambda.AsSpan(i * n, n));
        }

        lambda.AsSpan(0, n).CopyTo(initialGradient);
        if (parameters == 0)
        {
            return;
        }

        // Fixed chunks and a fixed-order sum: the gradient does not depend on the thread count.
        int chunkCount = Math.Min(k, 64);
        var partial = new T[chunkCount * parameters];
        var scratch = new Scratch[chunkCount];
        Parallel.For(0, chunkCount, new ParallelOptions { MaxDegreeOfParallelism = _p.Cores }, c =>
        {
            Scratch s = scratch[c] = new Scratch(this, c);
            Span<T> g = partial.AsSpan(c * parameters, parameters), v = s.Mid, dy = s.Fm;
            int start = (int)((long)k * c / chunkCount), end = (int)((long)k * (c + 1) / chunkCount);
            for (int i = start; i < end; i++)
            {
                T halfDt = T.CreateTruncating(0.5) * (grid.Times[i + 1] - grid.Times[i]);
                for (int r = 0; r < n; r++)
                {
                    v[r] = halfDt * _b[i * n + r];
                }

                _field.Backward(grid.Y.AsSpan(i * n, n), grid.Times[i], grid.Inputs.AsSpan(i * m, m), v, dy, g, s.Field);
                for (int r = 0; r < n; r++)
                {
                    v[r] = halfDt * lambda[(i + 1) * n + r];
                }

                _field.Backward(grid.Y.AsSpan((i + 1) * n, n), grid.Times[i + 1], grid.Inputs.AsSpan((i + 1) * m, m), v, dy, g, s.Field);
            }
        });
        for (int c = 0; c < chunkCount; c++)
        {
            Span<T> g = partial.AsSpan(c * parameters, parameters);
            for (int j = 0; j < parameters; j++)
            {
                parameterGradient[j] += g[j];
            }
        }
    }

    /// <summary>Runs <paramref name="body"/> over [0, count) in contiguous chunks, each with its own scratch; returns the chunk count.</summary>
    private int ForChunks(int count, Action<Scratch, int, int> body)
    {
        int chunks = Math.Clamp(count / 64, 1, _scratch.Length);
        if (chunks == 1 || _p.Cores == 1)
        {
            chunks = 1;
            body(_scratch[0] ??= new Scratch(this, 0), 0, count);
            return chunks;
        }

        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = _p.Cores }, c =>
        {
            Scratch s = _scratch[c] ??= new Scratch(this, c);
            body(s, (int)((long)count * c / chunks), (int)((long)count * (c + 1) / chunks));
        });
        return chunks;
    }

    /// <summary>One chunk's private buffers, allocated once per solve.</summary>
    private sealed class Scratch
    {
        public Scratch(DeerOde<TField, T> owner, int index)
        {
            int n = owner._n;
            Index = index;
            Field = new T[Math.Max(1, owner._field.WorkspaceSize)];
            X = new T[owner._m];
            Mid = new T[n];
            Fm = new T[n];
            M = new double[n * n];
            C = new double[n];
            Phi = new double[n * n];
            Psi = new double[n];
            Exp = new double[MatrixExponential.WorkspaceSize(n + 1) + 2 * (n + 1) * (n + 1)];
        }

        public int Index { get; }

        public T[] Field { get; }

        public T[] X { get; }

        public T[] Mid { get; }

        public T[] Fm { get; }

        public double[] M { get; }

        public double[] C { get; }

        public double[] Phi { get; }

        public double[] Psi { get; }

        public double[] Exp { get; }
    }
}
