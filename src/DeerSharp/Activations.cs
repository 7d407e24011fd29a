using System.Numerics;
using System.Runtime.CompilerServices;

namespace DeerSharp;

/// <summary>
/// σ and tanh on <see cref="Vector{T}"/> lanes and on scalars, by the same formulas so a vector lane and the scalar tail
/// of a loop agree: σ(x) = 1/(1 + e^{-x}), tanh(x) = sign(x)·(1 - 2/(e^{2|x|} + 1)). Both are accurate to a few ulps of 1 in
/// absolute terms (what a recurrence cares about), saturate cleanly, and never produce NaN for finite x.
/// </summary>
internal static class Activations
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<T> Exp<T>(Vector<T> x)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float))
        {
            return Vector.Exp(x.As<T, float>()).As<float, T>();
        }

        if (typeof(T) == typeof(double))
        {
            return Vector.Exp(x.As<T, double>()).As<double, T>();
        }

        throw new NotSupportedException(typeof(T).Name);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<T> Sigmoid<T>(Vector<T> x)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        Vector<T>.One / (Vector<T>.One + Exp(-x));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<T> Tanh<T>(Vector<T> x)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Vector<T> two = Vector<T>.One + Vector<T>.One;
        Vector<T> magnitude = Vector<T>.One - two / (Exp(two * Vector.Abs(x)) + Vector<T>.One);
        return Vector.ConditionalSelect(Vector.LessThan(x, Vector<T>.Zero), -magnitude, magnitude);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Sigmoid<T>(T x)
        where T : unmanaged, IFloatingPointIeee754<T> => T.One / (T.One + T.Exp(-x));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Tanh<T>(T x)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T two = T.One + T.One;
        T magnitude = T.One - two / (T.Exp(two * T.Abs(x)) + T.One);
        return T.IsNegative(x) ? -magnitude : magnitude;
    }
}
