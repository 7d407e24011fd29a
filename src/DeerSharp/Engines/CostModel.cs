namespace DeerSharp.Engines;

/// <summary>
/// How <see cref="SolveMethod.Auto"/> chooses on the CPU. An iterative method does k passes over the sequence, each
/// costing ρ times a sequential step per step (ρ > 1: the Jacobian, the residual, the scan), spread over P cores; the
/// loop does one pass, spread over min(B, P) cores (sequences of a batch run side by side). So quasi-DEER wins by
/// P / (min(B, P) · k · ρ), and the choice needs that ratio above a safety margin, since k is only an estimate.
/// </summary>
/// <remarks>
/// ρ and k were measured with <c>deer bench</c> on 2026-11-21 (AMD EPYC, 2 cores, AVX-512; GRU, float32, B = 1,
/// docs/benchmarks.md): quasi-DEER took 3 iterations at n = 1 and 8-9 at n = 4-32, each costing 1.7-6 sequential
/// steps per step; DEER took 3 iterations at 5-10 sequential steps each. On 2 cores no iterative method can win, and
/// <see cref="SolveMethod.Auto"/> picks the loop. On many cores the model picks quasi-DEER for long, small-state,
/// single sequences; that regime is an extrapolation from these constants, not a measurement.
/// Re-measured on 2026-12-02 (third session, same kind of machine) after the iteration was made cheaper (SIMD diagonal
/// Jacobians, the scan fused into the evaluation pass): one quasi-DEER iteration now costs 0.33-0.38 sequential steps per
/// step on 2 cores for the GRU at n = 32 (BenchmarkDotNet), so ρ ≈ 0.7 on one core; whole solves in `deer bench` gave
/// ρ ≈ 0.74 (GRU n = 32, 9 iterations), 1.06 (GRU n = 8, 9 iterations) and 1.1 (LSTM, S = 64, 13 iterations). The model
/// takes ρ = 1.1 for S > 1, the largest of these, with k = 9; it then leaves the loop for a single sequence from about
/// 20 cores on. n = 1 was not re-measured and keeps its constants. No machine with more than 2 cores has run this.
/// </remarks>
internal static class CostModel
{
    /// <summary>Required predicted gain before leaving the loop: the iteration count of a real model varies.</summary>
    private const double Margin = 2.0;

    /// <summary>Shortest sequence worth iterating: below it, per-pass overheads dominate.</summary>
    private const int MinimumLength = 4096;

    public static SolveMethod Choose(int batchSize, int length, int stateSize, int cores, JacobianStructure? structure = null)
    {
        if (length < MinimumLength || cores < 2)
        {
            return SolveMethod.Sequential;
        }

        double sequentialCores = Math.Min(Math.Max(1, batchSize), cores);
        if (structure is { } declared)
        {
            // Exact Newton at the cost of a block scan (docs/structured-cells.md, deer bench --only structured,
            // 2026-12-02, 2 cores): 2-3 iterations, each costing 0.4-0.55 sequential steps per step on 2 cores for
            // K = 1 and 0.76-0.96 for K = 2, about (K + 1)/2 steps on one core. On 2 cores the loop stays ahead; the
            // crossing near 6 cores for K = 1 is an extrapolation from these constants, not a measurement.
            double blockGain = cores / (sequentialCores * 3.0 * ((declared.Side + 1) / 2.0));
            return blockGain >= Margin ? SolveMethod.Deer : SolveMethod.Sequential;
        }

        (double iterations, double passCost) = stateSize <= 1 ? (3.0, 6.0) : (9.0, 1.1);
        double gain = cores / (sequentialCores * iterations * passCost);
        return gain >= Margin ? SolveMethod.QuasiDeer : SolveMethod.Sequential;
    }
}
