
namespace DeerSharp.Cells;

/// <summary>
/// A recurrence h_t = f(h_{t-1}, x_t; θ) with explicit parameters θ, written once over the number type like
/// <see cref="IRecurrence"/>. Wrapped in a <see cref="ParameterizedCell{TFunction, T}"/>, it is solved like any cell, and
/// its gradient with respect to θ comes from forward-mode automatic differentiation.
/// </summary>
public interface IParameterizedRecurrence
{
    /// <summary>The state dimension.</summary>
    int StateSize { get; }

    /// <summary>The input dimension.</summary>
    int InputSize { get; }

    /// <summary>The number of parameters θ.</summary>
    int ParameterCount { get; }

    /// <summary>Writes next = f(state, input; parameters).</summary>
    void Apply<TNum>(ReadOnlySpan<TNum> state, ReadOnlySpan<TNum> input, ReadOnlySpan<TNum> parameters, Span<TNum> next)
        where TNum : IFloatingPointIeee754<TNum>;
}

/// <summary>An <see cref="IRecurrence"/> seen as a parameterized one with no parameters.</summary>
public readonly struct Unparameterized<TFunction>(TFunction function) : IParameterizedRecurrence, IStructuredJacobian
    where TFunction : IRecurrence
{
    /// <summary>The wrapped recurrence's declared structure, if it declares one.</summary>
    public JacobianStructure? JacobianStructure => function is IStructuredJacobian declared ? declared.JacobianStructure : null;

    /// <summary>The wrapped recurrence.</summary>
    public TFunction Function => function;

    /// <inheritdoc/>
    public int StateSize => function.StateSize;

    /// <inheritdoc/>
    public int InputSize => function.InputSize;

    /// <inheritdoc/>
    public int ParameterCount => 0;

    /// <inheritdoc/>
    public void Apply<TNum>(ReadOnlySpan<TNum> state, ReadOnlySpan<TNum> input, ReadOnlySpan<TNum> parameters, Span<TNum> next)
        where TNum : IFloatingPointIeee754<TNum> => function.Apply(state, input, next);
}
