namespace DeerSharp.AutoDiff;

// Elementary functions: each returns f(v) and f'(v)·d by the chain rule.
public readonly partial struct Dual<T>
{
    private static T Ln2 => T.Log(Two);

    private static T Ln10 => T.Log(T.CreateTruncating(10));

    /// <inheritdoc/>
    public static Dual<T> Exp(Dual<T> x) { T e = T.Exp(x.Value); return x.Chain(e, e); }

    /// <inheritdoc/>
    public static Dual<T> ExpM1(Dual<T> x) => x.Chain(T.ExpM1(x.Value), T.Exp(x.Value));

    /// <inheritdoc/>
    public static Dual<T> Exp2(Dual<T> x) { T e = T.Exp2(x.Value); return x.Chain(e, e * Ln2); }

    /// <inheritdoc/>
    public static Dual<T> Exp2M1(Dual<T> x) => x.Chain(T.Exp2M1(x.Value), T.Exp2(x.Value) * Ln2);

    /// <inheritdoc/>
    public static Dual<T> Exp10(Dual<T> x) { T e = T.Exp10(x.Value); return x.Chain(e, e * Ln10); }

    /// <inheritdoc/>
    public static Dual<T> Exp10M1(Dual<T> x) => x.Chain(T.Exp10M1(x.Value), T.Exp10(x.Value) * Ln10);

    /// <inheritdoc/>
    public static Dual<T> Log(Dual<T> x) => x.Chain(T.Log(x.Value), T.One / x.Value);

    /// <inheritdoc/>
    public static Dual<T> Log(Dual<T> x, Dual<T> newBase) => Log(x) / Log(newBase);

    /// <inheritdoc/>
    public static Dual<T> Log2(Dual<T> x) => x.Chain(T.Log2(x.Value), T.One / (x.Value * Ln2));

    /// <inheritdoc/>
    public static Dual<T> Log10(Dual<T> x) => x.Chain(T.Log10(x.Value), T.One / (x.Value * Ln10));

    /// <inheritdoc/>
    public static Dual<T> LogP1(Dual<T> x) => x.Chain(T.LogP1(x.Value), T.One / (T.One + x.Value));

    /// <inheritdoc/>
    public static Dual<T> Log2P1(Dual<T> x) => x.Chain(T.Log2P1(x.Value), T.One / ((T.One + x.Value) * Ln2));

    /// <inheritdoc/>
    public static Dual<T> Log10P1(Dual<T> x) => x.Chain(T.Log10P1(x.Value), T.One / ((T.One + x.Value) * Ln10));

    /// <summary>x^y. The ∂/∂y term is added only when y carries a derivative, so negative bases with constant exponents stay finite.</summary>
    public static Dual<T> Pow(Dual<T> x, Dual<T> y)
    {
        T p = T.Pow(x.Value, y.Value);
        T d = x.Derivative == T.Zero ? T.Zero : y.Value * T.Pow(x.Value, y.Value - T.One) * x.Derivative;
        if (y.Derivative != T.Zero)
        {
            d += p * T.Log(x.Value) * y.Derivative;
        }

        return new(p, d);
    }

    /// <inheritdoc/>
    public static Dual<T> Sqrt(Dual<T> x) { T s = T.Sqrt(x.Value); return x.Chain(s, T.One / (Two * s)); }

    /// <inheritdoc/>
    public static Dual<T> Cbrt(Dual<T> x) { T c = T.Cbrt(x.Value); return x.Chain(c, T.One / (T.CreateTruncating(3) * c * c)); }

    /// <inheritdoc/>
    public static Dual<T> Hypot(Dual<T> x, Dual<T> y)
    {
        T h = T.Hypot(x.Value, y.Value);
        return new(h, (x.Value * x.Derivative + y.Value * y.Derivative) / h);
    }

    /// <inheritdoc/>
    public static Dual<T> RootN(Dual<T> x, int n)
    {
        T r = T.RootN(x.Value, n);
        return x.Chain(r, r / (T.CreateTruncating(n) * x.Value));
    }

    /// <inheritdoc/>
    public static Dual<T> Sin(Dual<T> x) => x.Chain(T.Sin(x.Value), T.Cos(x.Value));

    /// <inheritdoc/>
    public static Dual<T> Cos(Dual<T> x) => x.Chain(T.Cos(x.Value), -T.Sin(x.Value));

    /// <inheritdoc/>
    public static Dual<T> Tan(Dual<T> x) { T t = T.Tan(x.Value); return x.Chain(t, T.One + t * t); }

    /// <inheritdoc/>
    public static (Dual<T> Sin, Dual<T> Cos) SinCos(Dual<T> x)
    {
        (T s, T c) = T.SinCos(x.Value);
        return (new(s, c * x.Derivative), new(c, -s * x.Derivative));
    }

    /// <inheritdoc/>
    public static Dual<T> SinPi(Dual<T> x) => x.Chain(T.SinPi(x.Value), T.Pi * T.CosPi(x.Value));

    /// <inheritdoc/>
    public static Dual<T> CosPi(Dual<T> x) => x.Chain(T.CosPi(x.Value), -T.Pi * T.SinPi(x.Value));

    /// <inheritdoc/>
    public static Dual<T> TanPi(Dual<T> x) { T t = T.TanPi(x.Value); return x.Chain(t, T.Pi * (T.One + t * t)); }

    /// <inheritdoc/>
    public static (Dual<T> SinPi, Dual<T> CosPi) SinCosPi(Dual<T> x)
    {
        (T s, T c) = T.SinCosPi(x.Value);
        return (new(s, T.Pi * c * x.Derivative), new(c, -T.Pi * s * x.Derivative));
    }

    /// <inheritdoc/>
    public static Dual<T> Asin(Dual<T> x) => x.Chain(T.Asin(x.Value), T.One / T.Sqrt(T.One - x.Value * x.Value));

    /// <inheritdoc/>
    public static Dual<T> Acos(Dual<T> x) => x.Chain(T.Acos(x.Value), -T.One / T.Sqrt(T.One - x.Value * x.Value));

    /// <inheritdoc/>
    public static Dual<T> Atan(Dual<T> x) => x.Chain(T.Atan(x.Value), T.One / (T.One + x.Value * x.Value));

    /// <inheritdoc/>
    public static Dual<T> AsinPi(Dual<T> x) => x.Chain(T.AsinPi(x.Value), T.One / (T.Pi * T.Sqrt(T.One - x.Value * x.Value)));

    /// <inheritdoc/>
    public static Dual<T> AcosPi(Dual<T> x) => x.Chain(T.AcosPi(x.Value), -T.One / (T.Pi * T.Sqrt(T.One - x.Value * x.Value)));

    /// <inheritdoc/>
    public static Dual<T> AtanPi(Dual<T> x) => x.Chain(T.AtanPi(x.Value), T.One / (T.Pi * (T.One + x.Value * x.Value)));

    /// <inheritdoc/>
    public static Dual<T> Atan2(Dual<T> y, Dual<T> x)
    {
        T r2 = x.Value * x.Value + y.Value * y.Value;
        return new(T.Atan2(y.Value, x.Value), (x.Value * y.Derivative - y.Value * x.Derivative) / r2);
    }

    /// <inheritdoc/>
    public static Dual<T> Atan2Pi(Dual<T> y, Dual<T> x)
    {
        Dual<T> a = Atan2(y, x);
        return new(T.Atan2Pi(y.Value, x.Value), a.Derivative / T.Pi);
    }

    /// <inheritdoc/>
    public static Dual<T> Sinh(Dual<T> x) => x.Chain(T.Sinh(x.Value), T.Cosh(x.Value));

    /// <inheritdoc/>
    public static Dual<T> Cosh(Dual<T> x) => x.Chain(T.Cosh(x.Value), T.Sinh(x.Value));

    /// <inheritdoc/>
    public static Dual<T> Tanh(Dual<T> x) { T t = T.Tanh(x.Value); return x.Chain(t, T.One - t * t); }

    /// <inheritdoc/>
    public static Dual<T> Asinh(Dual<T> x) => x.Chain(T.Asinh(x.Value), T.One / T.Sqrt(x.Value * x.Value + T.One));

    /// <inheritdoc/>
    public static Dual<T> Acosh(Dual<T> x) => x.Chain(T.Acosh(x.Value), T.One / T.Sqrt(x.Value * x.Value - T.One));

    /// <inheritdoc/>
    public static Dual<T> Atanh(Dual<T> x) => x.Chain(T.Atanh(x.Value), T.One / (T.One - x.Value * x.Value));

    /// <inheritdoc/>
    public static Dual<T> FusedMultiplyAdd(Dual<T> left, Dual<T> right, Dual<T> addend) =>
        new(T.FusedMultiplyAdd(left.Value, right.Value, addend.Value),
            left.Derivative * right.Value + left.Value * right.Derivative + addend.Derivative);

    /// <inheritdoc/>
    public static Dual<T> Ieee754Remainder(Dual<T> left, Dual<T> right)
    {
        T n = T.Round(left.Value / right.Value, MidpointRounding.ToEven);
        return new(T.Ieee754Remainder(left.Value, right.Value), left.Derivative - n * right.Derivative);
    }

    /// <inheritdoc/>
    public static Dual<T> ScaleB(Dual<T> x, int n) => new(T.ScaleB(x.Value, n), T.ScaleB(x.Derivative, n));

    /// <inheritdoc/>
    public static int ILogB(Dual<T> x) => T.ILogB(x.Value);

    /// <inheritdoc/>
    public static Dual<T> BitIncrement(Dual<T> x) => new(T.BitIncrement(x.Value), x.Derivative);

    /// <inheritdoc/>
    public static Dual<T> BitDecrement(Dual<T> x) => new(T.BitDecrement(x.Value), x.Derivative);

    /// <inheritdoc/>
    public static Dual<T> ReciprocalEstimate(Dual<T> x) { T r = T.One / x.Value; return x.Chain(r, -r * r); }

    /// <inheritdoc/>
    public static Dual<T> ReciprocalSqrtEstimate(Dual<T> x)
    {
        T r = T.One / T.Sqrt(x.Value);
        return x.Chain(r, -r / (Two * x.Value));
    }

    /// <inheritdoc/>
    public static Dual<T> Abs(Dual<T> value) => T.IsNegative(value.Value) ? -value : value;

    /// <inheritdoc/>
    public static Dual<T> CopySign(Dual<T> value, Dual<T> sign)
    {
        T v = T.CopySign(value.Value, sign.Value);
        return T.IsNegative(v) == T.IsNegative(value.Value) ? new(v, value.Derivative) : new(v, -value.Derivative);
    }

    /// <inheritdoc/>
    public static Dual<T> Max(Dual<T> x, Dual<T> y) => T.Max(x.Value, y.Value) == x.Value ? x : y;

    /// <inheritdoc/>
    public static Dual<T> Min(Dual<T> x, Dual<T> y) => T.Min(x.Value, y.Value) == x.Value ? x : y;

    /// <inheritdoc/>
    public static Dual<T> MaxNumber(Dual<T> x, Dual<T> y) => T.MaxNumber(x.Value, y.Value) == x.Value ? x : y;

    /// <inheritdoc/>
    public static Dual<T> MinNumber(Dual<T> x, Dual<T> y) => T.MinNumber(x.Value, y.Value) == x.Value ? x : y;

    /// <inheritdoc/>
    public static Dual<T> MaxMagnitude(Dual<T> x, Dual<T> y) => T.MaxMagnitude(x.Value, y.Value) == x.Value ? x : y;

    /// <inheritdoc/>
    public static Dual<T> MaxMagnitudeNumber(Dual<T> x, Dual<T> y) => T.MaxMagnitudeNumber(x.Value, y.Value) == x.Value ? x : y;

    /// <inheritdoc/>
    public static Dual<T> MinMagnitude(Dual<T> x, Dual<T> y) => T.MinMagnitude(x.Value, y.Value) == x.Value ? x : y;

    /// <inheritdoc/>
    public static Dual<T> MinMagnitudeNumber(Dual<T> x, Dual<T> y) => T.MinMagnitudeNumber(x.Value, y.Value) == x.Value ? x : y;

    /// <inheritdoc/>
    public static Dual<T> Clamp(Dual<T> value, Dual<T> min, Dual<T> max) => value < min ? min : value > max ? max : value;

    /// <inheritdoc/>
    public static int Sign(Dual<T> value) => T.Sign(value.Value);

    // Rounding is piecewise constant: derivative zero almost everywhere.

    /// <inheritdoc/>
    public static Dual<T> Ceiling(Dual<T> x) => Constant(T.Ceiling(x.Value));

    /// <inheritdoc/>
    public static Dual<T> Floor(Dual<T> x) => Constant(T.Floor(x.Value));

    /// <inheritdoc/>
    public static Dual<T> Truncate(Dual<T> x) => Constant(T.Truncate(x.Value));

    /// <inheritdoc/>
    public static Dual<T> Round(Dual<T> x) => Constant(T.Round(x.Value));

    /// <inheritdoc/>
    public static Dual<T> Round(Dual<T> x, int digits) => Constant(T.Round(x.Value, digits));

    /// <inheritdoc/>
    public static Dual<T> Round(Dual<T> x, MidpointRounding mode) => Constant(T.Round(x.Value, mode));

    /// <inheritdoc/>
    public static Dual<T> Round(Dual<T> x, int digits, MidpointRounding mode) => Constant(T.Round(x.Value, digits, mode));
}
