
namespace DeerSharp.Ode;

/// <summary>
/// The sequential references: fixed-step classic RK4 and adaptive Dormand-Prince 5(4) (Dormand &amp; Prince 1980; step
/// control and initial step as in Hairer, Nørsett &amp; Wanner, Solving ODEs I, §II.4) with its 4th-order dense output at
/// the requested times. A tape of the steps lets <see cref="Backward"/> differentiate exactly what was computed.
/// </summary>
internal sealed partial class RungeKutta<TField, T>
    where TField : IOdeField<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private static readonly double[] Rk4C = [0, 0.5, 0.5, 1];
    private static readonly double[][] Rk4A = [[], [0.5], [0, 0.5], [0, 0, 1]];
    private static readonly double[] Rk4B = [1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6];

    private static readonly double[] DpC = [0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1];
    private static readonly double[][] DpA =
    [
        [],
        [1.0 / 5],
        [3.0 / 40, 9.0 / 40],
        [44.0 / 45, -56.0 / 15, 32.0 / 9],
        [19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729],
        [9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656],
        [35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84],
    ];

    private static readonly double[] DpB = [35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84, 0];

    /// <summary>b − b̂: the 5th- minus the embedded 4th-order weights.</summary>
    private static readonly double[] DpE = [71.0 / 57600, 0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200, 22.0 / 525, -1.0 / 40];

    /// <summary>Dense output: b_j(θ) = Σ_q P[j][q] θ^{q+1} (Shampine's coefficients, as SciPy's RK45 uses them).</summary>
    private static readonly double[][] DpP =
    [
        [1, -8048581381.0 / 2820520608, 8663915743.0 / 2820520608, -12715105075.0 / 11282082432],
        [0, 0, 0, 0],
        [0, 131558114200.0 / 32700410799, -68118460800.0 / 10900136933, 87487479700.0 / 32700410799],
        [0, -1754552775.0 / 470086768, 14199869525.0 / 1410260304, -10690763975.0 / 1880347072],
        [0, 127303824393.0 / 49829197408, -318862633887.0 / 49829197408, 701980252875.0 / 199316789632],
        [0, -282668133.0 / 205662961, 2019193451.0 / 616988883, -1453857185.0 / 822651844],
        [0, 40617522.0 / 29380423, -110615467.0 / 29380423, 69997945.0 / 29380423],
    ];

    private readonly TField _field;
    private readonly OdeProblem<T> _p;
    private readonly int _n;
    private readonly int _m;
    private readonly T[] _work;
    private readonly T[] _x;
    private long _evaluations;

    public RungeKutta(TField field, OdeProblem<T> problem)
    {
        _field = field;
        _p = problem;
        _n = problem.StateSize;
        _m = problem.InputSize;
        _work = new T[Math.Max(1, field.WorkspaceSize)];
        _x = new T[_m];
    }

    /// <summary>The recorded steps, for <see cref="Backward"/>.</summary>
    internal sealed class Tape
    {
        public List<double> StepStart { get; } = [];

        public List<double> StepSize { get; } = [];

        /// <summary>Every stage's input Y_s, step after step: [steps, stages, n].</summary>
        public List<T> StageInputs { get; } = [];

        /// <summary>For each requested time after the first: its step and θ (1 for the step's end).</summary>
        public List<(int Index, int Step, double Theta)> Outputs { get; } = [];
    }

    private void F(ReadOnlySpan<T> y, double t, Span<T> k)
    {
        T tt = T.CreateTruncating(t);
        _p.InputAt(tt, _x);
        _field.Evaluate(y, tt, _x, k, _work);
        _evaluations++;
    }

    /// <summary>Classic RK4 with <see cref="OdeOptions.Substeps"/> equal steps per requested interval.</summary>
    public OdeOutcome SolveRk4(ReadOnlySpan<T> y0, Span<T> output, Tape? tape)
    {
        int n = _n, sub = _p.Options.Substeps, stages = 4;
        var k = new T[stages * n];
        var stage = new T[n];
        var y = y0.ToArray();
        y0.CopyTo(output);
        int steps = 0;
        for (int i = 0; i + 1 < _p.Times.Length; i++)
        {
            _p.Options.CancellationToken.ThrowIfCancellationRequested();
            double t0 = double.CreateTruncating(_p.Times[i]), t1 = double.CreateTruncating(_p.Times[i + 1]);
            for (int s = 0; s < sub; s++)
            {
                double start = t0 + (t1 - t0) * s / sub, h = t0 + (t1 - t0) * (s + 1) / sub - start;
                Step(y, start, h, Rk4C, Rk4A, Rk4B, k, stage, tape);
                steps++;
            }

            if (!AllFinite(y))
            {
                return new OdeOutcome(OdeStatus.Diverged, $"RK4 produced NaN or infinity between t = {t0:G6} and {t1:G6}.", 0, 0, steps + 1, 0,
                    double.NaN, _evaluations);
            }

            tape?.Outputs.Add((i + 1, steps - 1, 1.0));
            y.CopyTo(output.Slice((i + 1) * n, n));
        }

        return new OdeOutcome(ResultContract.OdeStatus(OdeStatus.Converged, double.NaN, errorControlled: false),
            $"RK4 took {steps} fixed steps. It has no error estimate, so whether the tolerances were met is unknown (use Dopri5 or DEER for error control).", 0, 0, steps + 1, 0, double.NaN, _evaluations);
    }

    /// <summary>One explicit Runge-Kutta step of y (in place) from t by h; the stage slopes end in k.</summary>
    private void Step(T[] y, double t, double h, double[] c, double[][] a, double[] b, T[] k, T[] stage, Tape? tape)
    {
        int n = _n;
        for (int s = 0; s < c.Length; s++)
        {
            for (int r = 0; r < n; r++)
            {
                double sum = 0;
                for (int j = 0; j < s; j++)
                {
                    sum += a[s][j] * double.CreateTruncating(k[j * n + r]);
                }

                stage[r] = y[r] + T.CreateTruncating(h * sum);
            }

            tape?.StageInputs.AddRange(stage);
            F(stage, t + c[s] * h, k.AsSpan(s * n, n));
        }

        tape?.StepStart.Add(t);
        tape?.StepSize.Add(h);
        for (int r = 0; r < n; r++)
        {
            double sum = 0;
            for (int j = 0; j < b.Length; j++)
            {
                sum += b[j] * double.CreateTruncating(k[j * n + r]);
            }

            y[r] += T.CreateTruncating(h * sum);
        }
    }

    /// <summary>Adaptive Dormand-Prince 5(4) with dense output at the requested times.</summary>
    public OdeOutcome SolveDopri5(ReadOnlySpan<T> y0, Span<T> output, Tape? tape)
    {
        int n = _n, stages = 7;
        double atol = _p.Atol, rtol = _p.Rtol;
        double tEnd = double.CreateTruncating(_p.Times[^1]), t = double.CreateTruncating(_p.Times[0]);
        var k = new T[stages * n];
        var stage = new T[n];
        var y = y0.ToArray();
        var yNew = new T[n];
        y0.CopyTo(output);
        int next = 1;
        long accepted = 0, rejected = 0;
        double lastError = 0;
        if (_p.Times.Length == 1)
        {
            return new OdeOutcome(OdeStatus.Converged, "Nothing to integrate: one time point.", 0, 0, 1, 0, 0, 0);
        }

        F(y, t, k.AsSpan(0, n));
        double h = InitialStep(y, t, tEnd, k.AsSpan(0, n), atol, rtol);
        double hMin = 16 * _p.Epsilon * Math.Max(Math.Abs(t), Math.Abs(tEnd));
        bool lastRejected = false;
        while (next < _p.Times.Length)
        {
            _p.Options.CancellationToken.ThrowIfCancellationRequested();
            if (accepted + rejected >= _p.Options.MaxSteps)
            {
                return Fail(OdeStatus.AccuracyNotReached, $"Dopri5 reached MaxSteps ({_p.Options.MaxSteps}) at t = {t:G6}.");
            }

            h = Math.Min(h, tEnd - t);
            if (h < hMin)
            {
                return Fail(OdeStatus.AccuracyNotReached, $"Dopri5's step fell below {hMin:G3} at t = {t:G6}: the tolerances cannot be met there.");
            }

            // Stages 2..7; stage 1 is f(y) from the previous step (first same as last).
            int tapeMark = tape?.StageInputs.Count ?? 0;
            tape?.StageInputs.AddRange(y);
            for (int s = 1; s < stages; s++)
            {
                for (int r = 0; r < n; r++)
                {
                    double sum = 0;
                    for (int j = 0; j < s; j++)
                    {
                        sum += DpA[s][j] * double.CreateTruncating(k[j * n + r]);
                    }

                    stage[r] = y[r] + T.CreateTruncating(h * sum);
                }

                if (s == stages - 1)
                {
                    stage.CopyTo(yNew, 0);
                }

                tape?.StageInputs.AddRange(stage);
                F(stage, t + DpC[s] * h, k.AsSpan(s * n, n));
            }

            double error = 0;
            for (int r = 0; r < n; r++)
            {
                double e = 0;
                for (int j = 0; j < stages; j++)
                {
                    e += DpE[j] * double.CreateTruncating(k[j * n + r]);
                }

                double scale = atol + rtol * Math.Max(Math.Abs(double.CreateTruncating(y[r])), Math.Abs(double.CreateTruncating(yNew[r])));
                double q = h * e / scale;
                error += q * q;
            }

            error = Math.Sqrt(error / n);
            if (!double.IsFinite(error) || !AllFinite(yNew))
            {
                if (tape is not null)
                {
                    tape.StageInputs.RemoveRange(tapeMark, tape.StageInputs.Count - tapeMark);
                }

                rejected++;
                lastRejected = true;
                h *= 0.2;
                continue;
            }

            if (error > 1)
            {
                if (tape is not null)
                {
                    tape.StageInputs.RemoveRange(tapeMark, tape.StageInputs.Count - tapeMark);
                }

                rejected++;
                h *= Math.Max(0.2, 0.9 * Math.Pow(error, -0.2));
                lastRejected = true;
                continue;
            }

            // Accepted: write every requested time inside (t, t + h].
            tape?.StepStart.Add(t);
            tape?.StepSize.Add(h);
            double end = t + h;
            bool final = h >= tEnd - t;
            while (next < _p.Times.Length && (final || double.CreateTruncating(_p.Times[next]) <= end))
            {
                double tau = double.CreateTruncating(_p.Times[next]);
                double theta = final && next == _p.Times.Length - 1 ? 1.0 : Math.Min(1.0, (tau - t) / h);
                Span<T> target = output.Slice(next * n, n);
                if (theta == 1.0)
                {
                    yNew.CopyTo(target);
                }
                else
                {
                    Dense(y, k, h, theta, target);
                }

                tape?.Outputs.Add((next, (int)accepted, theta));
                next++;
            }

            accepted++;
            lastError = Math.Max(lastError, error);
            t = final ? tEnd : end;
            yNew.CopyTo(y, 0);
            k.AsSpan(6 * n, n).CopyTo(k.AsSpan(0, n));
            double factor = Math.Min(5, Math.Max(0.2, 0.9 * Math.Pow(Math.Max(error, 1e-10), -0.2)));
            h *= lastRejected ? Math.Min(1, factor) : factor;
            lastRejected = false;
        }

        return new OdeOutcome(OdeStatus.Converged, $"Dopri5 took {accepted} steps ({rejected} rejected).", 0, 0, (int)Math.Min(int.MaxValue, accepted + 1), 0,
            lastError, _evaluations, rejected);

        OdeOutcome Fail(OdeStatus status, string message) =>
            new(status, message, 0, 0, (int)Math.Min(int.MaxValue, accepted + 1), 0, double.NaN, _evaluations, rejected);
    }

    private static double DenseWeight(int j, double theta)
    {
        double[] p = DpP[j];
        return theta * (p[0] + theta * (p[1] + theta * (p[2] + theta * p[3])));
    }

    private void Dense(ReadOnlySpan<T> y, ReadOnlySpan<T> k, double h, double theta, Span<T> target)
    {
        int n = _n;
        for (int r = 0; r < n; r++)
        {
            double sum = 0;
            for (int j = 0; j < 7; j++)
            {
                sum += DenseWeight(j, theta) * double.CreateTruncating(k[j * n + r]);
            }

            target[r] = y[r] + T.CreateTruncating(h * sum);
        }
    }

    /// <summary>Hairer's starting step: h0 from the sizes of y and f, then an explicit Euler probe of the second derivative.</summary>
    private double InitialStep(ReadOnlySpan<T> y, double t, double tEnd, ReadOnlySpan<T> f0, double atol, double rtol)
    {
        int n = _n;
        double d0 = 0, d1 = 0;
        for (int r = 0; r < n; r++)
        {
            double sc = atol + rtol * Math.Abs(double.CreateTruncating(y[r]));
            d0 += Math.Pow(double.CreateTruncating(y[r]) / sc, 2);
            d1 += Math.Pow(double.CreateTruncating(f0[r]) / sc, 2);
        }

        d0 = Math.Sqrt(d0 / n);
        d1 = Math.Sqrt(d1 / n);
        double h0 = d0 < 1e-5 || d1 < 1e-5 ? 1e-6 : 0.01 * d0 / d1;
        h0 = Math.Min(h0, tEnd - t);
        var y1 = new T[n];
        var f1 = new T[n];
        for (int r = 0; r < n; r++)
        {
            y1[r] = y[r] + T.CreateTruncating(h0) * f0[r];
        }

        F(y1, t + h0, f1);
        double d2 = 0;
        for (int r = 0; r < n; r++)
        {
            double sc = atol + rtol * Math.Abs(double.CreateTruncating(y[r]));
            d2 += Math.Pow(double.CreateTruncating(f1[r] - f0[r]) / sc, 2);
        }

        d2 = Math.Sqrt(d2 / n) / h0;
        double h1 = Math.Max(d1, d2) <= 1e-15 ? Math.Max(1e-6, h0 * 1e-3) : Math.Pow(0.01 / Math.Max(d1, d2), 1.0 / 5);
        double h = Math.Min(100 * h0, h1);
        return double.IsFinite(h) && h > 0 ? h : 1e-6;
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
}
