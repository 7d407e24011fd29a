
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

internal sealed partial class DeerOde<TField, T>
{
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
}
