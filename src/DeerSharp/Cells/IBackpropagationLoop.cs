namespace DeerSharp.Cells;

/// <summary>
/// A cell that runs backpropagation through time as a loop of its own (Cpu/Adjoint.Loop.cs): what does not depend on
/// the adjoint (W_hh h_{t-1} and the gates of every step) is computed first for whole blocks of steps, by one matrix
/// product each and in parallel; the loop from the last step back then does per step only the gates' derivatives δ and
/// one product W_hhᵀ δ, and stores δ. The parameter and input gradients come after it, from the stored δ by block
/// products in parallel (<see cref="Gradients"/>): nothing is computed twice.
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

    /// <summary>Values per step of δ that <see cref="Backpropagate"/> writes and <see cref="Gradients"/> reads.</summary>
    int DeltaSize { get; }

    /// <summary>Scratch values <see cref="Gradients"/> needs for <paramref name="count"/> steps.</summary>
    int GradientWorkspaceSize(int count);

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
    /// <param name="deltas">Destination of each step's δ, [count, <see cref="DeltaSize"/>].</param>
    /// <param name="carry">[S], in and out.</param>
    /// <param name="scratch">At least <see cref="BackpropagationScratchSize"/> values.</param>
    /// <param name="count">The number of steps.</param>
    void Backpropagate(ReadOnlySpan<T> states, ReadOnlySpan<T> cache, ReadOnlySpan<T> g, Span<T> deltas, Span<T> carry, Span<T> scratch, int count);

    /// <summary>
    /// From the steps' δ: writes ∂L/∂x_t and adds the steps' parameter gradient to <paramref name="gradient"/>, as
    /// <see cref="IDifferentiableCell{T}.BackwardBlock"/> would for the same adjoints.
    /// </summary>
    /// <param name="states">h_{t-1} of each step, [count, S].</param>
    /// <param name="inputs">x_t, [count, d].</param>
    /// <param name="deltas">What <see cref="Backpropagate"/> wrote for these steps.</param>
    /// <param name="inputAdjoints">Destination of ∂L/∂x_t, [count, d].</param>
    /// <param name="gradient">Accumulates the parameter gradient.</param>
    /// <param name="workspace">At least <see cref="GradientWorkspaceSize"/>(count) values.</param>
    /// <param name="count">The number of steps.</param>
    void Gradients(ReadOnlySpan<T> states, ReadOnlySpan<T> inputs, ReadOnlySpan<T> deltas, Span<T> inputAdjoints, Span<T> gradient, Span<T> workspace, int count);
}
