using System.Runtime.CompilerServices;

namespace DeerSharp;

/// <summary>
/// σ and tanh on <see cref="Vector{T}"/> lanes and on scalars, by the same formulas so a vector lane and the scalar tail
/// of a loop agree: σ(x) = 1/(1 + e^{-x}), tanh(x) = sign(x)·(1 - 2/(e^{2|x|} + 1)). Both are accurate to a few ulps of 1 in
/// absolute terms (what a recurrence cares about), saturate cleanly, and never produce NaN for finite x.
/// </summary>
internal static class Activations
{
    /// <summary>
    /// e^x per lane. float32 uses <see cref="ExpSingle"/>, a polynomial in single precision: .NET's
    /// <see cref="Vector.Exp(Vector{float})"/> widens to double and cost about 9 ns per 256-bit vector here, which was
    /// a third of a GRU step at n = 32. float64 keeps <see cref="Vector.Exp(Vector{double})"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<T> Exp<T>(Vector<T> x)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float))
        {
            return ExpSingle(x.As<T, float>()).As<float, T>();
        }

        if (typeof(T) == typeof(double))
        {
            return Vector.Exp(x.As<T, double>()).As<double, T>();
        }

        throw new NotSupportedException(typeof(T).Name);
    }

    /// <summary>
    /// e^x in single precision, within about 2 ulp on [−87, 88] (Cody–Waite reduction x = n·ln 2 + r with ln 2 split in
    /// two, n rounded to nearest, then Cephes' degree-6 polynomial for e^r on |r| ≤ ln 2 / 2, then 2^n built in the exponent bits). Outside that
    /// range the argument is clamped, so e^x saturates at e^88 ≈ 1.7e38 and e^−87 ≈ 1.6e−38 instead of reaching ∞ or
    /// subnormals: σ and tanh, its only users, are then exact to float precision. NaN stays NaN (the clamps are
    /// comparisons, which NaN fails).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector<float> ExpSingle(Vector<float> x)
    {
        var hi = new Vector<float>(88.0f);
        var lo = new Vector<float>(-87.0f);
        x = Vector.ConditionalSelect(Vector.GreaterThan(x, hi), hi, x);
        x = Vector.ConditionalSelect(Vector.LessThan(x, lo), lo, x);
        // n = round(x·log2 e) by the 1.5·2^23 shifter: adding it leaves n in the low mantissa bits of t, so 2^n is
        // (bits(t) + 127) << 23 (the shifter's own bits fall off the top), with no float-to-int conversion.
        var shifter = new Vector<float>(12582912f);
        Vector<float> t = Vector.FusedMultiplyAdd(x, new Vector<float>(1.44269504088896341f), shifter);
        Vector<float> n = t - shifter;
        Vector<float> r = Vector.FusedMultiplyAdd(n, new Vector<float>(-0.693359375f), x);
        r = Vector.FusedMultiplyAdd(n, new Vector<float>(2.12194440e-4f), r);
        // The polynomial in Estrin's form: three pairs, then r² and r⁴, so its longest chain is three operations, not five.
        Vector<float> r2 = r * r;
        Vector<float> q0 = Vector.FusedMultiplyAdd(new Vector<float>(1.6666665459e-1f), r, new Vector<float>(5.0000001201e-1f));
        Vector<float> q1 = Vector.FusedMultiplyAdd(new Vector<float>(8.3334519073e-3f), r, new Vector<float>(4.1665795894e-2f));
        Vector<float> q2 = Vector.FusedMultiplyAdd(new Vector<float>(1.9875691500e-4f), r, new Vector<float>(1.3981999507e-3f));
        Vector<float> p = Vector.FusedMultiplyAdd(q2, r2 * r2, Vector.FusedMultiplyAdd(q1, r2, q0));
        Vector<float> y = Vector.FusedMultiplyAdd(p, r2, r + Vector<float>.One);
        Vector<int> scale = Vector.ShiftLeft(t.As<float, int>() + new Vector<int>(127), 23);
        return y * scale.As<int, float>();
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
