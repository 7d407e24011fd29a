using System.Runtime.InteropServices;
using DeerSharp.AutoDiff;

namespace DeerSharp.Ode;

/// <summary>
/// An <see cref="IOdeField{T}"/> for a user's <see cref="IVectorField"/> with its parameter values, differentiated by
/// forward-mode automatic differentiation: column j of ∂f/∂y is one evaluation of f on dual numbers seeded along e_j.
/// </summary>
/// <remarks>
/// The Jacobian and its diagonal cost n dual evaluations of f; a backward product costs n + P of them. The parameter
/// values are copied when the field is built; <see cref="WithParameters"/> makes a field with new ones.
/// </remarks>
public readonly struct AutoDiffField<TField, T> : IOdeField<T>
    where TField : IVectorField
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly TField _f;
    private readonly int _n;
    private readonly int _m;
    private readonly T[] _parameters;

    /// <summary>Wraps <paramref name="field"/> with its parameter values θ (copied; empty for a field without any).</summary>
    public AutoDiffField(TField field, ReadOnlySpan<T> parameters)
    {
        if (field is null)
        {
            throw new ArgumentNullException(nameof(field));
        }

        if (field.StateSize < 1)
        {
            throw new ArgumentException($"The field's StateSize must be at least 1; it is {field.StateSize}.", nameof(field));
        }

        if (field.InputSize < 0 || field.ParameterCount < 0)
        {
            throw new ArgumentException(
                $"The field's InputSize and ParameterCount must not be negative; they are {field.InputSize} and {field.ParameterCount}.", nameof(field));
        }

        Require.Length(parameters, field.ParameterCount, nameof(parameters), $"[{field.ParameterCount}] (the field's ParameterCount)");
        Require.Finite(parameters, nameof(parameters));
        _f = field;
        _n = field.StateSize;
        _m = field.InputSize;
        _parameters = parameters.ToArray();
    }

    /// <summary>Wraps a field that has no parameters.</summary>
    public AutoDiffField(TField field)
        : this(field, ReadOnlySpan<T>.Empty)
    {
    }

    /// <summary>The wrapped field.</summary>
    public TField Field => _f;

    /// <summary>The parameter values θ.</summary>
    public ReadOnlySpan<T> Parameters => _parameters;

    /// <summary>The same field with other parameter values.</summary>
    public AutoDiffField<TField, T> WithParameters(ReadOnlySpan<T> parameters) => new(_f, parameters);

    /// <inheritdoc/>
    public int StateSize => _n;

    /// <inheritdoc/>
    public int InputSize => _m;

    /// <inheritdoc/>
    public int ParameterCount => _parameters.Length;

    /// <summary>Room for the dual y, x, f and θ (two T each).</summary>
    public int WorkspaceSize => 2 * (2 * _n + _m + _parameters.Length);

    /// <inheritdoc/>
    public void Evaluate(ReadOnlySpan<T> y, T t, ReadOnlySpan<T> x, Span<T> dydt, Span<T> workspace) =>
        _f.Apply(y, t, x, _parameters, dydt);

    /// <inheritdoc/>
    public void EvaluateJacobian(ReadOnlySpan<T> y, T t, ReadOnlySpan<T> x, Span<T> dydt, Span<T> jacobian, Span<T> workspace) =>
        Jacobian(y, t, x, dydt, jacobian, workspace, diagonal: false);

    /// <inheritdoc/>
    public void EvaluateJacobianDiagonal(ReadOnlySpan<T> y, T t, ReadOnlySpan<T> x, Span<T> dydt, Span<T> diagonal, Span<T> workspace) =>
        Jacobian(y, t, x, dydt, diagonal, workspace, diagonal: true);

    private void Jacobian(ReadOnlySpan<T> y, T t, ReadOnlySpan<T> x, Span<T> dydt, Span<T> jacobian, Span<T> workspace, bool diagonal)
    {
        Span<Dual<T>> dy = Duals(workspace, y, x, out Span<Dual<T>> dx, out Span<Dual<T>> df, out Span<Dual<T>> dp);
        var f = new DualField(_f, dy, Dual<T>.Constant(t), dx, dp);
        ForwardMode.Jacobian(ref f, dy, y, df, dydt, jacobian, diagonal);
    }

    /// <inheritdoc/>
    public void Backward(ReadOnlySpan<T> y, T t, ReadOnlySpan<T> x, ReadOnlySpan<T> v, Span<T> stateAdjoint, Span<T> parameterGradient,
        Span<T> workspace)
    {
        Span<Dual<T>> dy = Duals(workspace, y, x, out Span<Dual<T>> dx, out Span<Dual<T>> df, out Span<Dual<T>> dp);
        var f = new DualField(_f, dy, Dual<T>.Constant(t), dx, dp);
        ForwardMode.VectorJacobian(ref f, dy, y, df, v, stateAdjoint, accumulate: false);
        ForwardMode.VectorJacobian(ref f, dp, _parameters, df, v, parameterGradient, accumulate: true);
    }

    /// <summary>The field on dual numbers at (y, t, x; θ) as placed in the spans.</summary>
    private readonly ref struct DualField(TField function, Span<Dual<T>> y, Dual<T> t, Span<Dual<T>> x, Span<Dual<T>> parameters) : IDualFunction<T>
    {
        private readonly Span<Dual<T>> _y = y, _x = x, _parameters = parameters;

        public void Apply(Span<Dual<T>> output) => function.Apply<Dual<T>>(_y, t, _x, _parameters, output);
    }

    private Span<Dual<T>> Duals(Span<T> workspace, ReadOnlySpan<T> y, ReadOnlySpan<T> x, out Span<Dual<T>> dx, out Span<Dual<T>> df,
        out Span<Dual<T>> dp)
    {
        Span<Dual<T>> all = MemoryMarshal.Cast<T, Dual<T>>(workspace[..WorkspaceSize]);
        Span<Dual<T>> dy = all[.._n];
        dx = all.Slice(_n, _m);
        df = all.Slice(_n + _m, _n);
        dp = all.Slice(2 * _n + _m, _parameters.Length);
        for (int i = 0; i < _n; i++)
        {
            dy[i] = Dual<T>.Constant(y[i]);
        }

        for (int i = 0; i < _m; i++)
        {
            dx[i] = Dual<T>.Constant(x[i]);
        }

        for (int i = 0; i < _parameters.Length; i++)
        {
            dp[i] = Dual<T>.Constant(_parameters[i]);
        }

        return dy;
    }
}
