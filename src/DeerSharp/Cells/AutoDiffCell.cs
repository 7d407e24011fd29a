
namespace DeerSharp.Cells;

/// <summary>
/// A cell for a user's <see cref="IRecurrence"/>, differentiated by forward-mode automatic differentiation: the
/// Jacobian (and its diagonal) costs S dual-number evaluations of f, or K for a recurrence that declares K×K blocks
/// (<see cref="IStructuredJacobian"/>); a backward step costs S + d. For a recurrence with
/// parameters to train, use <see cref="ParameterizedCell{TFunction, T}"/>, which adds their gradient.
/// </summary>
public readonly struct AutoDiffCell<TFunction, T> : IDifferentiableCell<T>, IConstructedCell, IStructuredJacobian
    where TFunction : IRecurrence
    where T : unmanaged, IFloatingPointIeee754<T>
{
    bool IConstructedCell.IsDefault => ((IConstructedCell)_cell).IsDefault;

    private readonly ParameterizedCell<Unparameterized<TFunction>, T> _cell;

    /// <summary>Wraps <paramref name="function"/>.</summary>
    public AutoDiffCell(TFunction function)
    {
        if (function is null)
        {
            throw new ArgumentNullException(nameof(function));
        }

        if (function.StateSize < 1)
        {
            throw new ArgumentException($"The recurrence's StateSize must be at least 1; it is {function.StateSize}.", nameof(function));
        }

        if (function.InputSize < 0)
        {
            throw new ArgumentException($"The recurrence's InputSize must not be negative; it is {function.InputSize}.", nameof(function));
        }

        _cell = new ParameterizedCell<Unparameterized<TFunction>, T>(new Unparameterized<TFunction>(function), []);
    }

    /// <summary>The wrapped recurrence.</summary>
    public TFunction Function => _cell.Function.Function;

    /// <summary>The structure the recurrence declares (<see cref="IStructuredJacobian"/>), or null.</summary>
    public JacobianStructure? JacobianStructure => _cell.JacobianStructure;

    /// <inheritdoc/>
    public int StateSize => _cell.StateSize;

    /// <inheritdoc/>
    public int InputSize => _cell.InputSize;

    /// <inheritdoc/>
    public int OutputSize => _cell.OutputSize;

    /// <summary>The projection is the input itself: f sees x_t unchanged.</summary>
    public int ProjectionSize => _cell.ProjectionSize;

    /// <inheritdoc/>
    public int WorkspaceSize => _cell.WorkspaceSize;

    /// <summary>A plain recurrence has no parameters: its states and inputs are differentiated.</summary>
    public int ParameterCount => 0;

    /// <inheritdoc/>
    public int BlockWorkspaceSize(int count) => _cell.BlockWorkspaceSize(count);

    /// <inheritdoc/>
    public int BackwardWorkspaceSize(int count) => _cell.BackwardWorkspaceSize(count);

    /// <inheritdoc/>
    public void ProjectInputs(ReadOnlySpan<T> inputs, Span<T> projections, int count) => _cell.ProjectInputs(inputs, projections, count);

    /// <inheritdoc/>
    public void Evaluate(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> workspace) =>
        _cell.Evaluate(state, projection, next, workspace);

    /// <inheritdoc/>
    public void EvaluateBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> next, Span<T> jacobians, JacobianMode mode,
        Span<T> workspace, int count) =>
        _cell.EvaluateBlock(states, projections, next, jacobians, mode, workspace, count);

    /// <inheritdoc/>
    public void BackwardBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, ReadOnlySpan<T> inputs, ReadOnlySpan<T> adjoints,
        Span<T> previousAdjoints, Span<T> inputAdjoints, Span<T> gradient, Span<T> workspace, int count) =>
        _cell.BackwardBlock(states, projections, inputs, adjoints, previousAdjoints, inputAdjoints, gradient, workspace, count);
}
