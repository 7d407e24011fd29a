namespace DeerSharp.Ode;

/// <summary>How <see cref="Deer"/>.SolveOde integrates.</summary>
public enum OdeMethod
{
    /// <summary>
    /// DEER: Newton's method over the whole trajectory. Each iteration linearises f around the current trajectory, steps
    /// each interval exactly for the trapezoid-averaged linear ODE with a matrix exponential, and solves the resulting
    /// linear recurrence by a scan. Second order; the internal grid adapts to atol/rtol.
    /// </summary>
    Deer,

    /// <summary>
    /// quasi-DEER: the same with only the Jacobian's diagonal, stepped by the scalar exponential. O(n) per point instead of
    /// O(n³), more iterations; a second-order scheme of its own (its solution differs from DEER's by the discretisation error).
    /// </summary>
    QuasiDeer,

    /// <summary>The classic fixed-step 4th-order Runge-Kutta method on the requested grid (with <see cref="OdeOptions.Substeps"/> per interval).</summary>
    Rk4,

    /// <summary>Adaptive Dormand-Prince 5(4) with its 4th-order dense output at the requested times: the sequential reference.</summary>
    Dopri5,
}

/// <summary>How an ODE solve ended.</summary>
public enum OdeStatus
{
    /// <summary>The solution meets the tolerances: every interval's local error estimate is within atol/rtol (for DEER, also
    /// the Newton residual was checked on the returned trajectory). With <see cref="OdeOptions.Adaptive"/> off, a fixed grid
    /// whose estimate exceeds the tolerance reports <see cref="AccuracyNotReached"/> instead.</summary>
    Converged,

    /// <summary>DEER's Newton iteration did not reach its residual tolerance within <see cref="OdeOptions.MaxIterations"/>.</summary>
    MaxIterationsReached,

    /// <summary>The iteration or the integration produced NaN or infinity.</summary>
    Diverged,

    /// <summary>
    /// The local error estimate still exceeds the tolerance when the grid reached <see cref="OdeOptions.MaxGridSize"/>
    /// points, or Dopri5 reached its smallest step or <see cref="OdeOptions.MaxSteps"/>.
    /// </summary>
    AccuracyNotReached,

    /// <summary>
    /// RK4 integrated to the end with finite values, but it has no error estimate: whether the tolerances were met is
    /// unknown. Not <see cref="OdeResult{T}.Converged"/>, yet not a failure either (<see cref="OdeResult{T}.Succeeded"/>).
    /// </summary>
    ErrorNotControlled,
}

/// <summary>Options for <see cref="Deer"/>.SolveOde and <see cref="Deer"/>.OdeGradient. Every option has a working default.</summary>
public sealed record OdeOptions
{
    /// <summary>The default options: DEER with adaptive accuracy and the element type's default tolerances.</summary>
    public static OdeOptions Default { get; } = new();

    /// <summary>The method. Default: <see cref="OdeMethod.Deer"/>.</summary>
    public OdeMethod Method { get; init; } = OdeMethod.Deer;

    /// <summary>
    /// Absolute tolerance of the local error (DEER's per-interval estimate; Dopri5's step control): every component must
    /// satisfy |error| ≤ atol + rtol·|y|. Default: 1e-9 for double, 1e-6 for float.
    /// </summary>
    public double? AbsoluteTolerance { get; init; }

    /// <summary>Relative tolerance of the local error. Default: 1e-7 for double, 1e-5 for float.</summary>
    public double? RelativeTolerance { get; init; }

    /// <summary>
    /// Whether DEER inserts internal points where its local error estimate exceeds the tolerance. Default true; false
    /// integrates on the requested grid only, as the reference implementation does, and reports the estimate.
    /// </summary>
    public bool Adaptive { get; init; } = true;

    /// <summary>The most Newton iterations on one grid. Default: 100 for DEER, 1000 for quasi-DEER.</summary>
    public int? MaxIterations { get; init; }

    /// <summary>The most points DEER's internal grid may grow to, per sequence. Default 4,194,304.</summary>
    public int MaxGridSize { get; init; } = 1 << 22;

    /// <summary>RK4 steps per requested interval. Default 1.</summary>
    public int Substeps { get; init; } = 1;

    /// <summary>The most steps (accepted and rejected) Dopri5 may take per sequence. Default 10,000,000.</summary>
    public long MaxSteps { get; init; } = 10_000_000;

    /// <summary>What to do when DEER or quasi-DEER fails: by default, integrate with Dopri5 and report it.</summary>
    public FallbackPolicy Fallback { get; init; } = FallbackPolicy.Sequential;

    /// <summary>The most cores to use. Default: all of them.</summary>
    public int? MaxDegreeOfParallelism { get; init; }

    /// <summary>Checked between iterations and steps; cancelling throws <see cref="OperationCanceledException"/>.</summary>
    public CancellationToken CancellationToken { get; init; }
}
