
namespace DeerSharp.Cells;

/// <summary>
/// A cell that can run its step backwards: for an adjoint v = ∂L/∂h_t it gives J_tᵀ v = ∂L/∂h_{t-1} through this step,
/// (∂f/∂x_t)ᵀ v, and the step's contribution (∂f/∂θ)ᵀ v to the parameter gradient. <see cref="Deer"/>.Gradient
/// chains these over the sequence, by the adjoint scan or by backpropagation through time.
/// </summary>
public interface IDifferentiableCell<T> : IRecurrentCell<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The length of the flat parameter gradient. PyTorch cells: [weight_ih, weight_hh, bias_ih, bias_hh], row-major.</summary>
    int ParameterCount { get; }

    /// <summary>Scratch elements one call to <see cref="BackwardBlock"/> with <paramref name="count"/> steps needs.</summary>
    int BackwardWorkspaceSize(int count);

    /// <summary>
    /// For <paramref name="count"/> independent steps i, with h_i = f(states_i, x_i) and adjoint v_i = ∂L/∂h_i:
    /// writes ∂L/∂states_i (through this step only) and ∂L/∂x_i, and adds the parameter gradient to <paramref name="gradient"/>.
    /// </summary>
    /// <param name="states">The states each step starts from, [count, S].</param>
    /// <param name="projections">Their input projections, [count, P] (from <see cref="IRecurrentCell{T}.ProjectInputs"/>).</param>
    /// <param name="inputs">The inputs x_i, [count, d].</param>
    /// <param name="adjoints">v_i, [count, S].</param>
    /// <param name="previousAdjoints">Destination of J_iᵀ v_i, [count, S].</param>
    /// <param name="inputAdjoints">Destination of (∂f/∂x_i)ᵀ v_i, [count, d].</param>
    /// <param name="gradient">Accumulates Σ_i (∂f/∂θ)ᵀ v_i, [<see cref="ParameterCount"/>].</param>
    /// <param name="workspace">At least <see cref="BackwardWorkspaceSize"/>(count) elements.</param>
    /// <param name="count">The number of steps.</param>
    void BackwardBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, ReadOnlySpan<T> inputs, ReadOnlySpan<T> adjoints,
        Span<T> previousAdjoints, Span<T> inputAdjoints, Span<T> gradient, Span<T> workspace, int count);
}
