namespace DeerSharp;

/// <summary>How <see cref="Deer"/>.Solve evaluates the recurrence. See docs/methods.md.</summary>
public enum SolveMethod
{
    /// <summary>
    /// Let Deer choose by a cost model calibrated on measurements (batch size, T, state size, cores); the result reports
    /// the method chosen. On 2 cores that is always <see cref="Sequential"/>, which measured fastest everywhere there
    /// (docs/benchmarks.md); on many cores, long single sequences of small state get <see cref="QuasiDeer"/>.
    /// </summary>
    Auto,

    /// <summary>The plain loop h_t = f(h_{t-1}, x_t): T dependent steps, the reference every other method must match.</summary>
    Sequential,

    /// <summary>
    /// DEER (Lim et al. 2024): Newton's method on the whole trajectory with the full Jacobian; each iteration is one dense
    /// linear-recurrence scan. Converges quadratically near the solution; O(T n²) memory.
    /// </summary>
    Deer,

    /// <summary>
    /// quasi-DEER (Gonzalez et al. 2024): Newton with only the Jacobian's diagonal; O(T n) memory and work per iteration,
    /// more iterations than DEER.
    /// </summary>
    QuasiDeer,

    /// <summary>Picard (fixed-point) iteration h_t ← f(h_{t-1}, x_t) for all t at once: the baseline that shows why Newton is needed.</summary>
    Picard,

    /// <summary>
    /// Damped quasi-DEER (quasi-ELK; Gonzalez et al. 2024, reference §6): a Levenberg-Marquardt step with the Jacobian's
    /// diagonal, λ adapted per step (shrunk after a step that lowers Σ|r|², grown and retried after one that does not).
    /// Slower per iteration than quasi-DEER but it does not blow up where quasi-DEER and DEER do. O(T n).
    /// </summary>
    QuasiElk,

    /// <summary>
    /// For linear-surrogate cells (<see cref="Cells.ILinearSurrogateCell{T}"/>: GILR, GILR-LSTM, SRU): the exact trajectory from
    /// the model's own scans, no Newton iteration. Reported as 1 iteration, its residual checked like every other method's.
    /// <see cref="Auto"/> picks it for those cells on a device; on the CPU, where the scans run in order and are the loop
    /// with a residual pass added, it picks <see cref="Sequential"/>. Asking for it on any other cell is an error.
    /// </summary>
    Scan,
}
