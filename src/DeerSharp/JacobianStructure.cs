namespace DeerSharp;

/// <summary>
/// The sparsity of a cell's state Jacobian ∂f/∂h_{t-1}: block-diagonal over groups of units. The state is
/// <see cref="Parts"/> parts of n units each (one part, h, for an RNN or GRU; two, h and c, for an LSTM), and the units
/// are grouped in blocks of <see cref="BlockSize"/> consecutive units. Entry (p, u) of the state may depend on entry
/// (q, v) of the previous state only when u and v lie in the same block. One block of the Jacobian is then a K×K matrix
/// with K = Parts·BlockSize, and Newton's step is an exact K×K block scan (<see cref="Cells.JacobianMode.Block"/>).
/// </summary>
/// <param name="BlockSize">k, the units per block: 1 for a diagonal Jacobian.</param>
/// <param name="Parts">P, the parts of the state (S = P·n).</param>
public readonly record struct JacobianStructure(int BlockSize, int Parts = 1)
{
    /// <summary>K = P·k, the side of one Jacobian block.</summary>
    public int Side => BlockSize * Parts;

    /// <summary>The number of blocks in a state of size <paramref name="stateSize"/>: S / K.</summary>
    public int Blocks(int stateSize) => stateSize / Side;

    /// <summary>Jacobian entries per step in <see cref="Cells.JacobianMode.Block"/>: S·K.</summary>
    public int EntriesPerStep(int stateSize) => stateSize * Side;

    /// <summary>
    /// The state index of row (or column) <paramref name="r"/> of block <paramref name="block"/>, for n =
    /// <paramref name="units"/> units per part: (r / k)·n + block·k + r mod k.
    /// </summary>
    public int Index(int block, int r, int units) => r / BlockSize * units + block * BlockSize + r % BlockSize;

    /// <summary>Throws unless the structure fits a state of size <paramref name="stateSize"/>: P divides S and k divides S / P.</summary>
    public void Validate(int stateSize, string paramName)
    {
        if (BlockSize < 1 || Parts < 1)
        {
            throw new ArgumentException($"A Jacobian structure needs BlockSize ≥ 1 and Parts ≥ 1; it declares BlockSize {BlockSize}, Parts {Parts}.", paramName);
        }

        if (stateSize % Parts != 0 || stateSize / Parts % BlockSize != 0)
        {
            throw new ArgumentException(
                $"The declared Jacobian structure (blocks of {BlockSize} units, {Parts} part(s)) does not fit the state size {stateSize}: " +
                $"{Parts} must divide {stateSize} and {BlockSize} must divide the units per part.", paramName);
        }
    }
}
