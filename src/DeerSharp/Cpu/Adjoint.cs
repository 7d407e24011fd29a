using System.Buffers;
using System.Runtime.CompilerServices;
using DeerSharp.Scan;

namespace DeerSharp.Cpu;

/// <summary>
/// The backward pass (reference §7): at the solved trajectory, v_t = g_t + J_{t+1}ᵀ v_{t+1} with g_t = ∂L/∂h_t, then
/// ∂L/∂θ = Σ_t (∂f/∂θ)ᵀ v_t, ∂L/∂x_t = (∂f/∂x_t)ᵀ v_t and ∂L/∂h_0 = J_1ᵀ v_1. Nothing is differentiated through the
/// Newton loop: the gradient is BPTT's exactly, whatever method solved the forward pass.
/// </summary>
internal static partial class Adjoint
{
    /// <summary>
    /// The most steps one adjoint window may hold so its buffers fit <paramref name="budgetBytes"/>. Per step: the
    /// projections, g and h_{t-1} (both adjoints), plus for the scan two S×S Jacobians (J and its reversed transpose) and
    /// five state vectors, for a cell's own BPTT loop its cache and its δ, for BPTT by Jacobian blocks one step's blocks
    /// and three state vectors.
    /// </summary>
    internal static int WindowLength<TCell, T>(in TCell cell, int length, AdjointMethod method, int cores, long budgetBytes)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        long s = cell.StateSize;
        Path path = PathOf<TCell, T>(cell, method);
        long perStep = cell.ProjectionSize + (2 * s) + path switch
        {
            Path.Scan => (2L * JacobianValues<TCell, T>(cell)) + (5 * s),
            Path.Loop => ((IBackpropagationLoop<T>)cell).BackpropagationCacheSize + ((IBackpropagationLoop<T>)cell).DeltaSize,
            Path.Blocks => JacobianValues<TCell, T>(cell) + (3 * s),
            _ => 0,
        };
        long bytesPerStep = Math.Max(1, perStep * Unsafe.SizeOf<T>());
        bool pooled = path is Path.Loop or Path.Blocks;
        // Their window buffers are rented from ArrayPool, which rounds each one up to a power of two: at most twice what is asked.
        long fits = (budgetBytes - (FixedValues<TCell, T>(cell, path, cores) * Unsafe.SizeOf<T>())) / (pooled ? 2 : 1) / bytesPerStep;
        if (fits < 1)
        {
            throw new InsufficientMemoryException(
                $"One step of the {method} adjoint needs {bytesPerStep} bytes of working memory, over the memory budget of {budgetBytes} bytes; raise SolveOptions.MemoryBudgetBytes or use AdjointMethod.Sequential.");
        }

        // The BPTT paths by blocks run in windows whose buffers stay in cache (and are not allocated afresh for a long sequence).
        long most = pooled ? LoopWindowSteps : length;
        return (int)Math.Clamp(fits, 1, Math.Max(1, Math.Min(length, most)));
    }

    /// <summary>
    /// The forward solve checks a declared structure by its residual; the adjoint has no such check, so it tests the
    /// declaration itself: at the first, middle and last step of the window, the full Jacobian must be zero outside the
    /// declared blocks (forward-mode AD and the built-in cells give exact zeros there). A declaration that fails would
    /// give a wrong gradient, so it is an error, not a result.
    /// </summary>
    internal static void CheckDeclaredStructure<TCell, T>(in TCell cell, ReadOnlySpan<T> states, ReadOnlySpan<T> h0, ReadOnlySpan<T> inputs, int length,
        JacobianStructure structure)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize, p = cell.ProjectionSize, d = cell.InputSize, side = structure.Side, units = s / structure.Parts;
        var block = new int[s];
        for (int b = 0; b < s / side; b++)
        {
            for (int r = 0; r < side; r++)
            {
                block[structure.Index(b, r, units)] = b;
            }
        }

        var full = new T[s * s];
        var f = new T[s];
        var projection = new T[p];
        var workspace = new T[Math.Max(1, Math.Max(cell.BlockWorkspaceSize(1), cell.WorkspaceSize))];
        foreach (int t in new[] { 0, length / 2, length - 1 }.Distinct())
        {
            cell.ProjectInputs(inputs.Slice(t * d, d), projection, 1);
            cell.EvaluateBlock(t == 0 ? h0[..s] : states.Slice((t - 1) * s, s), projection, f, full, JacobianMode.Full, workspace, 1);
            for (int i = 0; i < s; i++)
            {
                for (int j = 0; j < s; j++)
                {
                    if (block[i] != block[j] && full[(i * s) + j] != T.Zero)
                    {
                        throw new InvalidOperationException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                            $"The cell declares a block-diagonal Jacobian (blocks of {structure.BlockSize} unit(s), {structure.Parts} part(s)), but ∂f_{i}/∂h_{j} = {full[(i * s) + j]} at step {t} of sequence 0 lies outside its blocks: the declaration is wrong, and a gradient built on it would be too. Fix or remove IStructuredJacobian."));
                    }
                }
            }
        }
    }

    /// <summary>
    /// Jacobian values per step the scan adjoint keeps: S·K for a cell that declares K×K blocks (S for a diagonal one),
    /// S² otherwise.
    /// </summary>
    internal static int JacobianValues<TCell, T>(in TCell cell)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T> =>
        JacobianStructures.Of<TCell, T>(cell) is { } structure ? structure.EntriesPerStep(cell.StateSize) : cell.StateSize * cell.StateSize;

    /// <summary>The window-independent buffers: one cell workspace and one parameter sum per core (the paths by blocks), or one step's.</summary>
    private static long FixedValues<TCell, T>(in TCell cell, Path path, int cores)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T> =>
        path switch
        {
            Path.Scan or Path.Blocks => (long)Math.Max(1, cores) * (cell.BlockWorkspaceSize(Solver.BlockSteps) + cell.BackwardWorkspaceSize(Solver.BlockSteps) + cell.ParameterCount),
            Path.Loop => ((long)Math.Max(1, cores) * (LoopWorkspaceSize(cell, (IBackpropagationLoop<T>)cell) + cell.ParameterCount))
                + ((IBackpropagationLoop<T>)cell).BackpropagationScratchSize + cell.StateSize,
            _ => cell.BackwardWorkspaceSize(1) + (3L * cell.StateSize),
        };

    /// <summary>
    /// One sequence's gradient, in windows from the end of time back to the start so the buffers fit the memory budget:
    /// each window starts from J_{t1}ᵀ v_{t1}, what the window after it passed back as "∂L/∂h_{t1-1}", and hands on its own.
    /// The buffers are allocated once, for the longest window.
    /// </summary>
    internal static int Sequence<TCell, T>(TCell cell, ReadOnlySpan<T> x, ReadOnlySpan<T> states, ReadOnlySpan<T> h0, ReadOnlySpan<T> cotangent,
        Span<T> parameters, Span<T> dInputs, Span<T> dInitial, AdjointMethod method, int cores, long budgetBytes, CancellationToken cancellation)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize, d = cell.InputSize, o = cell.OutputSize, p = cell.ProjectionSize;
        int length = states.Length / s;
        if (length == 0)
        {
            dInitial.Clear();
            return 1;
        }

        int window = WindowLength<TCell, T>(cell, length, method, cores, budgetBytes);
        int workers = Math.Max(1, cores);
        Path path = PathOf<TCell, T>(cell, method);
        IBackpropagationLoop<T>? loop = path == Path.Loop ? (IBackpropagationLoop<T>)cell : null;
        using var buffers = new Buffers<T>(path, window, s, p, JacobianValues<TCell, T>(cell), loop?.BackpropagationCacheSize ?? 0, loop?.DeltaSize ?? 0);
        if (loop is not null)
        {
            buffers.Scratch = new T[loop.BackpropagationScratchSize];
            buffers.Workspaces = [.. Enumerable.Range(0, workers).Select(_ => new T[LoopWorkspaceSize(cell, loop)])];
            buffers.Sums = [.. Enumerable.Range(0, workers).Select(_ => new T[cell.ParameterCount])];
        }
        else if (path is Path.Scan or Path.Blocks)
        {
            buffers.Workspaces = [.. Enumerable.Range(0, workers).Select(_ => new T[Math.Max(cell.BlockWorkspaceSize(Solver.BlockSteps), cell.BackwardWorkspaceSize(Solver.BlockSteps))])];
            buffers.Sums = [.. Enumerable.Range(0, workers).Select(_ => new T[cell.ParameterCount])];
        }
        else
        {
            buffers.Workspaces = [new T[cell.BackwardWorkspaceSize(1)]];
        }

        var carry = new T[s];
        for (int t1 = length; t1 > 0; t1 -= window)
        {
            int t0 = Math.Max(0, t1 - window), count = t1 - t0;
            Span<T> projections = buffers.Projections.AsSpan(0, count * p), g = buffers.G.AsSpan(0, count * s), previous = buffers.Previous.AsSpan(0, count * s);
            if (loop is null)
            {
                cell.ProjectInputs(x.Slice(t0 * d, count * d), projections, count);         // the BPTT loop projects its blocks in parallel
            }

            // g_t: the cotangent on the output, zero on the rest of the state (an LSTM's c); the last step also receives
            // what the later window passed back.
            g.Clear();
            for (int t = 0; t < count; t++)
            {
                cotangent.Slice((t0 + t) * o, o).CopyTo(g.Slice(t * s, o));
            }

            for (int i = 0; i < s; i++)
            {
                g[((count - 1) * s) + i] += carry[i];
            }

            // previous[t] = h_{t-1}: h0 (or the state before the window), then the solved states shifted by one step.
            (t0 == 0 ? h0 : states.Slice((t0 - 1) * s, s)).CopyTo(previous);
            states.Slice(t0 * s, (count - 1) * s).CopyTo(previous[s..]);
            if (loop is not null)
            {
                BackpropagateLoop(cell, loop, x.Slice(t0 * d, count * d), buffers, count, parameters, dInputs.Slice(t0 * d, count * d), carry, cores, cancellation);
            }
            else if (path == Path.Blocks)
            {
                BackpropagateBlocks(cell, JacobianStructures.Of<TCell, T>(cell)!.Value, x.Slice(t0 * d, count * d), buffers, count, parameters,
                    dInputs.Slice(t0 * d, count * d), carry, cores, cancellation);
            }
            else if (method == AdjointMethod.Sequential)
            {
                Backpropagate(cell, x.Slice(t0 * d, count * d), buffers, count, parameters, dInputs.Slice(t0 * d, count * d), carry, cancellation);
            }
            else
            {
                ScanAdjoint(cell, x.Slice(t0 * d, count * d), buffers, count, parameters, dInputs.Slice(t0 * d, count * d), carry, cores, cancellation);
            }
        }

        carry.CopyTo(dInitial);
        return (length + window - 1) / window;
    }

    /// <summary>
    /// One adjoint window's buffers, [window, ·] each, allocated once per sequence. The BPTT paths by blocks
    /// (<see cref="Path.Loop"/>, <see cref="Path.Blocks"/>) rent their window buffers from <see cref="ArrayPool{T}.Shared"/>
    /// and return them on <see cref="Dispose"/>: a batch's sequences and a training loop's steps reuse them instead of
    /// allocating, zeroing and faulting in fresh ones each time. Rented arrays may be longer and hold stale data; every
    /// phase writes before it reads.
    /// </summary>
    private sealed class Buffers<T>(Path path, int window, int s, int p, int jacobianValues, int cacheSize, int deltaSize) : IDisposable
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        private readonly bool _pooled = path is Path.Loop or Path.Blocks;

        public readonly T[] Projections = Take(path, (long)window * p);
        public readonly T[] G = Take(path, (long)window * s);
        public readonly T[] Previous = Take(path, (long)window * s);

        /// <summary>The cell's BPTT loop: its per-step cache and δ, [window, ·] each.</summary>
        public readonly T[] Cache = Take(path, (long)window * cacheSize);
        public readonly T[] Deltas = Take(path, (long)window * deltaSize);

        /// <summary>The BPTT loop's scratch.</summary>
        public T[] Scratch = [];

        /// <summary>J_t (full, or the declared blocks), f(h_{t-1}, x_t), v_t and J_tᵀ v_t of every step: the scan and BPTT by blocks.</summary>
        public readonly T[] Jacobians = path is Path.Scan or Path.Blocks ? Take(path, (long)window * jacobianValues) : [];
        public readonly T[] Next = path is Path.Scan or Path.Blocks ? Take(path, (long)window * s) : [];
        public readonly T[] Adjoints = path is Path.Scan or Path.Blocks ? Take(path, (long)window * s) : [];

        /// <summary>J_tᵀ v_t of every step, from <see cref="BackwardSteps"/>.</summary>
        public readonly T[] StepPrevious = path is Path.Scan or Path.Blocks ? Take(path, (long)window * s) : [];

        /// <summary>The scan's reversed, transposed recurrence and its solution.</summary>
        public readonly T[] Transposed = path == Path.Scan ? new T[(long)window * jacobianValues] : [];
        public readonly T[] Reversed = path == Path.Scan ? new T[(long)window * s] : [];
        public readonly T[] W = path == Path.Scan ? new T[(long)window * s] : [];

        public void Dispose()
        {
            if (_pooled)
            {
                foreach (T[] buffer in new[] { Projections, G, Previous, Cache, Deltas, Jacobians, Next, Adjoints, StepPrevious })
                {
                    if (buffer.Length > 0)
                    {
                        ArrayPool<T>.Shared.Return(buffer);
                    }
                }
            }
        }

        private static T[] Take(Path path, long length) =>
            length == 0 ? [] : path is Path.Loop or Path.Blocks ? ArrayPool<T>.Shared.Rent(checked((int)length)) : new T[length];

        /// <summary>Cell workspaces, one per worker, for EvaluateBlock and BackwardBlock alike.</summary>
        public T[][] Workspaces = [];

        /// <summary>Each worker's parameter-gradient sum (the scan adjoint).</summary>
        public T[][] Sums = [];

        /// <summary>v, one step's adjoint (BPTT).</summary>
        public readonly T[] V = new T[s];
    }

    /// <summary>
    /// Backpropagation through time over one window: v_t = g_t + J_{t+1}ᵀ v_{t+1}, one vector-Jacobian product per step
    /// from the end. <paramref name="carry"/> returns J_{t0}ᵀ v_{t0}.
    /// </summary>
    private static void Backpropagate<TCell, T>(TCell cell, ReadOnlySpan<T> x, Buffers<T> buffers, int length, Span<T> parameters,
        Span<T> dInputs, Span<T> carry, CancellationToken cancellation)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize, d = cell.InputSize, p = cell.ProjectionSize;
        T[] g = buffers.G, previous = buffers.Previous, projections = buffers.Projections;
        Span<T> v = buffers.V;
        carry.Clear();
        T[] workspace = buffers.Workspaces[0];
        for (int t = length - 1; t >= 0; t--)
        {
            if ((t & 4095) == 0)
            {
                cancellation.ThrowIfCancellationRequested();
            }

            for (int i = 0; i < s; i++)
            {
                v[i] = g[(t * s) + i] + carry[i];
            }

            cell.BackwardBlock(previous.AsSpan(t * s, s), projections.AsSpan(t * p, p), x.Slice(t * d, d), v, carry, dInputs.Slice(t * d, d),
                parameters, workspace, 1);
        }
    }

    /// <summary>
    /// The adjoint as DEER computes it, over one window: every J_t at once, the reverse-time recurrence
    /// w_u = J_{T-u}ᵀ w_{u-1} + g_{T-1-u} (u = T-1-t) by the scan, then all steps' backward products at once, in blocks
    /// over the cores. <paramref name="carry"/> returns J_{t0}ᵀ v_{t0}.
    /// </summary>
    private static void ScanAdjoint<TCell, T>(TCell cell, ReadOnlySpan<T> x, Buffers<T> buffers, int length, Span<T> parameters,
        Span<T> dInputs, Span<T> carry, int cores, CancellationToken cancellation)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize, p = cell.ProjectionSize;
        T[] g = buffers.G, previous = buffers.Previous, projections = buffers.Projections;

        // A cell that declares K×K blocks gives them (the diagonal for K = 1), and the transposed recurrence is as sparse:
        // O(T·S·K) memory and work. Otherwise the full S×S Jacobians.
        JacobianStructure? structure = JacobianStructures.Of<TCell, T>(cell);
        JacobianMode mode = structure is null ? JacobianMode.Full : structure.Value.Side == 1 ? JacobianMode.Diagonal : JacobianMode.Block;
        int ss = JacobianValues<TCell, T>(cell);

        // 1. Jacobians at the solution, in parallel blocks: J_t = ∂f/∂h at (h_{t-1}, x_t).
        T[] jacobians = buffers.Jacobians, next = buffers.Next;
        ForBlocks(length, buffers, cores, (_, ws, t0, count) =>
            cell.EvaluateBlock(previous.AsSpan(t0 * s, count * s), projections.AsSpan(t0 * p, count * p), next.AsSpan(t0 * s, count * s),
                jacobians.AsSpan(t0 * ss, count * ss), mode, ws, count), cancellation);

        // 2. Reverse time and transpose: A'_u = J_{T-u}ᵀ (A'_0 unused: w starts from zero), b'_u = g_{T-1-u}. A diagonal is
        //    its own transpose; blocks transpose one by one.
        T[] a = buffers.Transposed, b = buffers.Reversed;
        int side = structure?.Side ?? s;
        for (int u = 0; u < length; u++)
        {
            g.AsSpan((length - 1 - u) * s, s).CopyTo(b.AsSpan(u * s, s));
            if (u == 0)
            {
                a.AsSpan(0, ss).Clear();
                continue;
            }

            ReadOnlySpan<T> j = jacobians.AsSpan((length - u) * ss, ss);
            Span<T> at = a.AsSpan(u * ss, ss);
            if (mode == JacobianMode.Diagonal)
            {
                j.CopyTo(at);
                continue;
            }

            for (int o = 0; o < ss; o += side * side)
            {
                for (int r = 0; r < side; r++)
                {
                    for (int c = 0; c < side; c++)
                    {
                        at[o + (r * side) + c] = j[o + (c * side) + r];
                    }
                }
            }
        }

        T[] w = buffers.W, adjoints = buffers.Adjoints;
        if (mode == JacobianMode.Block)
        {
            LinearRecurrence.SolveBlockDiagonal(a, b, new T[s], w, length, s, structure!.Value, cores);
        }
        else
        {
            LinearRecurrence.Solve(a, b, new T[s], w, length, s, dense: mode == JacobianMode.Full, cores);
        }
        for (int t = 0; t < length; t++)
        {
            w.AsSpan((length - 1 - t) * s, s).CopyTo(adjoints.AsSpan(t * s, s));
        }

        // 3. Every step's backward product at once (the BPTT loop's last phase too).
        BackwardSteps(cell, x, buffers, length, parameters, dInputs, cores, cancellation);
        buffers.StepPrevious.AsSpan(0, s).CopyTo(carry);
    }
}
