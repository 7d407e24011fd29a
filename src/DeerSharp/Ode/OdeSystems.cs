
namespace DeerSharp.Ode;

/// <summary>
/// Built-in systems, each an <see cref="IVectorField"/> whose physical constants are its parameters θ (so their gradients
/// come for free). <see cref="Field{TField, T}"/> wraps one with its default constants.
/// </summary>
public static class OdeSystems
{
    /// <summary>The names <c>deer ode --system</c> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = ["lotka-volterra", "van-der-pol", "pendulum", "two-body"];

    /// <summary>A built-in system with its default constants, ready to solve.</summary>
    public static AutoDiffField<TField, T> Field<TField, T>()
        where TField : struct, IVectorField, IBuiltInSystem
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        double[] defaults = TField.DefaultParameters;
        var parameters = new T[defaults.Length];
        for (int i = 0; i < defaults.Length; i++)
        {
            parameters[i] = T.CreateChecked(defaults[i]);
        }

        return new AutoDiffField<TField, T>(default, parameters);
    }
}

/// <summary>A built-in system: its default constants.</summary>
public interface IBuiltInSystem
{
    /// <summary>The default value of every parameter, in order.</summary>
    static abstract double[] DefaultParameters { get; }
}

/// <summary>
/// Lotka-Volterra predator-prey: y = [prey u, predator v], du/dt = α u − β u v, dv/dt = δ u v − γ v;
/// θ = [α, β, δ, γ], by default [1.5, 1, 1, 3].
/// </summary>
public readonly struct LotkaVolterra : IVectorField, IBuiltInSystem
{
    /// <inheritdoc/>
    public static double[] DefaultParameters => [1.5, 1.0, 1.0, 3.0];

    /// <inheritdoc/>
    public int StateSize => 2;

    /// <inheritdoc/>
    public int InputSize => 0;

    /// <inheritdoc/>
    public int ParameterCount => 4;

    /// <inheritdoc/>
    public void Apply<TNum>(ReadOnlySpan<TNum> y, TNum t, ReadOnlySpan<TNum> x, ReadOnlySpan<TNum> parameters, Span<TNum> dydt)
        where TNum : IFloatingPointIeee754<TNum>
    {
        TNum u = y[0], v = y[1];
        dydt[0] = parameters[0] * u - parameters[1] * u * v;
        dydt[1] = parameters[2] * u * v - parameters[3] * v;
    }
}

/// <summary>Van der Pol oscillator: y = [x, v], dx/dt = v, dv/dt = μ (1 − x²) v − x; θ = [μ], by default [1].</summary>
public readonly struct VanDerPol : IVectorField, IBuiltInSystem
{
    /// <inheritdoc/>
    public static double[] DefaultParameters => [1.0];

    /// <inheritdoc/>
    public int StateSize => 2;

    /// <inheritdoc/>
    public int InputSize => 0;

    /// <inheritdoc/>
    public int ParameterCount => 1;

    /// <inheritdoc/>
    public void Apply<TNum>(ReadOnlySpan<TNum> y, TNum t, ReadOnlySpan<TNum> x, ReadOnlySpan<TNum> parameters, Span<TNum> dydt)
        where TNum : IFloatingPointIeee754<TNum>
    {
        TNum p = y[0], v = y[1];
        dydt[0] = v;
        dydt[1] = parameters[0] * (TNum.One - p * p) * v - p;
    }
}

/// <summary>
/// A damped pendulum: y = [angle φ, angular velocity ω], dφ/dt = ω, dω/dt = −(g/L) sin φ − c ω;
/// θ = [g/L, c], by default [9.81, 0].
/// </summary>
public readonly struct Pendulum : IVectorField, IBuiltInSystem
{
    /// <inheritdoc/>
    public static double[] DefaultParameters => [9.81, 0.0];

    /// <inheritdoc/>
    public int StateSize => 2;

    /// <inheritdoc/>
    public int InputSize => 0;

    /// <inheritdoc/>
    public int ParameterCount => 2;

    /// <inheritdoc/>
    public void Apply<TNum>(ReadOnlySpan<TNum> y, TNum t, ReadOnlySpan<TNum> x, ReadOnlySpan<TNum> parameters, Span<TNum> dydt)
        where TNum : IFloatingPointIeee754<TNum>
    {
        dydt[0] = y[1];
        dydt[1] = -parameters[0] * TNum.Sin(y[0]) - parameters[1] * y[1];
    }
}

/// <summary>
/// Two bodies in a plane under Newtonian gravity (8 states, as in the DEER paper's neural-ODE experiment):
/// y = [x1, y1, x2, y2, vx1, vy1, vx2, vy2]; each body accelerates towards the other as G m_other r / |r|³;
/// θ = [G m1, G m2], by default [1, 1].
/// </summary>
public readonly struct TwoBody : IVectorField, IBuiltInSystem
{
    /// <inheritdoc/>
    public static double[] DefaultParameters => [1.0, 1.0];

    /// <inheritdoc/>
    public int StateSize => 8;

    /// <inheritdoc/>
    public int InputSize => 0;

    /// <inheritdoc/>
    public int ParameterCount => 2;

    /// <inheritdoc/>
    public void Apply<TNum>(ReadOnlySpan<TNum> y, TNum t, ReadOnlySpan<TNum> x, ReadOnlySpan<TNum> parameters, Span<TNum> dydt)
        where TNum : IFloatingPointIeee754<TNum>
    {
        TNum rx = y[2] - y[0], ry = y[3] - y[1];
        TNum r2 = rx * rx + ry * ry;
        TNum inv3 = TNum.One / (r2 * TNum.Sqrt(r2));
        dydt[0] = y[4];
        dydt[1] = y[5];
        dydt[2] = y[6];
        dydt[3] = y[7];
        dydt[4] = parameters[1] * rx * inv3;
        dydt[5] = parameters[1] * ry * inv3;
        dydt[6] = -parameters[0] * rx * inv3;
        dydt[7] = -parameters[0] * ry * inv3;
    }
}
