using System.Globalization;
using System.Runtime.CompilerServices;

namespace DeerSharp.AutoDiff;

/// <summary>
/// A forward-mode dual number v + d·ε with ε² = 0: <see cref="Value"/> carries f(x) and
/// <see cref="Derivative"/> carries the directional derivative f'(x)·ẋ.
/// </summary>
/// <remarks>
/// <para>
/// Implements <see cref="IFloatingPointIeee754{TSelf}"/> so that a recurrence written once over
/// <c>TNum : IFloatingPointIeee754&lt;TNum&gt;</c> runs unchanged on <see cref="float"/>, <see cref="double"/>
/// and <c>Dual&lt;T&gt;</c>; <see cref="Cells.AutoDiffCell{TFunction, T}"/> obtains Jacobian columns that way.
/// </para>
/// <para>
/// Every smooth operation propagates the exact derivative. Piecewise-constant operations
/// (rounding, sign, comparisons) have derivative zero almost everywhere and return it;
/// <see cref="Abs"/>, <see cref="Max"/> and <see cref="Min"/> take the derivative of the branch they select.
/// Equality and ordering compare values only.
/// </para>
/// </remarks>
public readonly partial struct Dual<T> : IFloatingPointIeee754<Dual<T>>
    where T : IFloatingPointIeee754<T>
{
    /// <summary>The primal value.</summary>
    public T Value { get; }

    /// <summary>The derivative along the seeded direction.</summary>
    public T Derivative { get; }

    /// <summary>Creates a dual number.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Dual(T value, T derivative)
    {
        Value = value;
        Derivative = derivative;
    }

    /// <summary>A constant: a value with zero derivative.</summary>
    public static Dual<T> Constant(T value) => new(value, T.Zero);

    /// <summary>A variable: a value seeded with derivative one.</summary>
    public static Dual<T> Variable(T value) => new(value, T.One);

    /// <summary>Chain rule for a scalar function with value <paramref name="fx"/> and slope <paramref name="dfdx"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Dual<T> Chain(T fx, T dfdx) => new(fx, dfdx * Derivative);

    private static T Two => T.One + T.One;

    // ---- arithmetic -------------------------------------------------------------------------

    /// <inheritdoc/>
    public static Dual<T> operator +(Dual<T> left, Dual<T> right) => new(left.Value + right.Value, left.Derivative + right.Derivative);

    /// <inheritdoc/>
    public static Dual<T> operator -(Dual<T> left, Dual<T> right) => new(left.Value - right.Value, left.Derivative - right.Derivative);

    /// <inheritdoc/>
    public static Dual<T> operator *(Dual<T> left, Dual<T> right) =>
        new(left.Value * right.Value, left.Derivative * right.Value + left.Value * right.Derivative);

    /// <inheritdoc/>
    public static Dual<T> operator /(Dual<T> left, Dual<T> right)
    {
        T q = left.Value / right.Value;
        return new(q, (left.Derivative - q * right.Derivative) / right.Value);
    }

    /// <summary>Remainder: x - trunc(x / y)·y, whose derivative is ẋ - trunc(x / y)·ẏ almost everywhere.</summary>
    public static Dual<T> operator %(Dual<T> left, Dual<T> right)
    {
        T k = T.Truncate(left.Value / right.Value);
        return new(left.Value % right.Value, left.Derivative - k * right.Derivative);
    }

    /// <inheritdoc/>
    public static Dual<T> operator -(Dual<T> value) => new(-value.Value, -value.Derivative);

    /// <inheritdoc/>
    public static Dual<T> operator +(Dual<T> value) => value;

    /// <inheritdoc/>
    public static Dual<T> operator ++(Dual<T> value) => new(value.Value + T.One, value.Derivative);

    /// <inheritdoc/>
    public static Dual<T> operator --(Dual<T> value) => new(value.Value - T.One, value.Derivative);

    // ---- comparison (on values) -------------------------------------------------------------

    /// <inheritdoc/>
    public static bool operator ==(Dual<T> left, Dual<T> right) => left.Value == right.Value;

    /// <inheritdoc/>
    public static bool operator !=(Dual<T> left, Dual<T> right) => left.Value != right.Value;

    /// <inheritdoc/>
    public static bool operator <(Dual<T> left, Dual<T> right) => left.Value < right.Value;

    /// <inheritdoc/>
    public static bool operator >(Dual<T> left, Dual<T> right) => left.Value > right.Value;

    /// <inheritdoc/>
    public static bool operator <=(Dual<T> left, Dual<T> right) => left.Value <= right.Value;

    /// <inheritdoc/>
    public static bool operator >=(Dual<T> left, Dual<T> right) => left.Value >= right.Value;

    /// <inheritdoc/>
    public int CompareTo(Dual<T> other) => Value.CompareTo(other.Value);

    /// <inheritdoc/>
    public int CompareTo(object? obj) => obj switch
    {
        null => 1,
        Dual<T> other => CompareTo(other),
        _ => throw new ArgumentException($"Expected a {nameof(Dual<T>)}, got {obj.GetType().Name}.", nameof(obj)),
    };

    /// <inheritdoc/>
    public bool Equals(Dual<T> other) => Value.Equals(other.Value) && Derivative.Equals(other.Derivative);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is Dual<T> other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Value, Derivative);

    /// <summary>Formats as "value + derivative·ε".</summary>
    public override string ToString() => ToString(null, CultureInfo.InvariantCulture);

    /// <inheritdoc/>
    public string ToString(string? format, IFormatProvider? formatProvider) =>
        $"{Value.ToString(format, formatProvider)} + {Derivative.ToString(format, formatProvider)}ε";

    /// <inheritdoc/>
    public bool TryFormat(Span<char> destination, out int charsWritten, ReadOnlySpan<char> format, IFormatProvider? provider)
    {
        string text = ToString(format.IsEmpty ? null : format.ToString(), provider);
        if (text.Length > destination.Length)
        {
            charsWritten = 0;
            return false;
        }

        text.AsSpan().CopyTo(destination);
        charsWritten = text.Length;
        return true;
    }
}
