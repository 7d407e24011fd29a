namespace DeerSharp;

/// <summary>One iteration's report, sent to <see cref="SolveOptions.Progress"/> (from worker threads: keep handlers cheap).</summary>
/// <param name="Method">The method iterating.</param>
/// <param name="Layer">The layer of a stack (0 for a single cell).</param>
/// <param name="Sequence">The sequence of the batch.</param>
/// <param name="Window">The window of the sequence (0 unless the memory budget split it).</param>
/// <param name="Iteration">The iteration just checked (0 is the initial guess).</param>
/// <param name="Residual">Its fixed-point residual max_t |h_t - f(h_{t-1}, x_t)|.</param>
public readonly record struct SolveProgress(SolveMethod Method, int Layer, int Sequence, int Window, int Iteration, double Residual);
