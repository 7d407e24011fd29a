namespace DeerSharp;

/// <summary>What a solve ended with. <see cref="SolveResult{T}.Message"/> says what to do about it.</summary>
public enum SolveStatus
{
    /// <summary>The fixed-point residual of the returned states was checked and is within tolerance.</summary>
    Converged,

    /// <summary>The iteration limit was reached with the residual still above tolerance.</summary>
    MaxIterationsReached,

    /// <summary>An iterate or an evaluation of f became NaN or infinite.</summary>
    Diverged,
}
