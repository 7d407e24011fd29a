using System.Diagnostics;
using System.Globalization;

namespace DeerSharp.Ode;

/// <summary>One validated call of SolveOde or OdeGradient: the field, the per-sequence problems and the solves.</summary>
internal sealed class OdeRun<TField, T>
    where TField : IOdeField<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly TField _field;
    private readonly OdeProblem<T>[] _problems;
    private readonly OdeOptions _options;
    private readonly OdeMethod[] _used;

    private OdeRun(TField field, OdeProblem<T>[] problems, OdeOptions options)
    {
        _field = field;
        _problems = problems;
        _options = options;
        _used = new OdeMethod[problems.Length];
    }

    public int BatchSize => _problems.Length;

    public static OdeRun<TField, T> Create(TField field, ReadOnlySpan<T> y0, ReadOnlySpan<T> times, OdeOptions options,
        ReadOnlySpan<T> inputs, ReadOnlySpan<T> warmStart)
    {
        if (field is null)
        {
            throw new ArgumentNullException(nameof(field));
        }

        ArgumentNullException.ThrowIfNull(options);
        int n = field.StateSize, m = field.InputSize;
        if (n < 1 || m < 0 || field.ParameterCount < 0 || field.WorkspaceSize < 0)
        {
            throw new ArgumentException($"The field reports StateSize {n}, InputSize {m}, ParameterCount {field.ParameterCount}: need n ≥ 1 and the others ≥ 0.", nameof(field));
        }

        ValidateOptions(options);
        if (y0.IsEmpty || y0.Length % n != 0)
        {
            throw new ArgumentException($"y0 must hold [{n}] or [B, {n}] values (the field's state has {n}); it holds {y0.Length}.", nameof(y0));
        }

        Require.Finite(y0, nameof(y0));
        int batch = y0.Length / n, length = times.Length;
        if (length < 1)
        {
            throw new ArgumentException("times must hold at least one time (t_0).", nameof(times));
        }

        Require.Finite(times, nameof(times));
        for (int i = 1; i < length; i++)
        {
            if (!(times[i] > times[i - 1]))
            {
                throw new ArgumentException(
                    string.Create(CultureInfo.InvariantCulture, $"times must be strictly increasing; times[{i - 1}] = {times[i - 1]} and times[{i}] = {times[i]}."),
                    nameof(times));
            }
        }

        bool perSequenceInputs = false;
        if (m > 0)
        {
            long shared = (long)length * m, each = (long)batch * length * m;
            if (inputs.Length != shared && inputs.Length != each)
            {
                throw new ArgumentException(
                    $"inputs must be [{length}, {m}] or [{batch}, {length}, {m}] (the field reads {m} inputs at each of {length} times); it holds {inputs.Length} values.",
                    nameof(inputs));
            }

            perSequenceInputs = inputs.Length == each && batch > 1;
            Require.Finite(inputs, nameof(inputs));
        }
        else if (!inputs.IsEmpty)
        {
            throw new ArgumentException($"inputs was given ({inputs.Length} values) but the field reads none (InputSize 0).", nameof(inputs));
        }

        if (!warmStart.IsEmpty)
        {
            Require.Length(warmStart, (long)batch * length * n, nameof(warmStart), $"[{batch}, {length}, {n}]");
            Require.Finite(warmStart, nameof(warmStart));
        }

        if (options.Method is OdeMethod.Deer or OdeMethod.QuasiDeer && options.MaxGridSize < length)
        {
            throw new ArgumentException($"MaxGridSize ({options.MaxGridSize}) is below the number of requested times ({length}).", nameof(options));
        }

        T[] timeArray = times.ToArray();
        var problems = new OdeProblem<T>[batch];
        for (int b = 0; b < batch; b++)
        {
            T[]? x = m == 0 ? null : inputs.Slice(perSequenceInputs ? b * length * m : 0, length * m).ToArray();
            problems[b] = new OdeProblem<T>(timeArray, x, n, m, options);
        }

        return new OdeRun<TField, T>(field, problems, options);
    }

    private static void ValidateOptions(OdeOptions o)
    {
        if (!Enum.IsDefined(o.Method))
        {
            throw new ArgumentException($"options.Method {o.Method} is not an OdeMethod.", nameof(o));
        }

        foreach (var (value, name) in new[] { (o.AbsoluteTolerance, "AbsoluteTolerance"), (o.RelativeTolerance, "RelativeTolerance") })
        {
            if (value is { } v && (!double.IsFinite(v) || v < 0))
            {
                throw new ArgumentException($"options.{name} must be finite and non-negative; it is {v.ToString(CultureInfo.InvariantCulture)}.", nameof(o));
            }
        }

        if (o.AbsoluteTolerance == 0 && o.RelativeTolerance == 0)
        {
            throw new ArgumentException("options.AbsoluteTolerance and RelativeTolerance cannot both be 0: no grid could meet them.", nameof(o));
        }

        if (o.MaxIterations is < 0)
        {
            throw new ArgumentException($"options.MaxIterations must be at least 0; it is {o.MaxIterations}.", nameof(o));
        }

        if (o.Substeps < 1 || o.MaxSteps < 1 || o.MaxGridSize < 2)
        {
            throw new ArgumentException(
                $"options.Substeps and MaxSteps must be at least 1 and MaxGridSize at least 2; they are {o.Substeps}, {o.MaxSteps} and {o.MaxGridSize}.", nameof(o));
        }

        if (o.MaxDegreeOfParallelism is < 1)
        {
            throw new ArgumentException($"options.MaxDegreeOfParallelism must be at least 1; it is {o.MaxDegreeOfParallelism}.", nameof(o));
        }
    }

    /// <summary>Solves every sequence; keeps the DEER grids or Runge-Kutta tapes when asked (for the gradient).</summary>
    public OdeResult<T> Solve(ReadOnlySpan<T> y0, ReadOnlySpan<T> warmStart, object?[]? tapes, object?[]? grids)
    {
        var clock = Stopwatch.StartNew();
        int batch = _problems.Length, n = _field.StateSize, length = _problems[0].Times.Length;
        var states = new T[batch * length * n];
        var outcomes = new OdeOutcome[batch];
        var fallbacks = new string?[batch];
        bool deer = _options.Method is OdeMethod.Deer or OdeMethod.QuasiDeer;
        T[] y0s = y0.ToArray(), guesses = warmStart.ToArray();
        int cores = _problems[0].Cores;

        void One(int b)
        {
            Span<T> output = states.AsSpan(b * length * n, length * n);
            ReadOnlySpan<T> start = y0s.AsSpan(b * n, n);
            OdeMethod method = _options.Method;
            if (deer)
            {
                var solver = new DeerOde<TField, T>(_field, _problems[b], method == OdeMethod.QuasiDeer);
                ReadOnlySpan<T> guess = guesses.Length == 0 ? default : guesses.AsSpan(b * length * n, length * n);
                outcomes[b] = solver.Solve(start, guess, output, out DeerOdeGrid<T> grid);
                if (grids is not null)
                {
                    grids[b] = (solver, grid);
                }

                if (outcomes[b].Status is OdeStatus.Converged || _options.Fallback == FallbackPolicy.None)
                {
                    _used[b] = method;
                    return;
                }

                fallbacks[b] = outcomes[b].Message;
                method = OdeMethod.Dopri5;
            }

            var rk = new RungeKutta<TField, T>(_field, _problems[b]);
            var tape = tapes is null ? null : new RungeKutta<TField, T>.Tape();
            OdeOutcome outcome = method == OdeMethod.Rk4 ? rk.SolveRk4(start, output, tape) : rk.SolveDopri5(start, output, tape);
            if (fallbacks[b] is not null)
            {
                outcome = outcome with
                {
                    Message = $"{outcome.Message} (after falling back: {fallbacks[b]})",
                    Iterations = outcomes[b].Iterations,
                    Evaluations = outcome.Evaluations + outcomes[b].Evaluations,
                };
            }

            outcomes[b] = outcome;
            _used[b] = method;
            if (tapes is not null)
            {
                tapes[b] = (rk, tape);
            }
        }

        if (deer || batch == 1 || cores == 1)
        {
            for (int b = 0; b < batch; b++)
            {
                One(b);
            }
        }
        else
        {
            Parallel.For(0, batch, new ParallelOptions { MaxDegreeOfParallelism = cores }, One);
        }

        int worst = 0;
        for (int b = 1; b < batch; b++)
        {
            if (Severity(outcomes[b].Status) > Severity(outcomes[worst].Status))
            {
                worst = b;
            }
        }

        int fallbackCount = fallbacks.Count(f => f is not null);
        var result = new OdeResult<T>(states, batch, length, n)
        {
            Method = _options.Method,
            FallbackMethod = fallbackCount > 0 ? OdeMethod.Dopri5 : null,
            Status = outcomes[worst].Status,
            Message = batch == 1 ? outcomes[0].Message : $"sequence {worst} of {batch}: {outcomes[worst].Message}",
            Iterations = outcomes.Max(o => o.Iterations),
            Refinements = outcomes.Max(o => o.Refinements),
            InternalGridSizes = [.. outcomes.Select(o => o.GridSize)],
            MaxResidual = outcomes.Max(o => o.MaxResidual),
            ErrorEstimate = outcomes.Any(o => double.IsNaN(o.ErrorEstimate)) ? double.NaN : outcomes.Max(o => o.ErrorEstimate),
            FunctionEvaluations = outcomes.Sum(o => o.Evaluations),
            RejectedSteps = outcomes.Sum(o => o.RejectedSteps),
            FallbackReason = fallbackCount == 0 ? null : $"{fallbackCount} of {batch} sequences fell back to Dopri5; the first because {fallbacks.First(f => f is not null)}",
            Elapsed = clock.Elapsed,
        };
        return result;
    }

    private static int Severity(OdeStatus status) => status switch
    {
        OdeStatus.Converged => 0,
        OdeStatus.ErrorNotControlled => 1,
        OdeStatus.AccuracyNotReached => 2,
        OdeStatus.MaxIterationsReached => 3,
        _ => 4,
    };

    /// <summary>The gradient of one sequence, from the grid or tape its solve kept.</summary>
    public void Gradient(int b, object? tape, object? grid, ReadOnlySpan<T> cotangent, Span<T> dy0, Span<T> dTheta)
    {
        if (tape is ValueTuple<RungeKutta<TField, T>, RungeKutta<TField, T>.Tape> (var rk, var steps))
        {
            rk.Backward(steps, _used[b] == OdeMethod.Dopri5, cotangent, dy0, dTheta);
        }
        else if (grid is ValueTuple<DeerOde<TField, T>, DeerOdeGrid<T>> (var solver, var g))
        {
            solver.Gradient(g, cotangent, dy0, dTheta);
        }
        else
        {
            throw new InvalidOperationException($"Sequence {b} kept neither a DEER grid nor a Runge-Kutta tape.");
        }
    }
}
