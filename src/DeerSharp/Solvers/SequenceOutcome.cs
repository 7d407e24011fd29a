namespace DeerSharp.Solvers;

/// <summary>How one sequence's solve ended.</summary>
internal readonly record struct SequenceOutcome(int Iterations, SolveStatus Status, double[] ResidualHistory, double MaxResidual, int FailedAt);
