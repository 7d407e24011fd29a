using System.Numerics;
using DeerSharp.Cells;

namespace DeerSharp.Solvers;

/// <summary>Options resolved for one element type, batch and sequence length.</summary>
internal readonly record struct SolverSettings<T>(SolveMethod Method, int MaxIterations, T AbsoluteTolerance, T RelativeTolerance,
    InitialGuess InitialGuess, int MaxDegreeOfParallelism, bool Fallback, long MemoryBudgetBytes, T InitialDamping,
    IProgress<SolveProgress>? Progress, int Layer, CancellationToken CancellationToken, JacobianStructure? Structure = null, bool SeparateScan = false)
    where T : unmanaged, IFloatingPointIeee754<T>
{
    public static SolverSettings<T> Resolve(SolveOptions options, int batchSize, int length, int stateSize, int layer = 0, bool linearSurrogate = false,
        JacobianStructure? structure = null)
    {
        int cores = options.MaxDegreeOfParallelism ?? Environment.ProcessorCount;
        SolveMethod method = options.Method switch
        {
            SolveMethod.Auto when linearSurrogate => SolveMethod.Scan,
            SolveMethod.Auto => CostModel.Choose(batchSize, length, stateSize, cores, structure),
            var m => m,
        };
        bool single = typeof(T) == typeof(float);
        double atol = options.AbsoluteTolerance ?? (single ? 1e-5 : 1e-10);
        double rtol = options.RelativeTolerance ?? (single ? 1e-5 : 1e-10);
        int defaultLimit = method == SolveMethod.Deer ? 100 : 500;
        int maxIterations = options.MaxIterations ?? Math.Min(defaultLimit, Math.Max(length, method == SolveMethod.QuasiElk ? 50 : 0));
        // Auto promises the loop's answer, so it always falls back; explicit methods follow the option.
        bool fallback = options.Method == SolveMethod.Auto || options.Fallback == FallbackPolicy.Sequential;
        long budget = options.MemoryBudgetBytes ?? DefaultMemoryBudget();
        return new SolverSettings<T>(method, maxIterations, T.CreateTruncating(atol), T.CreateTruncating(rtol), options.InitialGuess, cores,
            fallback, budget, T.CreateTruncating(options.InitialDamping), options.Progress, layer, options.CancellationToken, structure, options.SeparateScan);
    }

    /// <summary>Half of what the runtime reports as available, and at least 64 MiB.</summary>
    public static long DefaultMemoryBudget()
    {
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        return Math.Max(64L << 20, available / 2);
    }

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

    public SolverSettings<T> WithParallelism(int dop) => this with { MaxDegreeOfParallelism = dop };

    public void Report(int sequence, int window, int iteration, double residual) =>
        Progress?.Report(new SolveProgress(Method, Layer, sequence, window, iteration, residual));
}
