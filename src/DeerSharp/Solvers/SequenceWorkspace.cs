using System.Numerics;
using DeerSharp.Scan;

namespace DeerSharp.Solvers;

/// <summary>
/// Every buffer one sequence's solve needs, sized once and reused across Newton iterations (and across the sequences a
/// worker solves). Not thread safe: one per concurrent solve.
/// </summary>
internal sealed class SequenceWorkspace<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Input projections, [L, P].</summary>
    public T[] Projections = [];

    /// <summary>The current iterate h, [L, S].</summary>
    public T[] States = [];

    /// <summary>f(h_{t-1}, x_t) of the current iterate, turned in place into the affine term b_t for Newton, [L, S].</summary>
    public T[] Evaluations = [];

    /// <summary>Jacobians J_t, [L, S, S] for DEER or [L, S] diagonals for quasi-DEER.</summary>
    public T[] Jacobians = [];

    /// <summary>h0, [S].</summary>
    public T[] InitialState = [];

    /// <summary>Per-chunk cell workspaces, [chunks, W].</summary>
    public T[] CellScratch = [];

    /// <summary>Per-chunk residual reductions.</summary>
    public double[] ChunkMax = [];

    public bool[] ChunkWithin = [];

    public bool[] ChunkFinite = [];

    public readonly ScanWorkspace<T> Scan = new();

    public void Ensure(int length, int stateSize, int projectionSize, int workspaceSize, long jacobianValues, int chunks)
    {
        Grow(ref Projections, (long)length * projectionSize);
        Grow(ref States, (long)length * stateSize);
        Grow(ref Evaluations, (long)length * stateSize);
        Grow(ref Jacobians, jacobianValues);
        Grow(ref InitialState, stateSize);
        Grow(ref CellScratch, (long)Math.Max(1, chunks) * Math.Max(1, workspaceSize));
        if (ChunkMax.Length < chunks)
        {
            ChunkMax = new double[chunks];
            ChunkWithin = new bool[chunks];
            ChunkFinite = new bool[chunks];
        }
    }

    private static void Grow(ref T[] buffer, long needed)
    {
        if (needed > Array.MaxLength)
        {
            throw new InsufficientMemoryException(
                $"The solve needs a buffer of {needed} elements, more than one .NET array can hold ({Array.MaxLength}). Use a shorter sequence or SolveMethod.QuasiDeer.");
        }

        if (buffer.Length < needed)
        {
            buffer = new T[needed];
        }
    }
}
