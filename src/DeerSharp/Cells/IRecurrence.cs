
namespace DeerSharp.Cells;

/// <summary>
/// A recurrence h_t = f(h_{t-1}, x_t) written once, generic over the number type. Deer runs it on
/// <see cref="float"/> or <see cref="double"/> to evaluate f, and on <see cref="AutoDiff.Dual{T}"/> to differentiate it:
/// you never write a derivative. Wrap it in <see cref="AutoDiffCell{TFunction, T}"/> to solve it.
/// </summary>
/// <remarks>
/// Implement it on a struct and keep <see cref="Apply{TNum}"/> free of shared mutable state: it is called from many
/// threads at once. Turn constants into the number type with <c>TNum.CreateTruncating(value)</c>.
/// </remarks>
public interface IRecurrence
{
    /// <summary>The state dimension.</summary>
    int StateSize { get; }

    /// <summary>The input dimension.</summary>
    int InputSize { get; }

    /// <summary>Writes next = f(state, input).</summary>
    void Apply<TNum>(ReadOnlySpan<TNum> state, ReadOnlySpan<TNum> input, Span<TNum> next)
        where TNum : IFloatingPointIeee754<TNum>;
}
