using System.Runtime.CompilerServices;

namespace DeerSharp.Engines;

/// <summary>Where a solve runs: the CPU, or an ILGPU accelerator with its memory.</summary>
/// <param name="Device">Cpu, Gpu or Emulated.</param>
/// <param name="MemoryBytes">The accelerator's memory (0 for the CPU, whose budget is the process's).</param>
internal readonly record struct Backend(ComputeDevice Device, long MemoryBytes)
{
    public static Backend Cpu { get; } = new(ComputeDevice.Cpu, 0);

    public bool OnDevice => Device != ComputeDevice.Cpu;
}

/// <summary>What the policy needs to know of a cell, as the backend stores it.</summary>
/// <param name="StateSize">S.</param>
/// <param name="InputSize">d.</param>
/// <param name="ProjectionSize">P, values of the input projection per step.</param>
/// <param name="Structure">The Jacobian's declared blocks; null for a dense Jacobian.</param>
/// <param name="LinearSurrogate">A cell whose own scans give the exact trajectory (GILR, GILR-LSTM, SRU).</param>
internal readonly record struct CellFootprint(int StateSize, int InputSize, int ProjectionSize, JacobianStructure? Structure, bool LinearSurrogate)
{
    public static CellFootprint Of<TCell, T>(in TCell cell)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T> =>
        new(cell.StateSize, cell.InputSize, cell.ProjectionSize, JacobianStructures.Of<TCell, T>(cell), cell is ILinearSurrogateCell<T>);

    /// <summary>The side of one Jacobian block DEER's scan composes: the declared blocks', or S for a dense Jacobian.</summary>
    public int Side => Structure?.Side ?? StateSize;
}

/// <summary>
/// Every number a solve runs by, decided once from <see cref="SolveOptions"/> for one backend, element type, batch and
/// length (docs/architecture.md, "Where each rule lives"): the method Auto stands for, the tolerances, the iteration
/// limit, whether a failed sequence falls back to the loop, and how many sequences and steps one engine call may hold
/// (the memory windows). Nothing else reads these options.
/// </summary>
internal readonly record struct SolverSettings<T>(SolveMethod Method, ComputeDevice Device, int MaxIterations, T AbsoluteTolerance, T RelativeTolerance,
    InitialGuess InitialGuess, int MaxDegreeOfParallelism, bool Fallback, long MemoryBudgetBytes, T InitialDamping, IProgress<SolveProgress>? Progress,
    int Layer, JacobianStructure? Structure, int Group, int Window, int Workers, bool SeparateScan, CancellationToken CancellationToken)
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>With <see cref="ComputeDevice.Auto"/>, problems below this many state values (B·T·S) stay on the CPU: launch and transfer overheads dominate.</summary>
    public const long DeviceThreshold = 1L << 20;

    /// <summary>Resolves <paramref name="options"/> for <paramref name="cell"/> on <paramref name="backend"/>.</summary>
    public static SolverSettings<T> Resolve(SolveOptions options, Backend backend, CellFootprint cell, int batchSize, int length, int layer = 0,
        bool separateScan = false)
    {
        int cores = Cores(options);
        SolveMethod method = ResolveMethod(options, backend, cell, batchSize, length);
        (double atol, double rtol) = Tolerances(options);
        int defaultLimit = method == SolveMethod.Deer ? 100 : 500;
        int maxIterations = options.MaxIterations ?? Math.Min(defaultLimit, Math.Max(length, method == SolveMethod.QuasiElk ? 50 : 0));
        long budget = backend.OnDevice
            ? Math.Min(options.MemoryBudgetBytes ?? long.MaxValue, backend.MemoryBytes / 4 * 3)
            : MemoryBudget(options);
        var settings = new SolverSettings<T>(method, backend.Device, maxIterations, T.CreateTruncating(atol), T.CreateTruncating(rtol), options.InitialGuess,
            cores, FallbackApplies(options), budget, T.CreateTruncating(options.InitialDamping), options.Progress, layer,
            cell.Structure, Group: 1, Window: Math.Max(1, length), Workers: 1, separateScan, options.CancellationToken);
        return backend.OnDevice ? settings.DeviceWindows(cell, batchSize, length) : settings.CpuWindows(cell, batchSize, length);
    }

    /// <summary>The tolerances on the fixed-point residual: the options', or 1e-5 in float and 1e-10 in double.</summary>
    public static (double Absolute, double Relative) Tolerances(SolveOptions options)
    {
        bool single = typeof(T) == typeof(float);
        return (options.AbsoluteTolerance ?? (single ? 1e-5 : 1e-10), options.RelativeTolerance ?? (single ? 1e-5 : 1e-10));
    }

    /// <summary>Whether a sequence the iterative method failed on is evaluated by the loop: always for Auto, which promises the loop's answer.</summary>
    public static bool FallbackApplies(SolveOptions options) => options.Method == SolveMethod.Auto || options.Fallback == FallbackPolicy.Sequential;

    /// <summary>The cores a solve may use: the options', or all of them.</summary>
    public static int Cores(SolveOptions options) => options.MaxDegreeOfParallelism ?? Environment.ProcessorCount;

    /// <summary>The bytes a CPU solve (or a gradient: forward and adjoint together) may use: the options', or <see cref="DefaultMemoryBudget"/>.</summary>
    public static long MemoryBudget(SolveOptions options) => options.MemoryBudgetBytes ?? DefaultMemoryBudget();

    /// <summary>Half of what the runtime reports as available, and at least 64 MiB.</summary>
    public static long DefaultMemoryBudget()
    {
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        return Math.Max(64L << 20, available / 2);
    }

    /// <summary>Whether <see cref="ComputeDevice.Auto"/> moves a problem of B·T·S state values to a device.</summary>
    public static bool DeviceWorthwhile(int batchSize, int length, int stateSize) => (long)batchSize * length * stateSize >= DeviceThreshold;

    /// <summary>
    /// The method Auto stands for on <paramref name="backend"/>. A linear surrogate's own scan on a device, and its loop
    /// on the CPU: the CPU runs a surrogate's scans in order, which is the loop's arithmetic with a residual check added
    /// (the loop was 3-16x faster at n = 32, T = 65,536: docs/benchmarks.md). Otherwise, on a device, exact DEER where its scan takes the
    /// Jacobian's blocks, else quasi-DEER; on the CPU, the cost model (<see cref="CostModel"/>), which on 2 cores keeps the loop.
    /// </summary>
    public static SolveMethod ResolveMethod(SolveOptions options, Backend backend, CellFootprint cell, int batchSize, int length) => options.Method switch
    {
        SolveMethod.Auto when cell.LinearSurrogate => backend.OnDevice ? SolveMethod.Scan : SolveMethod.Sequential,
        SolveMethod.Auto when backend.OnDevice => cell.Side < cell.StateSize || cell.StateSize <= DeviceLimits.MaxDenseState ? SolveMethod.Deer : SolveMethod.QuasiDeer,
        SolveMethod.Auto => CostModel.Choose(batchSize, length, cell.StateSize, Cores(options), cell.Structure),
        var m => m,
    };

    /// <summary>
    /// Whether the engine checks the inputs for NaN and ±∞ as it reads them, instead of the driver scanning them all before
    /// it starts: the CPU's loop, which reads each chunk of steps just before projecting it (the chunk is then in cache for
    /// the projection, and with one sequence the scan runs on the projection's own core). An engine that finds one stops
    /// the sequence as not converged; the driver then scans every input and throws the same error the scan up front would
    /// have (<see cref="Driver.SolveValidation.FiniteInputs"/>).
    /// </summary>
    public bool EngineChecksInputs => Method == SolveMethod.Sequential && Device == ComputeDevice.Cpu;

    /// <summary>
    /// What Newton's update needs of the Jacobian: DEER on a cell with a declared block structure takes the exact blocks
    /// (the diagonal itself when the blocks are 1×1), DEER otherwise the full Jacobian, quasi-DEER and ELK its diagonal.
    /// </summary>
    public JacobianMode UpdateMode => Method switch
    {
        SolveMethod.Deer when Structure is { Side: 1 } => JacobianMode.Diagonal,
        SolveMethod.Deer when Structure is not null => JacobianMode.Block,
        SolveMethod.Deer => JacobianMode.Full,
        SolveMethod.QuasiDeer or SolveMethod.QuasiElk => JacobianMode.Diagonal,
        _ => JacobianMode.None,
    };

    /// <summary>Jacobian values per step for <paramref name="mode"/> and state size S.</summary>
    public int JacobianPerStep(JacobianMode mode, int s) => mode switch
    {
        JacobianMode.Full => s * s,
        JacobianMode.Block => Structure!.Value.EntriesPerStep(s),
        JacobianMode.Diagonal => s,
        _ => 0,
    };

    /// <summary>A copy for one step of the solve: another method (the fallback's loop), or fewer cores.</summary>
    public SolverSettings<T> WithMethod(SolveMethod method) => this with { Method = method };

    /// <summary>Sends one iteration's report to <see cref="SolveOptions.Progress"/>.</summary>
    public void Report(int sequence, int window, int iteration, double residual) =>
        Progress?.Report(new SolveProgress(Method, Layer, sequence, window, iteration, residual));

    /// <summary>The rules of one iteration loop: its limit, its tolerance for the runaway test, cancellation and reports.</summary>
    public IterationPolicy Iterations(int firstSequence, int window)
    {
        IProgress<SolveProgress>? progress = Progress;
        SolveMethod method = Method;
        int layer = Layer;
        return new IterationPolicy(MaxIterations, double.CreateTruncating(AbsoluteTolerance), typeof(T) == typeof(float),
            progress is null ? null : (q, k, r) => progress.Report(new SolveProgress(method, layer, firstSequence + q, window, k, r)), CancellationToken);
    }

    /// <summary>
    /// CPU windows: the sequences of a batch run side by side, one per core (each worker with its share of the memory
    /// budget, which bounds the whole solve, not each worker), else one at a time over every core; each sequence in windows
    /// of steps whose working buffers fit that share.
    /// </summary>
    private SolverSettings<T> CpuWindows(CellFootprint cell, int batchSize, int length)
    {
        int workers = batchSize >= 2 && MaxDegreeOfParallelism >= 2 ? Math.Min(batchSize, MaxDegreeOfParallelism) : 1;
        long s = cell.StateSize;
        long perStep = cell.ProjectionSize + Method switch
        {
            SolveMethod.Sequential => 0,
            SolveMethod.Deer => 2 * s + JacobianPerStep(UpdateMode, (int)s),
            SolveMethod.QuasiElk => 7 * s,
            _ => 3 * s,
        };
        long bytesPerStep = Math.Max(1, perStep * Unsafe.SizeOf<T>());
        long share = Math.Max(1, MemoryBudgetBytes / workers);
        // The buffers are rented from ArrayPool, which rounds each one up to a power of two: at most twice what is asked.
        long fits = share / 2 / bytesPerStep;
        if (fits < 1)
        {
            throw new InsufficientMemoryException(
                $"One step of {Method} needs {bytesPerStep} bytes of working memory, over the memory budget of {share} bytes; raise SolveOptions.MemoryBudgetBytes or use SolveMethod.QuasiDeer.");
        }

        return this with { Group = Math.Max(1, batchSize), Window = (int)Math.Clamp(fits, 1, Math.Max(1, length)), Workers = workers };
    }

    /// <summary>
    /// Device windows: every sequence at once when the rows fit the device budget and one launch's index range; else
    /// groups of whole sequences; else one sequence at a time in windows of steps.
    /// </summary>
    private SolverSettings<T> DeviceWindows(CellFootprint cell, int batchSize, int length)
    {
        long bytesPerRow = DeviceBytesPerRow(cell, Method);
        long rowsFit = Math.Min(MemoryBudgetBytes / bytesPerRow, DeviceMaxRows(cell, Method));
        if (rowsFit < 1)
        {
            throw new InsufficientMemoryException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"One step of {Method} on the {Device} backend needs {bytesPerRow} bytes of device memory, over the budget of {MemoryBudgetBytes} bytes; raise SolveOptions.MemoryBudgetBytes or use Device = Cpu."));
        }

        int steps = Math.Max(1, length);
        long group = Math.Min(Math.Max(1, batchSize), rowsFit / steps);
        return group >= 1
            ? this with { Group = (int)group, Window = steps }
            : this with { Group = 1, Window = (int)rowsFit };
    }

    /// <summary>Jacobian values per row the device keeps for <paramref name="method"/>.</summary>
    public static int DeviceJacobianPerStep(CellFootprint cell, SolveMethod method) => method switch
    {
        SolveMethod.Deer => cell.StateSize * cell.Side,
        SolveMethod.QuasiDeer or SolveMethod.Scan or SolveMethod.QuasiElk => cell.StateSize,
        _ => 1,
    };

    /// <summary>The most rows (sequence, step) one device solve may hold: every buffer's index must fit one launch's int range.</summary>
    public static long DeviceMaxRows(CellFootprint cell, SolveMethod method) =>
        int.MaxValue / Math.Max(Math.Max(DeviceJacobianPerStep(cell, method), cell.ProjectionSize), cell.StateSize);

    /// <summary>Device bytes per row: inputs, projection, recurrent product, four state buffers and the Jacobian, plus a margin for the scan's chunk maps.</summary>
    public static long DeviceBytesPerRow(CellFootprint cell, SolveMethod method)
    {
        long values = cell.InputSize + (2L * cell.ProjectionSize) + (4L * cell.StateSize) + DeviceJacobianPerStep(cell, method)
            + (method == SolveMethod.QuasiElk ? 14L * cell.StateSize : 0);
        return (values + (values / 4) + 1) * Unsafe.SizeOf<T>();
    }
}
