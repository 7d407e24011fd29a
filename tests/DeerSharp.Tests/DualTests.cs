using DeerSharp.AutoDiff;

namespace DeerSharp.Tests;

/// <summary>Every differentiable Dual operation against a central difference of the same function on double.</summary>
public class DualTests
{
    public static TheoryData<string> Functions() =>
        [.. Unary.Keys.Concat(Binary.Keys)];

    private static readonly Dictionary<string, (Func<Dual<double>, Dual<double>> Dual, Func<double, double> Plain, double Lo, double Hi)> Unary = new()
    {
        ["exp"] = (Dual<double>.Exp, Math.Exp, -2, 2),
        ["expm1"] = (Dual<double>.ExpM1, double.ExpM1, -2, 2),
        ["exp2"] = (Dual<double>.Exp2, double.Exp2, -2, 2),
        ["exp10"] = (Dual<double>.Exp10, double.Exp10, -1, 1),
        ["log"] = (Dual<double>.Log, Math.Log, 0.2, 3),
        ["log2"] = (Dual<double>.Log2, Math.Log2, 0.2, 3),
        ["log10"] = (Dual<double>.Log10, Math.Log10, 0.2, 3),
        ["logp1"] = (Dual<double>.LogP1, double.LogP1, -0.5, 3),
        ["sqrt"] = (Dual<double>.Sqrt, Math.Sqrt, 0.2, 3),
        ["cbrt"] = (Dual<double>.Cbrt, Math.Cbrt, 0.2, 3),
        ["sin"] = (Dual<double>.Sin, Math.Sin, -3, 3),
        ["cos"] = (Dual<double>.Cos, Math.Cos, -3, 3),
        ["tan"] = (Dual<double>.Tan, Math.Tan, -1.2, 1.2),
        ["sinpi"] = (Dual<double>.SinPi, double.SinPi, -1, 1),
        ["cospi"] = (Dual<double>.CosPi, double.CosPi, -1, 1),
        ["asin"] = (Dual<double>.Asin, Math.Asin, -0.9, 0.9),
        ["acos"] = (Dual<double>.Acos, Math.Acos, -0.9, 0.9),
        ["atan"] = (Dual<double>.Atan, Math.Atan, -3, 3),
        ["sinh"] = (Dual<double>.Sinh, Math.Sinh, -2, 2),
        ["cosh"] = (Dual<double>.Cosh, Math.Cosh, -2, 2),
        ["tanh"] = (Dual<double>.Tanh, Math.Tanh, -3, 3),
        ["asinh"] = (Dual<double>.Asinh, Math.Asinh, -3, 3),
        ["acosh"] = (Dual<double>.Acosh, Math.Acosh, 1.2, 3),
        ["atanh"] = (Dual<double>.Atanh, Math.Atanh, -0.9, 0.9),
        ["abs"] = (Dual<double>.Abs, Math.Abs, 0.1, 3),
        ["rootn3"] = (x => Dual<double>.RootN(x, 3), x => double.RootN(x, 3), 0.2, 3),
        ["reciprocal"] = (Dual<double>.ReciprocalEstimate, x => 1 / x, 0.2, 3),
        ["rsqrt"] = (Dual<double>.ReciprocalSqrtEstimate, x => 1 / Math.Sqrt(x), 0.2, 3),
        ["scaleb"] = (x => Dual<double>.ScaleB(x, 3), x => Math.ScaleB(x, 3), -2, 2),
    };

    private static readonly Dictionary<string, (Func<Dual<double>, Dual<double>, Dual<double>> Dual, Func<double, double, double> Plain)> Binary = new()
    {
        ["add"] = ((a, b) => a + b, (a, b) => a + b),
        ["sub"] = ((a, b) => a - b, (a, b) => a - b),
        ["mul"] = ((a, b) => a * b, (a, b) => a * b),
        ["div"] = ((a, b) => a / b, (a, b) => a / b),
        ["pow"] = (Dual<double>.Pow, Math.Pow),
        ["hypot"] = (Dual<double>.Hypot, double.Hypot),
        ["atan2"] = (Dual<double>.Atan2, Math.Atan2),
        ["log_base"] = (Dual<double>.Log, Math.Log),
        ["fma"] = ((a, b) => Dual<double>.FusedMultiplyAdd(a, b, a), (a, b) => Math.FusedMultiplyAdd(a, b, a)),
    };

    [Theory]
    [MemberData(nameof(Functions))]
    public void Derivative_matches_central_difference(string name) => Seeded.Run(rnd =>
    {
        for (int trial = 0; trial < 20; trial++)
        {
            if (Unary.TryGetValue(name, out var u))
            {
                double x = u.Lo + (u.Hi - u.Lo) * rnd.NextDouble();
                Dual<double> r = u.Dual(Dual<double>.Variable(x));
                Assert.Equal(u.Plain(x), r.Value, 14);
                double fd = Central(u.Plain, x);
                Assert.True(Math.Abs(r.Derivative - fd) <= 1e-6 * Math.Max(1, Math.Abs(fd)), $"{name}'({x}) = {r.Derivative}, central difference {fd}");
            }
            else
            {
                var b = Binary[name];
                // log_x(y) is ill-conditioned near base 1, where ln(base) → 0: keep that base away from it.
                double x = 0.3 + 2 * rnd.NextDouble(), y = name == "log_base" ? 1.5 + 1.5 * rnd.NextDouble() : 0.3 + 2 * rnd.NextDouble();
                Dual<double> rx = b.Dual(Dual<double>.Variable(x), Dual<double>.Constant(y));
                Dual<double> ry = b.Dual(Dual<double>.Constant(x), Dual<double>.Variable(y));
                double fx = Central(v => b.Plain(v, y), x), fy = Central(v => b.Plain(x, v), y);
                Assert.Equal(b.Plain(x, y), rx.Value, 14);
                Assert.True(Math.Abs(rx.Derivative - fx) <= 1e-6 * Math.Max(1, Math.Abs(fx)), $"∂{name}/∂x at ({x}, {y}): {rx.Derivative} vs {fx}");
                Assert.True(Math.Abs(ry.Derivative - fy) <= 1e-6 * Math.Max(1, Math.Abs(fy)), $"∂{name}/∂y at ({x}, {y}): {ry.Derivative} vs {fy}");
            }
        }
    });

    private static double Central(Func<double, double> f, double x)
    {
        const double H = 1e-6;
        return (f(x + H) - f(x - H)) / (2 * H);
    }

    [Fact]
    public void Conversions_make_constants_and_keep_duals()
    {
        Dual<double> c = Truncating<Dual<double>, double>(0.25);
        Assert.Equal(0.25, c.Value);
        Assert.Equal(0.0, c.Derivative);
        Dual<float> f = Checked<Dual<float>, int>(3);
        Assert.Equal(3f, f.Value);
        Assert.Equal(2.0, double.CreateTruncating(Dual<double>.Variable(2.0)));
        var v = Dual<double>.Variable(1.5);
        Assert.Equal(v, Checked<Dual<double>, Dual<double>>(v));
    }

    // Generic math's Create* are static interface defaults: user code reaches them through a type parameter, as here.
    private static TNum Truncating<TNum, TFrom>(TFrom v)
        where TNum : System.Numerics.INumberBase<TNum>
        where TFrom : System.Numerics.INumberBase<TFrom> => TNum.CreateTruncating(v);

    private static TNum Checked<TNum, TFrom>(TFrom v)
        where TNum : System.Numerics.INumberBase<TNum>
        where TFrom : System.Numerics.INumberBase<TFrom> => TNum.CreateChecked(v);

    [Fact]
    public void Constant_with_negative_base_and_constant_exponent_stays_finite()
    {
        Dual<double> r = Dual<double>.Pow(Dual<double>.Variable(-2), Dual<double>.Constant(3));
        Assert.Equal(-8, r.Value, 12);
        Assert.Equal(12, r.Derivative, 12);
    }
}
