namespace DeerSharp.Cells;

/// <summary>
/// A cell that runs backpropagation through time as a loop of its own (Cpu/Adjoint.Loop.cs): what does not depend on
/// the adjoint (W_hh h_{t-1} and the gates of every step) is computed first for whole blocks of steps, by one matrix
/// product each and in parallel; the loop from the last step back then does per step only the gates' derivatives and
/// one product W_hhᵀ δ. The parameter and input gradients come after it, every step at once, from
/// <see cref="IDifferentiableCell{T}.BackwardBlock"/>.
/// </summary>
/// <remarks>
/// One interface call per block of steps, never per step: the loop runs inside the cell's own (specialised) method.
/// </remarks>
internal interface IBackpropagationLoop<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Values per step that <see cref="PrepareBackpropagation"/> writes and <see cref="Backpropagate"/> reads.</summary>
    int BackpropagationCacheSize { get; }

    /// <summary>Scratch values <see cref="PrepareBackpropagation"/> needs for <paramref name="count"/> steps.</summary>
    int PrepareWorkspaceSize(int count);

    /// <summary>Scratch values one call of <see cref="Backpropagate"/> needs, whatever its count.</summary>
    int BackpropagationScratchSize { get; }

    /// <summary>For <paramref name="count"/> independent steps: the per-step values the loop reads, [count, cache size].</summary>
    /// <param name="states">h_{t-1} of each step, [count, S].</param>
    /// <param name="projections">Their input projections, [count, P].</param>
    /// <param name="cache">Destination, [count, <see cref="BackpropagationCacheSize"/>].</param>
    /// <param name="workspace">At least <see cref="PrepareWorkspaceSize"/>(count) values.</param>
    /// <param name="count">The number of steps.</param>
    void PrepareBackpropagation(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> cache, Span<T> workspace, int count);

    /// <summary>
    /// The adjoint recurrence over steps count − 1 down to 0: v_t = g_t + J_{t+1}ᵀ v_{t+1}, with
    /// <paramref name="carry"/> holding J_{count}ᵀ v_{count} on entry (zeros at the end of time) and J_0ᵀ v_0 on return.
    /// </summary>
    /// <param name="states">h_{t-1} of each step, [count, S].</param>
    /// <param name="cache">What <see cref="PrepareBackpropagation"/> wrote for these steps.</param>
    /// <param name="g">∂L/∂h_t directly (the output's cotangent), [count, S].</param>
    /// <param name="adjoints">Destination of v_t, [count, S].</param>
    /// <param name="carry">[S], in and out.</param>
    /// <param name="scratch">At least <see cref="BackpropagationScratchSize"/> values.</param>
    /// <param name="count">The number of steps.</param>
    void Backpropagate(ReadOnlySpan<T> states, ReadOnlySpan<T> cache, ReadOnlySpan<T> g, Span<T> adjoints, Span<T> carry, Span<T> scratch, int count);
}
