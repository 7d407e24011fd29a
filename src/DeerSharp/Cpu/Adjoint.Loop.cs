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

    /// <summary>A worker's workspace for the BPTT loop's block phases: the cache's preparation and BackwardBlock, BlockSteps steps at a time.</summary>
    private static int LoopWorkspaceSize<TCell, T>(in TCell cell, IBackpropagationLoop<T> loop)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T> =>
        Math.Max(loop.PrepareWorkspaceSize(Solver.BlockSteps), cell.BackwardWorkspaceSize(Solver.BlockSteps));

    /// <summary>
    /// Backpropagation through time over one window by the cell's own loop, in three phases: (1) every step's cache (W_hh
    /// h_{t-1} by block products, the gates), in parallel blocks; (2) the loop from the last step back, v_t = g_t +
    /// J_{t+1}ᵀ v_{t+1}, which per step costs the gates' derivatives and one W_hhᵀ δ; (3) every step's parameter and input
    /// gradients at once (<see cref="BackwardSteps"/>). Only phase 2 is sequential. <paramref name="carry"/> returns
    /// J_{t0}ᵀ v_{t0}, phase 2's.
    /// </summary>
    private static unsafe void BackpropagateLoop<TCell, T>(TCell cell, IBackpropagationLoop<T> loop, ReadOnlySpan<T> x, Buffers<T> buffers, int length,
        Span<T> parameters, Span<T> dInputs, Span<T> carry, int cores, CancellationToken cancellation)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize, p = cell.ProjectionSize, k = loop.BackpropagationCacheSize, block = Solver.BlockSteps;
        T[] previous = buffers.Previous, projections = buffers.Projections, cache = buffers.Cache;
        int blocks = (length + block - 1) / block, chunks = Math.Min(blocks, buffers.Workspaces.Length);
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, cores), CancellationToken = cancellation };
        Parallel.For(0, chunks, parallel, c =>
        {
            T[] ws = buffers.Workspaces[c];
            for (int b = (int)((long)blocks * c / chunks); b < (int)((long)blocks * (c + 1) / chunks); b++)
            {
                int t0 = b * block, count = Math.Min(block, length - t0);
                loop.PrepareBackpropagation(previous.AsSpan(t0 * s, count * s), projections.AsSpan(t0 * p, count * p), cache.AsSpan(t0 * k, count * k), ws, count);
            }
        });

        carry.Clear();
        for (int t1 = length; t1 > 0; t1 -= LoopSteps)
        {
            cancellation.ThrowIfCancellationRequested();
            int t0 = Math.Max(0, t1 - LoopSteps), count = t1 - t0;
            loop.Backpropagate(previous.AsSpan(t0 * s, count * s), cache.AsSpan(t0 * k, count * k), buffers.G.AsSpan(t0 * s, count * s),
                buffers.Adjoints.AsSpan(t0 * s, count * s), carry, buffers.Scratch, count);
        }

        BackwardSteps(cell, x, buffers, length, parameters, dInputs, cores, cancellation);
    }

    /// <summary>
    /// Every step's backward product at once, given v_t in <see cref="Buffers{T}.Adjoints"/>: ∂L/∂x_t into
    /// <paramref name="dInputs"/>, J_tᵀ v_t into <see cref="Buffers{T}.StepPrevious"/>, and the parameter gradient added to
    /// <paramref name="parameters"/>. The blocks are split over the workers in a fixed partition; each worker sums its
    /// blocks' parameter gradients in order and the workers' sums are added in order, so the result does not depend on
    /// scheduling.
    /// </summary>
    private static unsafe void BackwardSteps<TCell, T>(TCell cell, ReadOnlySpan<T> x, Buffers<T> buffers, int length, Span<T> parameters,
        Span<T> dInputs, int cores, CancellationToken cancellation)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize, d = cell.InputSize, p = cell.ProjectionSize, block = Solver.BlockSteps;
        int blocks = (length + block - 1) / block, chunks = Math.Min(blocks, buffers.Workspaces.Length);
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, cores), CancellationToken = cancellation };
        T[] previous = buffers.Previous, projections = buffers.Projections, adjoints = buffers.Adjoints, stepPrevious = buffers.StepPrevious;
        T[][] sums = buffers.Sums;
        fixed (T* px = x, pdx = dInputs)
        {
            // The spans travel into the workers by address: they are pinned for the call.
            nint inputs = (nint)px, inputGradients = (nint)pdx;
            Parallel.For(0, chunks, parallel, c =>
            {
                T[] ws = buffers.Workspaces[c], sum = sums[c];
                sum.AsSpan().Clear();
                for (int b = (int)((long)blocks * c / chunks); b < (int)((long)blocks * (c + 1) / chunks); b++)
                {
                    int t0 = b * block, count = Math.Min(block, length - t0);
                    cell.BackwardBlock(previous.AsSpan(t0 * s, count * s), projections.AsSpan(t0 * p, count * p),
                        new ReadOnlySpan<T>((T*)inputs + ((long)t0 * d), count * d), adjoints.AsSpan(t0 * s, count * s), stepPrevious.AsSpan(t0 * s, count * s),
                        new Span<T>((T*)inputGradients + ((long)t0 * d), count * d), sum, ws, count);
                }
            });
        }

        foreach (T[] sum in sums.AsSpan(0, chunks))
        {
            for (int i = 0; i < sum.Length; i++)
            {
                parameters[i] += sum[i];
            }
        }
    }
}
