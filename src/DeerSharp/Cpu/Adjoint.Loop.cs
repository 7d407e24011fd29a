using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace DeerSharp.Cpu;

internal static partial class Adjoint
{
    /// <summary>Steps of one call into a cell's BPTT loop: the cancellation check's granularity.</summary>
    private const int LoopSteps = 4096;

    /// <summary>
    /// The longest window of a cell's BPTT loop: its buffers (projections, cache, g, v, J_tᵀ v_t) then take a few MB at
    /// n = 32 and are reused window after window, where one window over the whole sequence allocated and faulted in
    /// about 90 MB at T = 65,536.
    /// </summary>
    internal const int LoopWindowSteps = 2048;

    /// <summary>How one sequence's adjoint runs.</summary>
    internal enum Path
    {
        /// <summary>AdjointMethod.Scan.</summary>
        Scan,

        /// <summary>BPTT by the cell's own loop (<see cref="IBackpropagationLoop{T}"/>).</summary>
        Loop,

        /// <summary>BPTT over the Jacobian blocks a cell declares (<see cref="IStructuredJacobian"/>).</summary>
        Blocks,

        /// <summary>BPTT by one <see cref="IDifferentiableCell{T}.BackwardBlock"/> a step: every other cell.</summary>
        Steps,
    }

    internal static Path PathOf<TCell, T>(in TCell cell, AdjointMethod method)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T> =>
        method == AdjointMethod.Scan ? Path.Scan
            : cell is IBackpropagationLoop<T> ? Path.Loop
            : JacobianStructures.Of<TCell, T>(cell) is not null ? Path.Blocks
            : Path.Steps;

    /// <summary>
    /// Backpropagation through time for a cell that declares K×K Jacobian blocks (the structured cells): every step's
    /// blocks by <see cref="IRecurrentCell{T}.EvaluateBlock"/> in parallel, then the loop from the last step back, v_t =
    /// g_t + J_{t+1}ᵀ v_{t+1}, at O(S·K) a step, then every step's backward product at once (<see cref="BackwardSteps"/>).
    /// Blocks of one unit (the usual case) run the loop a vector of units at a time (<see cref="BackpropagateParts"/>);
    /// wider blocks, through an index table. The declaration is checked as for the scan adjoint (GradientDriver).
    /// <paramref name="carry"/> returns J_{t0}ᵀ v_{t0}.
    /// </summary>
    private static void BackpropagateBlocks<TCell, T>(TCell cell, JacobianStructure structure, ReadOnlySpan<T> x, Buffers<T> buffers, int length,
        Span<T> parameters, Span<T> dInputs, Span<T> carry, int cores, CancellationToken cancellation)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize, p = cell.ProjectionSize, side = structure.Side, ss = structure.EntriesPerStep(s), units = s / structure.Parts;
        JacobianMode mode = side == 1 ? JacobianMode.Diagonal : JacobianMode.Block;
        T[] previous = buffers.Previous, projections = buffers.Projections, jacobians = buffers.Jacobians, next = buffers.Next;
        bool unitBlocks = structure.BlockSize == 1;
        ForBlocks(length, buffers, cores, (_, ws, t0, count) =>
        {
            cell.EvaluateBlock(previous.AsSpan(t0 * s, count * s), projections.AsSpan(t0 * p, count * p), next.AsSpan(t0 * s, count * s),
                jacobians.AsSpan(t0 * ss, count * ss), mode, ws, count);
            if (unitBlocks && side > 1)
            {
                ToPartOrder(jacobians.AsSpan(t0 * ss, count * ss), side, units, count);
            }
        }, cancellation);

        if (unitBlocks)
        {
            BackpropagateParts(buffers, length, s, side, units, carry, cancellation);
            BackwardSteps(cell, x, buffers, length, parameters, dInputs, cores, cancellation);
            return;
        }

        // The state index of row r of block b, in block order.
        var index = new int[s];
        for (int b = 0; b < s / side; b++)
        {
            for (int r = 0; r < side; r++)
            {
                index[(b * side) + r] = structure.Index(b, r, units);
            }
        }

        Span<T> v = buffers.V;
        carry.Clear();
        for (int t = length - 1; t >= 0; t--)
        {
            if ((t & 4095) == 0)
            {
                cancellation.ThrowIfCancellationRequested();
            }

            ReadOnlySpan<T> g = buffers.G.AsSpan(t * s, s), j = jacobians.AsSpan(t * ss, ss);
            Span<T> adjoint = buffers.Adjoints.AsSpan(t * s, s);
            for (int i = 0; i < s; i++)
            {
                v[i] = adjoint[i] = g[i] + carry[i];
            }

            if (side == 1)
            {
                for (int i = 0; i < s; i++)
                {
                    carry[i] = j[i] * v[i];
                }

                continue;
            }

            // carry[col] = Σ_row J[row, col] v[row] within each block (J_tᵀ v).
            for (int b = 0, o = 0; b < s / side; b++, o += side * side)
            {
                for (int c = 0; c < side; c++)
                {
                    T sum = T.Zero;
                    for (int r = 0; r < side; r++)
                    {
                        sum = T.FusedMultiplyAdd(j[o + (r * side) + c], v[index[(b * side) + r]], sum);
                    }

                    carry[index[(b * side) + c]] = sum;
                }
            }
        }

        BackwardSteps(cell, x, buffers, length, parameters, dInputs, cores, cancellation);
    }

    /// <summary>
    /// Blocks of one unit over P parts: each step's P×P blocks, written unit after unit ([b][r][c]), rewritten part pair
    /// after part pair ([r][c][b]), so the loop reads entry (r, c) of every unit as one contiguous run.
    /// </summary>
    private static void ToPartOrder<T>(Span<T> jacobians, int parts, int units, int count)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int pp = parts * parts, ss = pp * units;
        T[] copy = ArrayPool<T>.Shared.Rent(ss);
        try
        {
            for (int t = 0; t < count; t++)
            {
                Span<T> step = jacobians.Slice(t * ss, ss);
                step.CopyTo(copy);
                for (int b = 0; b < units; b++)
                {
                    for (int e = 0; e < pp; e++)
                    {
                        step[(e * units) + b] = copy[(b * pp) + e];
                    }
                }
            }
        }
        finally
        {
            ArrayPool<T>.Shared.Return(copy);
        }
    }

    /// <summary>
    /// The adjoint recurrence over blocks of one unit in part order (<see cref="ToPartOrder"/>; a diagonal Jacobian when
    /// P = 1): v_t = g_t + carry, then for each part c, carry_c = Σ_r J_t[r, c] ⊙ v_r, a vector of units at a time.
    /// </summary>
    private static void BackpropagateParts<T>(Buffers<T> buffers, int length, int s, int parts, int units, Span<T> carry, CancellationToken cancellation)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int ss = s * parts;
        Span<T> v = buffers.V.AsSpan(0, s);
        carry.Clear();
        for (int t = length - 1; t >= 0; t--)
        {
            if ((t & 4095) == 0)
            {
                cancellation.ThrowIfCancellationRequested();
            }

            ReadOnlySpan<T> j = buffers.Jacobians.AsSpan(t * ss, ss);
            TensorPrimitives.Add(buffers.G.AsSpan(t * s, s), carry, v);
            v.CopyTo(buffers.Adjoints.AsSpan(t * s, s));
            for (int c = 0; c < parts; c++)
            {
                Span<T> to = carry.Slice(c * units, units);
                TensorPrimitives.Multiply(j.Slice(c * units, units), v[..units], to);
                for (int r = 1; r < parts; r++)
                {
                    TensorPrimitives.MultiplyAdd(j.Slice(((r * parts) + c) * units, units), v.Slice(r * units, units), to, to);
                }
            }
        }
    }

    /// <summary>A worker's workspace for the BPTT loop's block phases (the cache's preparation, the gradients), BlockSteps steps at a time.</summary>
    private static int LoopWorkspaceSize<TCell, T>(in TCell cell, IBackpropagationLoop<T> loop)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T> =>
        Math.Max(loop.PrepareWorkspaceSize(Solver.BlockSteps), loop.GradientWorkspaceSize(Solver.BlockSteps));

    /// <summary>
    /// Backpropagation through time over one window by the cell's own loop, in three phases: (1) every step's input
    /// projection and cache (W_hh h_{t-1} by block products, the gates), in parallel blocks; (2) the loop from the last step back, v_t = g_t +
    /// J_{t+1}ᵀ v_{t+1}, which per step costs the gates' derivatives δ and one W_hhᵀ δ, and stores δ; (3) the parameter and
    /// input gradients from the stored δ, in parallel blocks. Only phase 2 is sequential. <paramref name="carry"/> returns
    /// J_{t0}ᵀ v_{t0}.
    /// </summary>
    private static unsafe void BackpropagateLoop<TCell, T>(TCell cell, IBackpropagationLoop<T> loop, ReadOnlySpan<T> x, Buffers<T> buffers, int length,
        Span<T> parameters, Span<T> dInputs, Span<T> carry, int cores, CancellationToken cancellation)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize, d = cell.InputSize, p = cell.ProjectionSize, k = loop.BackpropagationCacheSize, e = loop.DeltaSize;
        T[] previous = buffers.Previous, projections = buffers.Projections, cache = buffers.Cache, deltas = buffers.Deltas;
        int pieces;
        fixed (T* px = x, pdx = dInputs)
        {
            // The spans travel into the workers by address: they are pinned for the call.
            nint inputs = (nint)px, inputGradients = (nint)pdx;
            ForBlocks(length, buffers, cores, (_, ws, t0, count) =>
            {
                cell.ProjectInputs(new ReadOnlySpan<T>((T*)inputs + ((long)t0 * d), count * d), projections.AsSpan(t0 * p, count * p), count);
                loop.PrepareBackpropagation(previous.AsSpan(t0 * s, count * s), projections.AsSpan(t0 * p, count * p), cache.AsSpan(t0 * k, count * k), ws, count);
            }, cancellation);

            carry.Clear();
            for (int t1 = length; t1 > 0; t1 -= LoopSteps)
            {
                cancellation.ThrowIfCancellationRequested();
                int t0 = Math.Max(0, t1 - LoopSteps), count = t1 - t0;
                loop.Backpropagate(previous.AsSpan(t0 * s, count * s), cache.AsSpan(t0 * k, count * k), buffers.G.AsSpan(t0 * s, count * s),
                    deltas.AsSpan(t0 * e, count * e), carry, buffers.Scratch, count);
            }

            pieces = ForBlocks(length, buffers, cores, (sum, ws, t0, count) =>
                loop.Gradients(previous.AsSpan(t0 * s, count * s), new ReadOnlySpan<T>((T*)inputs + ((long)t0 * d), count * d), deltas.AsSpan(t0 * e, count * e),
                    new Span<T>((T*)inputGradients + ((long)t0 * d), count * d), sum, ws, count), cancellation);
        }

        AddSums(buffers, pieces, parameters);
    }

    /// <summary>
    /// Every step's backward product at once, given v_t in <see cref="Buffers{T}.Adjoints"/>: ∂L/∂x_t into
    /// <paramref name="dInputs"/>, J_tᵀ v_t into <see cref="Buffers{T}.StepPrevious"/>, and the parameter gradient added to
    /// <paramref name="parameters"/>.
    /// </summary>
    private static unsafe void BackwardSteps<TCell, T>(TCell cell, ReadOnlySpan<T> x, Buffers<T> buffers, int length, Span<T> parameters,
        Span<T> dInputs, int cores, CancellationToken cancellation)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize, d = cell.InputSize, p = cell.ProjectionSize;
        T[] previous = buffers.Previous, projections = buffers.Projections, adjoints = buffers.Adjoints, stepPrevious = buffers.StepPrevious;
        int pieces;
        fixed (T* px = x, pdx = dInputs)
        {
            nint inputs = (nint)px, inputGradients = (nint)pdx;
            pieces = ForBlocks(length, buffers, cores, (sum, ws, t0, count) =>
                cell.BackwardBlock(previous.AsSpan(t0 * s, count * s), projections.AsSpan(t0 * p, count * p),
                    new ReadOnlySpan<T>((T*)inputs + ((long)t0 * d), count * d), adjoints.AsSpan(t0 * s, count * s), stepPrevious.AsSpan(t0 * s, count * s),
                    new Span<T>((T*)inputGradients + ((long)t0 * d), count * d), sum, ws, count), cancellation);
        }

        AddSums(buffers, pieces, parameters);
    }

    /// <summary>One block of BlockSteps steps: the worker's parameter sum and workspace, the block's first step and its length.</summary>
    private delegate void BlockBody<T>(T[] sum, T[] workspace, int t0, int count);

    /// <summary>
    /// The window's blocks of <see cref="Solver.BlockSteps"/> steps in a fixed partition of up to <paramref name="cores"/>
    /// pieces, each with its own workspace and parameter sum (cleared first) and its blocks in order, so the sums do not
    /// depend on which thread ran a piece. The caller and idle <see cref="Helpers"/> take the pieces from one counter: the
    /// caller never waits for a helper to wake (the thread pool's workers woke milliseconds late on the 2-core VM, and a
    /// gradient runs two of these per window of 2,048 steps). Returns the number of pieces, whose sums <see cref="AddSums"/> adds.
    /// </summary>
    private static int ForBlocks<T>(int length, Buffers<T> buffers, int cores, BlockBody<T> body, CancellationToken cancellation)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        cancellation.ThrowIfCancellationRequested();
        int block = Solver.BlockSteps, blocks = (length + block - 1) / block, pieces = Math.Min(blocks, Math.Min(Math.Max(1, cores), buffers.Workspaces.Length));
        var next = new StrongBox<int>(0);
        void Work()
        {
            for (int c = Interlocked.Increment(ref next.Value) - 1; c < pieces; c = Interlocked.Increment(ref next.Value) - 1)
            {
                T[] ws = buffers.Workspaces[c], sum = buffers.Sums[c];
                sum.AsSpan().Clear();
                for (int b = (int)((long)blocks * c / pieces); b < (int)((long)blocks * (c + 1) / pieces); b++)
                {
                    int t0 = b * block;
                    body(sum, ws, t0, Math.Min(block, length - t0));
                }
            }
        }

        Helpers.Helper[] started = pieces > 1 ? Helpers.Start(Work, pieces - 1) : [];
        try
        {
            Work();
        }
        finally
        {
            Helpers.Finish(started);
        }

        return pieces;
    }

    /// <summary>Adds the parameter sums of the <paramref name="pieces"/> pieces <see cref="ForBlocks"/> ran to <paramref name="parameters"/>, in piece order.</summary>
    private static void AddSums<T>(Buffers<T> buffers, int pieces, Span<T> parameters)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        foreach (T[] sum in buffers.Sums.AsSpan(0, pieces))
        {
            for (int i = 0; i < sum.Length; i++)
            {
                parameters[i] += sum[i];
            }
        }
    }
}
