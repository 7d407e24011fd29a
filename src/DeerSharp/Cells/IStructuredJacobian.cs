
namespace DeerSharp.Cells;

/// <summary>
/// Declares that a cell's (or an <see cref="IRecurrence"/>'s) state Jacobian is block-diagonal. The solvers then use
/// exact Newton with a block scan (O(T·S·K) per iteration instead of DEER's O(T·S³)), and
/// <see cref="AutoDiffCell{TFunction, T}"/> forms the Jacobian from K dual evaluations instead of S.
/// </summary>
/// <remarks>
/// A wrong declaration never gives a wrong answer: Newton then uses a wrong Jacobian, converges slowly or not at all,
/// and the result says so from its checked residual (docs/structured-cells.md).
/// </remarks>
public interface IStructuredJacobian
{
    /// <summary>The declared structure, or null for a dense Jacobian.</summary>
    JacobianStructure? JacobianStructure { get; }
}

/// <summary>What a cell declares of its Jacobian's structure.</summary>
internal static class JacobianStructures
{
    /// <summary>
    /// The structure a cell declares through <see cref="IStructuredJacobian"/>, validated against its state size; null
    /// for a cell that declares none (its Jacobian is treated as dense).
    /// </summary>
    public static JacobianStructure? Of<TCell, T>(in TCell cell)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (cell is not IStructuredJacobian declared || declared.JacobianStructure is not { } structure)
        {
            return null;
        }

        structure.Validate(cell.StateSize, nameof(cell));
        return structure;
    }
}
