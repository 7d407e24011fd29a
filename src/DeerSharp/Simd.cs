using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DeerSharp;

/// <summary>
/// One float32 vector width for the fused loops (Cpu/FusedLoop) and the float32 GEMM blocks of <see cref="Kernels"/>:
/// the kernels are written once against this interface and the JIT specialises them for <see cref="Simd512"/> and
/// <see cref="Simd256"/> (struct type arguments, static abstract members: every call inlines). <see cref="Vector{T}"/> is
/// 256 bits here even where the CPU runs AVX-512 at full width, which halves the FMA peak of the recurrent product
/// (docs/benchmarks.md, the roofline).
/// </summary>
internal interface ISimd<TV>
    where TV : struct
{
    static abstract int Count { get; }

    static abstract bool IsAccelerated { get; }

    static abstract TV Load(ref float source, nuint offset);

    static abstract void Store(TV value, ref float destination, nuint offset);

    static abstract TV Create(float value);

    static abstract TV Add(TV a, TV b);

    static abstract TV Subtract(TV a, TV b);

    static abstract TV Multiply(TV a, TV b);

    static abstract TV Divide(TV a, TV b);

    /// <summary>a·b + c, fused.</summary>
    static abstract TV Fma(TV a, TV b, TV c);

    /// <summary>|x|.</summary>
    static abstract TV Abs(TV x);

    /// <summary>x &lt; 0 ? −m : m, lane by lane.</summary>
    static abstract TV SignOf(TV x, TV m);

    /// <summary>
    /// x clamped to [lo, hi], NaN staying NaN: the values of <see cref="Activations.ExpSingle"/>'s two comparisons, bit for
    /// bit. With AVX, by max(lo, x) then min(hi, ·): x86's MAXPS and MINPS return their second operand when either is NaN,
    /// so a NaN x comes through unchanged. Two instructions where the comparisons and blends took four, it made a 512-bit σ
    /// or tanh 0.80-0.86 of the time (eight independent chains, 15 rounds; 4.0-4.4 ns to 3.2-3.6 ns a vector), and gave
    /// the same bits on 32 million random bit patterns and the special values (KernelTests).
    /// </summary>
    static abstract TV Clamp(TV x, TV lo, TV hi);

    /// <summary>2^n from t = n + 1.5·2^23 (the shifter's trick): (bits(t) + 127) &lt;&lt; 23, as float.</summary>
    static abstract TV Pow2Shifted(TV t);

    /// <summary>
    /// 1/x to within about 2 ulp, without a division: the hardware estimate (14 bits with AVX-512, 12 without) and one
    /// Newton step, r + r(1 − x r). Not bit-equal to 1/x, so only for kernels that need not equal <see cref="Activations"/>.
    /// </summary>
    static abstract TV Reciprocal(TV x);
}

/// <summary>512-bit lanes: 16 floats.</summary>
internal readonly struct Simd512 : ISimd<Vector512<float>>
{
    public static int Count => Vector512<float>.Count;

    public static bool IsAccelerated => Vector512.IsHardwareAccelerated;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load(ref float source, nuint offset) => Vector512.LoadUnsafe(ref source, offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector512<float> value, ref float destination, nuint offset) => value.StoreUnsafe(ref destination, offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Create(float value) => Vector512.Create(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Subtract(Vector512<float> a, Vector512<float> b) => a - b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Multiply(Vector512<float> a, Vector512<float> b) => a * b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Divide(Vector512<float> a, Vector512<float> b) => a / b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Fma(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.FusedMultiplyAdd(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Abs(Vector512<float> x) => Vector512.Abs(x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> SignOf(Vector512<float> x, Vector512<float> m) =>
        Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512<float>.Zero), -m, m);

    /// <summary>max(lo, x), then min(hi, ·), in that operand order: a NaN x is returned as it is (<see cref="ISimd{TV}.Clamp"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Clamp(Vector512<float> x, Vector512<float> lo, Vector512<float> hi) => Avx512F.Min(hi, Avx512F.Max(lo, x));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Pow2Shifted(Vector512<float> t) =>
        Vector512.ShiftLeft(t.AsInt32() + Vector512.Create(127), 23).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Reciprocal(Vector512<float> x)
    {
        Vector512<float> r = Avx512F.Reciprocal14(x);
        return Vector512.FusedMultiplyAdd(r, Vector512.FusedMultiplyAdd(-x, r, Vector512<float>.One), r);
    }
}

/// <summary>256-bit lanes: 8 floats.</summary>
internal readonly struct Simd256 : ISimd<Vector256<float>>
{
    public static int Count => Vector256<float>.Count;

    public static bool IsAccelerated => Vector256.IsHardwareAccelerated;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load(ref float source, nuint offset) => Vector256.LoadUnsafe(ref source, offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector256<float> value, ref float destination, nuint offset) => value.StoreUnsafe(ref destination, offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Create(float value) => Vector256.Create(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Subtract(Vector256<float> a, Vector256<float> b) => a - b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Multiply(Vector256<float> a, Vector256<float> b) => a * b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Divide(Vector256<float> a, Vector256<float> b) => a / b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Fma(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.FusedMultiplyAdd(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Abs(Vector256<float> x) => Vector256.Abs(x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> SignOf(Vector256<float> x, Vector256<float> m) =>
        Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256<float>.Zero), -m, m);

    /// <summary>max(lo, x), then min(hi, ·), in that operand order, with AVX (<see cref="ISimd{TV}.Clamp"/>); else two comparisons.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Clamp(Vector256<float> x, Vector256<float> lo, Vector256<float> hi)
    {
        if (Avx.IsSupported)
        {
            return Avx.Min(hi, Avx.Max(lo, x));
        }

        x = Vector256.ConditionalSelect(Vector256.GreaterThan(x, hi), hi, x);
        return Vector256.ConditionalSelect(Vector256.LessThan(x, lo), lo, x);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Pow2Shifted(Vector256<float> t) =>
        Vector256.ShiftLeft(t.AsInt32() + Vector256.Create(127), 23).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Reciprocal(Vector256<float> x)
    {
        if (!Avx.IsSupported)
        {
            return Vector256<float>.One / x;
        }

        Vector256<float> r = Avx512F.VL.IsSupported ? Avx512F.VL.Reciprocal14(x) : Avx.Reciprocal(x);
        return Vector256.FusedMultiplyAdd(r, Vector256.FusedMultiplyAdd(-x, r, Vector256<float>.One), r);
    }
}

/// <summary>
/// σ and tanh on any <see cref="ISimd{TV}"/> width, operation for operation those of <see cref="Activations"/> (the same
/// single-precision exp, the same formulas), so a fused loop's states equal the generic loop's bit for bit.
/// </summary>
internal static class SimdMath
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Exp<TS, TV>(TV x)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        x = TS.Clamp(x, TS.Create(-87.0f), TS.Create(88.0f));
        TV shifter = TS.Create(12582912f);
        TV t = TS.Fma(x, TS.Create(1.44269504088896341f), shifter);
        TV n = TS.Subtract(t, shifter);
        TV r = TS.Fma(n, TS.Create(-0.693359375f), x);
        r = TS.Fma(n, TS.Create(2.12194440e-4f), r);
        TV r2 = TS.Multiply(r, r);
        TV q0 = TS.Fma(TS.Create(1.6666665459e-1f), r, TS.Create(5.0000001201e-1f));
        TV q1 = TS.Fma(TS.Create(8.3334519073e-3f), r, TS.Create(4.1665795894e-2f));
        TV q2 = TS.Fma(TS.Create(1.9875691500e-4f), r, TS.Create(1.3981999507e-3f));
        TV p = TS.Fma(q2, TS.Multiply(r2, r2), TS.Fma(q1, r2, q0));
        TV y = TS.Fma(p, r2, TS.Add(r, TS.Create(1f)));
        return TS.Multiply(y, TS.Pow2Shifted(t));
    }

    /// <summary>1/(1 + e^{−x}).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Sigmoid<TS, TV>(TV x)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        TV one = TS.Create(1f);
        return TS.Divide(one, TS.Add(one, Exp<TS, TV>(TS.Subtract(default, x))));
    }

    /// <summary>sign(x)·(1 − 2/(e^{2|x|} + 1)).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Tanh<TS, TV>(TV x)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        TV one = TS.Create(1f), two = TS.Create(2f);
        TV magnitude = TS.Subtract(one, TS.Divide(two, TS.Add(Exp<TS, TV>(TS.Multiply(two, TS.Abs(x))), one)));
        return TS.SignOf(x, magnitude);
    }

    /// <summary>σ with <see cref="ISimd{TV}.Reciprocal"/> for the division: within a few ulp of <see cref="Sigmoid{TS, TV}"/>, several times cheaper.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV FastSigmoid<TS, TV>(TV x)
        where TS : struct, ISimd<TV>
        where TV : struct =>
        TS.Reciprocal(TS.Add(TS.Create(1f), Exp<TS, TV>(TS.Subtract(default, x))));

    /// <summary>tanh with <see cref="ISimd{TV}.Reciprocal"/> for the division (see <see cref="FastSigmoid{TS, TV}"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV FastTanh<TS, TV>(TV x)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        TV one = TS.Create(1f);
        TV e = Exp<TS, TV>(TS.Multiply(TS.Create(2f), TS.Abs(x)));
        return TS.SignOf(x, TS.Fma(TS.Create(-2f), TS.Reciprocal(TS.Add(e, one)), one));
    }
}
