using System.Buffers;
using DeerSharp.Scan;

namespace DeerSharp.Cpu;

/// <summary>
/// Every buffer one sequence's solve needs, sized once and reused across Newton iterations (and across the sequences a
/// worker solves). Not thread safe: one per concurrent solve.
/// </summary>
/// <remarks>
/// The large buffers are rented from <see cref="ArrayPool{T}.Shared"/> and returned on <see cref="Dispose"/>, so repeated
/// solves (a training loop, a benchmark) reuse memory instead of allocating, zeroing and faulting in fresh pages each
/// time. Rented arrays hold stale data: every solver writes a buffer before it reads it.
/// </remarks>
internal sealed class SequenceWorkspace<T> : IDisposable
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

    /// <summary>quasi-ELK: the residual h - f and the Jacobian diagonal of the accepted iterate, the Thomas sweep's
    /// coefficients, the step (then a candidate's residual), and a copy of the accepted iterate. [L, S] each.</summary>
    public T[] Residual = [], Diagonal = [], Sweep = [], Step = [], Backup = [];

    /// <summary>Per-chunk cell workspaces, [chunks, W].</summary>
    public T[] CellScratch = [];

    /// <summary>Per-chunk residual reductions.</summary>
    public double[] ChunkMax = [];

    public bool[] ChunkWithin = [];

    public bool[] ChunkFinite = [];

    /// <summary>The fused quasi-DEER pass's per-block flags (evaluated or not), reused across iterations.</summary>
    public int[] BlockReady = [];

    public readonly ScanWorkspace<T> Scan = new();

    /// <summary>Sizes the buffers; the iterate and its evaluations only when <paramref name="iterative"/> (the sequential loop writes straight into the result).</summary>
    public void Ensure(int length, int stateSize, int projectionSize, int workspaceSize, long jacobianValues, int chunks, bool iterative,
        bool damped = false)
    {
        long damping = damped ? (long)length * stateSize : 0;
        Grow(ref Residual, damping);
        Grow(ref Diagonal, damping);
        Grow(ref Sweep, damping);
        Grow(ref Step, damping);
        Grow(ref Backup, damping);
        Grow(ref Projections, (long)length * projectionSize);
        Grow(ref States, iterative ? (long)length * stateSize : 0);
        Grow(ref Evaluations, iterative ? (long)length * stateSize : 0);
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
            Return(buffer);
            buffer = ArrayPool<T>.Shared.Rent((int)needed);
        }
    }

    private static void Return(T[] buffer)
    {
        if (buffer.Length > 0)
        {
            ArrayPool<T>.Shared.Return(buffer);
        }
    }

    /// <summary>Returns every rented buffer to the pool.</summary>
    public void Dispose()
    {
        Return(Projections);
        Return(States);
        Return(Evaluations);
        Return(Jacobians);
        Return(InitialState);
        Return(CellScratch);
        Return(Residual);
        Return(Diagonal);
        Return(Sweep);
        Return(Step);
        Return(Backup);
        Projections = States = Evaluations = Jacobians = InitialState = CellScratch = [];
        Residual = Diagonal = Sweep = Step = Backup = [];
    }
}
