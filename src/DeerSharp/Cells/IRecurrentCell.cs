
namespace DeerSharp.Cells;

/// <summary>What <see cref="IRecurrentCell{T}.EvaluateBlock"/> computes besides f.</summary>
public enum JacobianMode
{
    /// <summary>f only.</summary>
    None,

    /// <summary>f and the Jacobian's diagonal ∂f_i/∂h_i, [count, S].</summary>
    Diagonal,

    /// <summary>f and the full Jacobian J[i, j] = ∂f_i/∂h_j, row-major, [count, S, S].</summary>
    Full,

    /// <summary>
    /// f and the blocks of a block-diagonal Jacobian, for a cell that declares a <see cref="JacobianStructure"/>:
    /// [count, S/K, K, K], where entry [b, r, c] is ∂f_i/∂h_j with i = structure.Index(b, r, n), j = structure.Index(b, c, n).
    /// Only requested from cells that implement <see cref="IStructuredJacobian"/>.
    /// </summary>
    Block,
}

/// <summary>
/// One step of a recurrence h_t = f(h_{t-1}, x_t) together with its Jacobian ∂f/∂h_{t-1}.
/// </summary>
/// <typeparam name="T">The element type: <see cref="float"/> or <see cref="double"/>.</typeparam>
/// <remarks>
/// <para>
/// The part of f that depends only on x_t (for the PyTorch cells, W_ih x_t plus biases) is split off as
/// <see cref="ProjectInputs"/>, so solvers compute it once for all steps (one matrix product) and never again per
/// iteration.
/// </para>
/// <para>
/// Two evaluation paths: <see cref="Evaluate"/> for one step, on the latency-critical sequential loop, and
/// <see cref="EvaluateBlock"/> for many steps at once, on the throughput-critical Newton passes, where a cell can use
/// one matrix product for the whole block instead of one matrix-vector product per step.
/// </para>
/// <para>
/// Implement this on a <c>struct</c>: the solvers are generic over the cell type, so the JIT specialises their loops per
/// cell. Implementations must be safe to call from many threads at once; all mutable memory comes in through
/// <c>workspace</c>. Writing f with its Jacobian by hand is only needed for speed: <see cref="AutoDiffCell{TFunction, T}"/>
/// takes f alone and derives the Jacobian by forward-mode automatic differentiation.
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

    /// <summary>The length P of one step's input projection.</summary>
    int ProjectionSize { get; }

    /// <summary>Scratch elements one call to <see cref="Evaluate"/> needs.</summary>
    int WorkspaceSize { get; }

    /// <summary>Scratch elements one call to <see cref="EvaluateBlock"/> with <paramref name="count"/> steps needs.</summary>
    int BlockWorkspaceSize(int count);

    /// <summary>Writes the part of f that depends only on the inputs, for <paramref name="count"/> steps.</summary>
    /// <param name="inputs">x, [count, d].</param>
    /// <param name="projections">Destination, [count, P].</param>
    /// <param name="count">The number of steps.</param>
    void ProjectInputs(ReadOnlySpan<T> inputs, Span<T> projections, int count);

    /// <summary>Computes next = f(state, x_t) for one step.</summary>
    void Evaluate(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> workspace);

    /// <summary>
    /// For <paramref name="count"/> independent steps i: next_i = f(states_i, x_i) and, per <paramref name="mode"/>, the
    /// Jacobian ∂f/∂h at states_i or its diagonal.
    /// </summary>
    /// <param name="states">The states the steps start from, [count, S].</param>
    /// <param name="projections">Their input projections, [count, P].</param>
    /// <param name="next">f for each step, [count, S].</param>
    /// <param name="jacobians">[count, S, S] for <see cref="JacobianMode.Full"/>, [count, S] for <see cref="JacobianMode.Diagonal"/>,
    /// [count, S·K] for <see cref="JacobianMode.Block"/>, unused otherwise.</param>
    /// <param name="mode">What to compute besides f.</param>
    /// <param name="workspace">At least <see cref="BlockWorkspaceSize"/>(count) elements.</param>
    /// <param name="count">The number of steps.</param>
    void EvaluateBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> next, Span<T> jacobians, JacobianMode mode,
        Span<T> workspace, int count);
}
