namespace DeerSharp;

/// <summary>Options for <see cref="Deer"/>.Solve. Every option has a working default.</summary>
public sealed record SolveOptions
{
    /// <summary>The default options: DEER with the element type's default tolerances, falling back to the loop on failure.</summary>
    public static SolveOptions Default { get; } = new();

    /// <summary>The method. Default: <see cref="SolveMethod.Deer"/>.</summary>
    public SolveMethod Method { get; init; } = SolveMethod.Deer;

    /// <summary>
    /// The most updates an iterative method may apply. Default: 100 for DEER, 500 for quasi-DEER and Picard, in each case
    /// capped at the sequence length T, after which every method is exact (reference §3, §5).
    /// </summary>
    public int? MaxIterations { get; init; }

    /// <summary>
    /// Absolute tolerance on the fixed-point residual: the solve has converged when every |h_t - f(h_{t-1}, x_t)| ≤ atol + rtol·|f(h_{t-1}, x_t)|.
    /// Default: 1e-5 for float, 1e-10 for double.
    /// </summary>
    public double? AbsoluteTolerance { get; init; }

    /// <summary>Relative tolerance on the fixed-point residual. Default: 1e-5 for float, 1e-10 for double.</summary>
    public double? RelativeTolerance { get; init; }

    /// <summary>The starting trajectory when no warm start is given. Default: <see cref="InitialGuess.Zeros"/>.</summary>
    public InitialGuess InitialGuess { get; init; } = InitialGuess.Zeros;

    /// <summary>
    /// The most cores to use. Default: all of them (<see cref="Environment.ProcessorCount"/>). Beyond the calling thread,
    /// the CPU engine uses its own long-lived helper threads, one per extra core; on Linux each is kept off the core its
    /// caller runs on (within the process's allowed cores), which it had otherwise often shared after an idle pause.
    /// </summary>
    public int? MaxDegreeOfParallelism { get; init; }

    /// <summary>What to do when an iterative method does not converge. Default: <see cref="FallbackPolicy.Sequential"/>.</summary>
    public FallbackPolicy Fallback { get; init; } = FallbackPolicy.Sequential;

    /// <summary>
    /// Bytes the solve may use for its working buffers (projections, iterates, Jacobians), the states it returns aside.
    /// Over budget, each sequence is solved in windows, each starting from the previous one's final state. Default: half of
    /// the memory the runtime reports as available.
    /// </summary>
    public long? MemoryBudgetBytes { get; init; }

    /// <summary>The starting damping λ of <see cref="SolveMethod.QuasiElk"/>; it adapts from there. Default 0.01.</summary>
    public double InitialDamping { get; init; } = 1e-2;

    /// <summary>Where to solve. Default: <see cref="ComputeDevice.Cpu"/>. See docs/benchmarks-gpu.md for the GPU backend (ILGPU).</summary>
    public ComputeDevice Device { get; init; } = ComputeDevice.Cpu;

    /// <summary>Checked between iterations (and every few thousand steps of the loop); cancelling throws <see cref="OperationCanceledException"/>.</summary>
    public CancellationToken CancellationToken { get; init; }

    /// <summary>Receives a <see cref="SolveProgress"/> after every iteration of every sequence; null for none.</summary>
    public IProgress<SolveProgress>? Progress { get; init; }

    internal void Validate()
    {
        if (!Enum.IsDefined(Method))
        {
            throw new ArgumentException($"Method must be one of {string.Join(", ", Enum.GetNames<SolveMethod>())}; it is {(int)Method}.", nameof(Method));
        }

        if (!Enum.IsDefined(InitialGuess))
        {
            throw new ArgumentException($"InitialGuess must be one of {string.Join(", ", Enum.GetNames<InitialGuess>())}; it is {(int)InitialGuess}.", nameof(InitialGuess));
        }

        if (MaxIterations is < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxIterations), MaxIterations, "MaxIterations must be at least 0.");
        }

        CheckTolerance(AbsoluteTolerance, nameof(AbsoluteTolerance));
        CheckTolerance(RelativeTolerance, nameof(RelativeTolerance));
        if (!Enum.IsDefined(Device))
        {
            throw new ArgumentException($"Device must be one of {string.Join(", ", Enum.GetNames<ComputeDevice>())}; it is {(int)Device}.", nameof(Device));
        }

        if (!Enum.IsDefined(Fallback))
        {
            throw new ArgumentException($"Fallback must be one of {string.Join(", ", Enum.GetNames<FallbackPolicy>())}; it is {(int)Fallback}.", nameof(Fallback));
        }

        if (MemoryBudgetBytes is < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MemoryBudgetBytes), MemoryBudgetBytes, "MemoryBudgetBytes must be positive.");
        }

        if (!double.IsFinite(InitialDamping) || InitialDamping <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(InitialDamping), InitialDamping, "InitialDamping must be finite and positive.");
        }

        if (MaxDegreeOfParallelism is < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxDegreeOfParallelism), MaxDegreeOfParallelism, "MaxDegreeOfParallelism must be at least 1.");
        }
    }

    private static void CheckTolerance(double? value, string name)
    {
        if (value is { } v && (!double.IsFinite(v) || v < 0))
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be finite and non-negative.");
        }
    }
}
