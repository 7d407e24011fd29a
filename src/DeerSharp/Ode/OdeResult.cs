
namespace DeerSharp.Ode;

/// <summary>What <see cref="Deer"/>.SolveOde returns: the solution at every requested time, and how it was obtained.</summary>
public sealed class OdeResult<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    internal OdeResult(T[] states, int batchSize, int length, int stateSize)
    {
        States = states;
        BatchSize = batchSize;
        Length = length;
        StateSize = stateSize;
    }

    /// <summary>y at every requested time, y0 included: [B, N + 1, n] (B = 1 for a single initial state).</summary>
    public T[] States { get; }

    /// <summary>B.</summary>
    public int BatchSize { get; }

    /// <summary>N + 1, the number of requested times.</summary>
    public int Length { get; }

    /// <summary>n.</summary>
    public int StateSize { get; }

    /// <summary>
    /// The method that was run. Where it failed and a fallback was allowed, those sequences' states come from
    /// <see cref="FallbackMethod"/> instead.
    /// </summary>
    public OdeMethod Method { get; internal set; }

    /// <summary>The method that produced the states of the sequences <see cref="Method"/> failed on (Dopri5), or null when none did.</summary>
    public OdeMethod? FallbackMethod { get; internal set; }

    /// <summary>How the solve ended (the worst over the batch).</summary>
    public OdeStatus Status { get; internal set; }

    /// <summary>Whether every sequence met its tolerances, by an error estimate that was computed and is within them.</summary>
    public bool Converged => Status == OdeStatus.Converged;

    /// <summary>
    /// Whether the solution can be used: <see cref="Converged"/>, or RK4's <see cref="OdeStatus.ErrorNotControlled"/> (finite,
    /// but with no error estimate). False for every failure; the CLI exits 3 exactly when this is false.
    /// </summary>
    public bool Succeeded => Status is OdeStatus.Converged or OdeStatus.ErrorNotControlled;

    /// <summary>A sentence on how it went.</summary>
    public string Message { get; internal set; } = "";

    /// <summary>DEER: Newton iterations summed over the grid refinements (the most over the batch). 0 for Runge-Kutta.</summary>
    public int Iterations { get; internal set; }

    /// <summary>DEER: how many times the grid was refined (the most over the batch).</summary>
    public int Refinements { get; internal set; }

    /// <summary>Points of the final internal grid, per sequence (DEER: requested plus inserted; Runge-Kutta: steps + 1).</summary>
    public int[] InternalGridSizes { get; internal set; } = [];

    /// <summary>The largest internal grid over the batch.</summary>
    public int InternalGridSize => InternalGridSizes.Length == 0 ? 0 : InternalGridSizes.Max();

    /// <summary>DEER: the largest Newton residual |y_{i+1} − Φ_i y_i − ψ_i| of the returned trajectory (checked on it).</summary>
    public double MaxResidual { get; internal set; }

    /// <summary>
    /// The largest local error estimate over all intervals, scaled by atol + rtol·|y|: at most 1 when the tolerances are
    /// met. DEER: Simpson's-rule defect of each interval; Dopri5: its embedded estimate of the last accepted steps; RK4: NaN (none).
    /// </summary>
    public double ErrorEstimate { get; internal set; }

    /// <summary>Evaluations of f (Jacobian evaluations count once each), summed over the batch.</summary>
    public long FunctionEvaluations { get; internal set; }

    /// <summary>Dopri5: rejected steps, summed over the batch.</summary>
    public long RejectedSteps { get; internal set; }

    /// <summary>Why DEER was abandoned for Dopri5, or null when it was not.</summary>
    public string? FallbackReason { get; internal set; }

    /// <summary>The wall time of the solve.</summary>
    public TimeSpan Elapsed { get; internal set; }

    /// <summary>y at requested time <paramref name="index"/> of sequence <paramref name="batch"/>.</summary>
    public ReadOnlySpan<T> At(int index, int batch = 0) => States.AsSpan((batch * Length + index) * StateSize, StateSize);

    /// <inheritdoc/>
    public override string ToString() => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"{Method}{(FallbackMethod is { } f ? $" ({f} fallback)" : "")}: {Status}, {Iterations} iteration(s), {Refinements} refinement(s), grid of {InternalGridSize} points, error estimate {ErrorEstimate:G3}× the tolerance, {Elapsed.TotalMilliseconds:F1} ms. {Message}");
}

/// <summary>What <see cref="Deer"/>.OdeGradient returns.</summary>
public sealed class OdeGradientResult<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    internal OdeGradientResult(OdeResult<T> solution, T[] initialStateGradient, T[] parameterGradient)
    {
        Forward = solution;
        InitialStateGradient = initialStateGradient;
        ParameterGradient = parameterGradient;
    }

    /// <summary>The forward solve the gradient was taken at (as <see cref="GradientResult{T}.Forward"/>).</summary>
    public OdeResult<T> Forward { get; }

    /// <summary>dL/dy0, [B, n].</summary>
    public T[] InitialStateGradient { get; }

    /// <summary>dL/dθ, summed over the batch, in the field's parameter order.</summary>
    public T[] ParameterGradient { get; }

    /// <inheritdoc/>
    public override string ToString() => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"Gradient of {Forward.BatchSize} sequence(s): |dL/dy0|max {MaxAbs(InitialStateGradient):G3}, |dL/dθ|max {MaxAbs(ParameterGradient):G3} over {ParameterGradient.Length} parameter(s). Forward: {Forward}");

    private static double MaxAbs(T[] values) => values.Length == 0 ? 0 : values.Max(v => Math.Abs(double.CreateTruncating(v)));
}
