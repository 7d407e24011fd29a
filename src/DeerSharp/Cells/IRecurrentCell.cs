using System.Numerics;

namespace DeerSharp.Cells;

/// <summary>
/// One step of a recurrence h_t = f(h_{t-1}, x_t) together with its Jacobian ∂f/∂h_{t-1}.
/// </summary>
/// <typeparam name="T">The element type: <see cref="float"/> or <see cref="double"/>.</typeparam>
/// <remarks>
/// <para>
/// The part of f that depends only on x_t (for the PyTorch cells, W_ih x_t + biases) is split off as
/// <see cref="ProjectInput"/>, so solvers compute it once per time step and never again per Newton iteration.
/// </para>
/// <para>
/// Implement this on a <c>struct</c>: the solvers are generic over the cell type, so the JIT specialises their
/// loops per cell and inlines these calls. Implementations must be safe to call from many threads at once;
/// all mutable per-call memory comes in through <c>workspace</c>.
/// </para>
/// <para>
/// Writing f by hand with its Jacobian is only needed for speed. <see cref="AutoDiffCell{TFunction, T}"/> takes
/// f alone, written once over the number type, and derives the Jacobian by forward-mode automatic differentiation.
/// </para>
/// </remarks>
public interface IRecurrentCell<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The state dimension S. For an LSTM the state is [h; c], so S = 2n.</summary>
    int StateSize { get; }

    /// <summary>The input dimension d of x_t.</summary>
    int InputSize { get; }

    /// <summary>The leading part of the state that forms the cell's output (h for an LSTM; the whole state otherwise).</summary>
    int OutputSize { get; }

    /// <summary>The length of the per-step input projection that <see cref="ProjectInput"/> writes.</summary>
    int ProjectionSize { get; }

    /// <summary>Scratch elements that one call to an Evaluate method needs.</summary>
    int WorkspaceSize { get; }

    /// <summary>Writes the part of f that depends only on the input x_t.</summary>
    /// <param name="input">x_t, of length <see cref="InputSize"/>.</param>
    /// <param name="projection">Destination of length <see cref="ProjectionSize"/>.</param>
    void ProjectInput(ReadOnlySpan<T> input, Span<T> projection);

    /// <summary>Computes next = f(state, x_t).</summary>
    void Evaluate(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> workspace);

    /// <summary>Computes next = f(state, x_t) and the Jacobian J[i, j] = ∂next_i/∂state_j, row-major S×S.</summary>
    void EvaluateJacobian(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> jacobian, Span<T> workspace);

    /// <summary>Computes next = f(state, x_t) and the Jacobian's diagonal ∂next_i/∂state_i.</summary>
    void EvaluateJacobianDiagonal(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> diagonal, Span<T> workspace);
}
