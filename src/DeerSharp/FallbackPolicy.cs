namespace DeerSharp;

/// <summary>What a solve does when its iterative method does not converge (see docs/robustness.md).</summary>
public enum FallbackPolicy
{
    /// <summary>
    /// Evaluate the sequences (or windows) that failed with the sequential loop, and say so in the result
    /// (<see cref="SolveResult{T}.FallbackSequences"/>, <see cref="SolveResult{T}.FallbackReason"/>). The library's default.
    /// </summary>
    Sequential,

    /// <summary>Return the last iterate with a status that is not <see cref="SolveStatus.Converged"/>.</summary>
    None,
}
