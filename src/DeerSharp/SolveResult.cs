
namespace DeerSharp;

/// <summary>
/// The states a solve produced and what happened on the way: the method, iterations, the residual of every iterate,
/// and whether the final states were checked to satisfy the recurrence.
/// </summary>
/// <typeparam name="T">The element type.</typeparam>
public sealed class SolveResult<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    internal SolveResult(T[] states, int batchSize, int length, int stateSize, int outputSize, SolveMethod method, int iterations,
        SolveStatus status, string message, double[] residualHistory, double maxResidual, TimeSpan elapsed, IReadOnlyList<SolveResult<T>>? layers = null,
        int fallbackSequences = 0, string? fallbackReason = null, int windows = 1, bool parallelCheck = false, bool statesChecked = false)
    {
        // The contract (docs/robustness.md) is enforced here, where every path builds its result: "Converged" needs a
        // residual that was computed on these states and is finite, and states that are all finite (scanned here unless
        // the engine checked every one as it stored it: statesChecked).
        if (status == SolveStatus.Converged && !ResultContract.ConvergedHolds(states, maxResidual, out string? broken, parallelCheck, statesChecked))
        {
            status = SolveStatus.Diverged;
            message = $"{broken} {message}";
        }

        FallbackSequences = fallbackSequences;
        FallbackReason = fallbackReason;
        Windows = windows;
        States = states;
        BatchSize = batchSize;
        Length = length;
        StateSize = stateSize;
        OutputSize = outputSize;
        Method = method;
        Iterations = iterations;
        Status = status;
        Message = message;
        ResidualHistory = residualHistory;
        MaxResidual = maxResidual;
        Elapsed = elapsed;
        Layers = layers;
    }

    /// <summary>All states, flat, shape [BatchSize, Length, StateSize], row-major. For an LSTM each state is [h; c].</summary>
    public T[] States { get; }

    /// <summary>
    /// Where the solve ran: <see cref="ComputeDevice.Cpu"/>, <see cref="ComputeDevice.Gpu"/> or <see cref="ComputeDevice.Emulated"/>;
    /// <see cref="ComputeDevice.Auto"/> for a stack whose layers ran on different devices.
    /// </summary>
    public ComputeDevice Device { get; internal set; } = ComputeDevice.Cpu;

    /// <summary>B, the number of sequences.</summary>
    public int BatchSize { get; }

    /// <summary>T, the sequence length.</summary>
    public int Length { get; }

    /// <summary>S, the state dimension.</summary>
    public int StateSize { get; }

    /// <summary>The leading part of each state that is the cell's output (h for an LSTM).</summary>
    public int OutputSize { get; }

    /// <summary>
    /// The method that was run (Auto resolved). Where it failed and <see cref="FallbackSequences"/> &gt; 0, those sequences'
    /// states come from <see cref="FallbackMethod"/> instead; every other state comes from this method.
    /// </summary>
    public SolveMethod Method { get; }

    /// <summary>
    /// The method that produced the states of the sequences (or windows) <see cref="Method"/> failed on:
    /// <see cref="SolveMethod.Sequential"/> after a fallback, null when there was none.
    /// </summary>
    public SolveMethod? FallbackMethod => FallbackSequences > 0 ? SolveMethod.Sequential : null;

    /// <summary>
    /// The updates <see cref="Method"/> applied (0 for <see cref="SolveMethod.Sequential"/>): summed over a sequence's
    /// windows, the largest over the batch, summed over the layers of a stack. A fallback's loop adds none.
    /// </summary>
    public int Iterations { get; }

    /// <summary>
    /// True only when the fixed-point residual max_t |h_t - f(h_{t-1}, x_t)| of the returned states was computed and is
    /// within tolerance for every sequence (and every layer).
    /// </summary>
    public bool Converged => Status == SolveStatus.Converged;

    /// <summary>How the solve ended.</summary>
    public SolveStatus Status { get; }

    /// <summary>A sentence for the user: what happened and, if it failed, what to try.</summary>
    public string Message { get; }

    /// <summary>
    /// The residual max_t |h_t - f(h_{t-1}, x_t)| of every iterate, starting with the initial guess (maximum over the batch).
    /// For a stack, the layers' histories one after another. Empty for the sequential method.
    /// </summary>
    public IReadOnlyList<double> ResidualHistory { get; }

    /// <summary>The fixed-point residual of the returned states, max over t, batch and state entries.</summary>
    public double MaxResidual { get; }

    /// <summary>Wall time of the solve, input validation excluded.</summary>
    public TimeSpan Elapsed { get; }

    /// <summary>
    /// How many sequences (or windows of them) the iterative method failed on and the sequential loop evaluated instead
    /// (<see cref="FallbackPolicy.Sequential"/>). Their states are the loop's, checked like every other.
    /// </summary>
    public int FallbackSequences { get; }

    /// <summary>Why the first fallback happened (the iterative method's own status message); null when none did.</summary>
    public string? FallbackReason { get; }

    /// <summary>How many windows each sequence was split into to keep within the memory budget (1: none).</summary>
    public int Windows { get; }

    /// <summary>For a stack of layers, each layer's result, bottom first; null for a single cell.</summary>
    public IReadOnlyList<SolveResult<T>>? Layers { get; }

    /// <summary>The state of sequence <paramref name="batch"/> at step <paramref name="t"/>.</summary>
    public ReadOnlySpan<T> State(int batch, int t)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batch);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(batch, BatchSize);
        ArgumentOutOfRangeException.ThrowIfNegative(t);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(t, Length);
        return States.AsSpan(((batch * Length) + t) * StateSize, StateSize);
    }

    /// <summary>The state at step <paramref name="t"/> of the only (or first) sequence.</summary>
    public ReadOnlySpan<T> State(int t) => State(0, t);

    /// <summary>The output (the first <see cref="OutputSize"/> state entries) of sequence <paramref name="batch"/> at step <paramref name="t"/>.</summary>
    public ReadOnlySpan<T> Output(int batch, int t) => State(batch, t)[..OutputSize];

    /// <summary>All outputs, flat, shape [BatchSize, Length, OutputSize]: what PyTorch's batch_first module returns as output.</summary>
    public T[] Outputs()
    {
        if (OutputSize == StateSize)
        {
            return (T[])States.Clone();
        }

        var outputs = new T[BatchSize * Length * OutputSize];
        for (int i = 0; i < BatchSize * Length; i++)
        {
            States.AsSpan(i * StateSize, OutputSize).CopyTo(outputs.AsSpan(i * OutputSize, OutputSize));
        }

        return outputs;
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"{Method}{(FallbackSequences > 0 ? " (sequential fallback)" : "")}: {Status} after {Iterations} iteration(s), max residual {MaxResidual:G3}, {Elapsed.TotalMilliseconds:F1} ms. {Message}";
}
