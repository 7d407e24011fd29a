namespace DeerSharp.Engines;

/// <summary>How one sequence's solve ended.</summary>
/// <param name="Iterations">Updates the method applied, summed over the sequence's windows.</param>
/// <param name="Status">The final status, after any fallback.</param>
/// <param name="ResidualHistory">The residual of every checked iterate, windows one after another.</param>
/// <param name="MaxResidual">The residual of the returned states.</param>
/// <param name="FailedAt">The iteration (or step, for the loop) where it diverged; -1 otherwise.</param>
/// <param name="Fallbacks">Windows the loop evaluated after the iterative method failed.</param>
/// <param name="FallbackReason">The iterative method's message for the first of them.</param>
/// <param name="Windows">Windows the sequence was split into.</param>
/// <param name="Message">For a growth-detected divergence, what grew; otherwise null.</param>
/// <param name="Checked">
/// Every state the outcome covers was checked to be finite where the engine stored it (the sequential loop's own check
/// or its scan of each chunk), so the result's contract need not scan them again (<see cref="ResultContract"/>).
/// </param>
internal readonly record struct SequenceOutcome(int Iterations, SolveStatus Status, double[] ResidualHistory, double MaxResidual, int FailedAt,
    int Fallbacks = 0, string? FallbackReason = null, int Windows = 1, string? Message = null, bool Checked = false);
