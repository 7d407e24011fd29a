
namespace DeerSharp.Cells;

/// <summary>
/// A linear-surrogate model (Martin &amp; Cundy 2018, reference §9): every recurrence in it is linear in its own state
/// once its inputs are known, so its scans give the exact trajectory without any Newton iteration.
/// <see cref="SolveMethod.Scan"/> uses <see cref="SolveLinear"/>; every other method treats the cell like any other.
/// </summary>
public interface ILinearSurrogateCell<T> : IDifferentiableCell<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Writes the exact trajectory, [length, S], from the input projections [length, P] and the initial state [S].</summary>
    void SolveLinear(ReadOnlySpan<T> projections, ReadOnlySpan<T> initialState, Span<T> states, int length);
}
