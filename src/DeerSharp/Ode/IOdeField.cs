
namespace DeerSharp.Ode;

/// <summary>
/// A vector field f(y, t, x; θ) of the ODE dy/dt = f(y, t, x(t)), with its Jacobian ∂f/∂y and its vector-Jacobian
/// products, as the ODE solvers need them.
/// </summary>
/// <remarks>
/// <para>
/// Implement it on a struct: the solvers are generic over the field, so the JIT specialises them to it. Every method may
/// be called from many threads at once; keep state that changes out of the field and use the <c>workspace</c> span
/// (<see cref="WorkspaceSize"/> values, private to the call) for scratch.
/// </para>
/// <para>
/// Deer supplies <see cref="MlpField{T}"/> (a PyTorch nn.Sequential MLP), <see cref="AutoDiffField{TField, T}"/> (any
/// <see cref="IVectorField"/>, differentiated automatically) and the built-in systems in <see cref="OdeSystems"/>.
/// </para>
/// </remarks>
public interface IOdeField<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>n, the dimension of y.</summary>
    int StateSize { get; }

    /// <summary>m, the dimension of the optional input x(t); 0 for none.</summary>
    int InputSize { get; }

    /// <summary>The number of parameters θ; 0 for a field without parameters.</summary>
    int ParameterCount { get; }

    /// <summary>The scratch a single call needs, in values of T.</summary>
    int WorkspaceSize { get; }

    /// <summary>Writes dydt = f(y, t, x).</summary>
    void Evaluate(ReadOnlySpan<T> y, T t, ReadOnlySpan<T> x, Span<T> dydt, Span<T> workspace);

    /// <summary>Writes dydt = f(y, t, x) and the Jacobian ∂f/∂y, row-major n×n (entry [i, j] is ∂f_i/∂y_j).</summary>
    void EvaluateJacobian(ReadOnlySpan<T> y, T t, ReadOnlySpan<T> x, Span<T> dydt, Span<T> jacobian, Span<T> workspace);

    /// <summary>Writes dydt = f(y, t, x) and the diagonal of ∂f/∂y.</summary>
    void EvaluateJacobianDiagonal(ReadOnlySpan<T> y, T t, ReadOnlySpan<T> x, Span<T> dydt, Span<T> diagonal, Span<T> workspace);

    /// <summary>
    /// The vector-Jacobian products for a cotangent v: writes (∂f/∂y)ᵀ v into <paramref name="stateAdjoint"/> and adds
    /// (∂f/∂θ)ᵀ v into <paramref name="parameterGradient"/> (<see cref="ParameterCount"/> values).
    /// </summary>
    void Backward(ReadOnlySpan<T> y, T t, ReadOnlySpan<T> x, ReadOnlySpan<T> v, Span<T> stateAdjoint, Span<T> parameterGradient,
        Span<T> workspace);
}

/// <summary>
/// A vector field dy/dt = f(y, t, x; θ) written once over the number type. Deer evaluates it on float or double and
/// differentiates it on <see cref="AutoDiff.Dual{T}"/>: you never write a derivative. Wrap it in
/// <see cref="AutoDiffField{TField, T}"/> with its parameter values to solve it.
/// </summary>
/// <remarks>
/// Implement it on a struct and keep <see cref="Apply{TNum}"/> free of shared mutable state: it is called from many threads
/// at once. Turn constants into the number type with <c>TNum.CreateTruncating(value)</c>.
/// </remarks>
public interface IVectorField
{
    /// <summary>n, the dimension of y.</summary>
    int StateSize { get; }

    /// <summary>m, the dimension of the input x(t); 0 for none.</summary>
    int InputSize { get; }

    /// <summary>The number of parameters θ.</summary>
    int ParameterCount { get; }

    /// <summary>Writes dydt = f(y, t, x; θ).</summary>
    void Apply<TNum>(ReadOnlySpan<TNum> y, TNum t, ReadOnlySpan<TNum> x, ReadOnlySpan<TNum> parameters, Span<TNum> dydt)
        where TNum : IFloatingPointIeee754<TNum>;
}
