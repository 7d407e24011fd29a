using System.Globalization;

namespace DeerSharp.AutoDiff;

// Constants, classification, parsing and conversion: the plumbing generic math requires.
// Classification looks at the value; conversions into Dual<T> produce constants.
public readonly partial struct Dual<T>
{
    /// <inheritdoc/>
    public static Dual<T> One => Constant(T.One);

    /// <inheritdoc/>
    public static Dual<T> Zero => Constant(T.Zero);

    /// <inheritdoc/>
    public static Dual<T> NegativeOne => Constant(T.NegativeOne);

    /// <inheritdoc/>
    public static int Radix => T.Radix;

    /// <inheritdoc/>
    public static Dual<T> AdditiveIdentity => Zero;

    /// <inheritdoc/>
    public static Dual<T> MultiplicativeIdentity => One;

    /// <inheritdoc/>
    public static Dual<T> E => Constant(T.E);

    /// <inheritdoc/>
    public static Dual<T> Pi => Constant(T.Pi);

    /// <inheritdoc/>
    public static Dual<T> Tau => Constant(T.Tau);

    /// <inheritdoc/>
    public static Dual<T> Epsilon => Constant(T.Epsilon);

    /// <inheritdoc/>
    public static Dual<T> NaN => Constant(T.NaN);

    /// <inheritdoc/>
    public static Dual<T> NegativeInfinity => Constant(T.NegativeInfinity);

    /// <inheritdoc/>
    public static Dual<T> NegativeZero => Constant(T.NegativeZero);

    /// <inheritdoc/>
    public static Dual<T> PositiveInfinity => Constant(T.PositiveInfinity);

    /// <inheritdoc/>
    public static bool IsCanonical(Dual<T> value) => true;

    /// <inheritdoc/>
    public static bool IsComplexNumber(Dual<T> value) => false;

    /// <inheritdoc/>
    public static bool IsEvenInteger(Dual<T> value) => T.IsEvenInteger(value.Value);

    /// <inheritdoc/>
    public static bool IsFinite(Dual<T> value) => T.IsFinite(value.Value);

    /// <inheritdoc/>
    public static bool IsImaginaryNumber(Dual<T> value) => false;

    /// <inheritdoc/>
    public static bool IsInfinity(Dual<T> value) => T.IsInfinity(value.Value);

    /// <inheritdoc/>
    public static bool IsInteger(Dual<T> value) => T.IsInteger(value.Value);

    /// <inheritdoc/>
    public static bool IsNaN(Dual<T> value) => T.IsNaN(value.Value);

    /// <inheritdoc/>
    public static bool IsNegative(Dual<T> value) => T.IsNegative(value.Value);

    /// <inheritdoc/>
    public static bool IsNegativeInfinity(Dual<T> value) => T.IsNegativeInfinity(value.Value);

    /// <inheritdoc/>
    public static bool IsNormal(Dual<T> value) => T.IsNormal(value.Value);

    /// <inheritdoc/>
    public static bool IsOddInteger(Dual<T> value) => T.IsOddInteger(value.Value);

    /// <inheritdoc/>
    public static bool IsPositive(Dual<T> value) => T.IsPositive(value.Value);

    /// <inheritdoc/>
    public static bool IsPositiveInfinity(Dual<T> value) => T.IsPositiveInfinity(value.Value);

    /// <inheritdoc/>
    public static bool IsRealNumber(Dual<T> value) => T.IsRealNumber(value.Value);

    /// <inheritdoc/>
    public static bool IsSubnormal(Dual<T> value) => T.IsSubnormal(value.Value);

    /// <inheritdoc/>
    public static bool IsZero(Dual<T> value) => T.IsZero(value.Value);

    /// <inheritdoc/>
    public int GetExponentByteCount() => Value.GetExponentByteCount();

    /// <inheritdoc/>
    public int GetExponentShortestBitLength() => Value.GetExponentShortestBitLength();

    /// <inheritdoc/>
    public int GetSignificandBitLength() => Value.GetSignificandBitLength();

    /// <inheritdoc/>
    public int GetSignificandByteCount() => Value.GetSignificandByteCount();

    /// <inheritdoc/>
    public bool TryWriteExponentBigEndian(Span<byte> destination, out int bytesWritten) => Value.TryWriteExponentBigEndian(destination, out bytesWritten);

    /// <inheritdoc/>
    public bool TryWriteExponentLittleEndian(Span<byte> destination, out int bytesWritten) => Value.TryWriteExponentLittleEndian(destination, out bytesWritten);

    /// <inheritdoc/>
    public bool TryWriteSignificandBigEndian(Span<byte> destination, out int bytesWritten) => Value.TryWriteSignificandBigEndian(destination, out bytesWritten);

    /// <inheritdoc/>
    public bool TryWriteSignificandLittleEndian(Span<byte> destination, out int bytesWritten) => Value.TryWriteSignificandLittleEndian(destination, out bytesWritten);

    /// <inheritdoc/>
    public static Dual<T> Parse(string s, NumberStyles style, IFormatProvider? provider) => Constant(T.Parse(s, style, provider));

    /// <inheritdoc/>
    public static Dual<T> Parse(ReadOnlySpan<char> s, NumberStyles style, IFormatProvider? provider) => Constant(T.Parse(s, style, provider));

    /// <inheritdoc/>
    public static Dual<T> Parse(string s, IFormatProvider? provider) => Constant(T.Parse(s, provider));

    /// <inheritdoc/>
    public static Dual<T> Parse(ReadOnlySpan<char> s, IFormatProvider? provider) => Constant(T.Parse(s, provider));

    /// <inheritdoc/>
    public static bool TryParse(string? s, NumberStyles style, IFormatProvider? provider, out Dual<T> result)
    {
        bool ok = T.TryParse(s, style, provider, out T? v);
        result = Constant(v!);
        return ok;
    }

    /// <inheritdoc/>
    public static bool TryParse(ReadOnlySpan<char> s, NumberStyles style, IFormatProvider? provider, out Dual<T> result)
    {
        bool ok = T.TryParse(s, style, provider, out T? v);
        result = Constant(v!);
        return ok;
    }

    /// <inheritdoc/>
    public static bool TryParse(string? s, IFormatProvider? provider, out Dual<T> result)
    {
        bool ok = T.TryParse(s, provider, out T? v);
        result = Constant(v!);
        return ok;
    }

    /// <inheritdoc/>
    public static bool TryParse(ReadOnlySpan<char> s, IFormatProvider? provider, out Dual<T> result)
    {
        bool ok = T.TryParse(s, provider, out T? v);
        result = Constant(v!);
        return ok;
    }

    static bool INumberBase<Dual<T>>.TryConvertFromChecked<TOther>(TOther value, out Dual<T> result) =>
        TryConvertFrom(value, static v => T.CreateChecked(v), out result);

    static bool INumberBase<Dual<T>>.TryConvertFromSaturating<TOther>(TOther value, out Dual<T> result) =>
        TryConvertFrom(value, static v => T.CreateSaturating(v), out result);

    static bool INumberBase<Dual<T>>.TryConvertFromTruncating<TOther>(TOther value, out Dual<T> result) =>
        TryConvertFrom(value, static v => T.CreateTruncating(v), out result);

    static bool INumberBase<Dual<T>>.TryConvertToChecked<TOther>(Dual<T> value, out TOther result) =>
        TryConvertTo(value, static v => TOther.CreateChecked(v), out result);

    static bool INumberBase<Dual<T>>.TryConvertToSaturating<TOther>(Dual<T> value, out TOther result) =>
        TryConvertTo(value, static v => TOther.CreateSaturating(v), out result);

    static bool INumberBase<Dual<T>>.TryConvertToTruncating<TOther>(Dual<T> value, out TOther result) =>
        TryConvertTo(value, static v => TOther.CreateTruncating(v), out result);

    private static bool TryConvertFrom<TOther>(TOther value, Func<TOther, T> convert, out Dual<T> result)
        where TOther : INumberBase<TOther>
    {
        // A Dual<T> of the same kind keeps its derivative; anything else becomes a constant.
        if (value is Dual<T> same)
        {
            result = same;
            return true;
        }

        try
        {
            result = Constant(convert(value));
            return true;
        }
        catch (NotSupportedException)
        {
            result = default;
            return false;
        }
    }

    private static bool TryConvertTo<TOther>(Dual<T> value, Func<T, TOther> convert, out TOther result)
        where TOther : INumberBase<TOther>
    {
        try
        {
            result = convert(value.Value);
            return true;
        }
        catch (NotSupportedException)
        {
            result = default!;
            return false;
        }
    }
}
