using System.Numerics;

namespace DeerSharp.Solvers;

/// <summary>Options resolved for one element type and sequence length.</summary>
internal readonly record struct SolverSettings<T>(SolveMethod Method, int MaxIterations, T AbsoluteTolerance, T RelativeTolerance,
    InitialGuess InitialGuess, int MaxDegreeOfParallelism)
    where T : unmanaged, IFloatingPointIeee754<T>
{
    public static SolverSettings<T> Resolve(SolveOptions options, int batchSize, int length, int stateSize)
    {
        int cores = options.MaxDegreeOfParallelism ?? Environment.ProcessorCount;
        SolveMethod method = options.Method == SolveMethod.Auto ? CostModel.Choose(batchSize, length, stateSize, cores) : options.Method;
        bool single = typeof(T) == typeof(float);
        double atol = options.AbsoluteTolerance ?? (single ? 1e-5 : 1e-10);
        double rtol = options.RelativeTolerance ?? (single ? 1e-5 : 1e-10);
        int defaultLimit = method == SolveMethod.Deer ? 100 : 500;
        int maxIterations = options.MaxIterations ?? Math.Min(defaultLimit, length);
        return new SolverSettings<T>(method, maxIterations, T.CreateTruncating(atol), T.CreateTruncating(rtol),
            options.InitialGuess, cores);
    }

    public SolverSettings<T> WithParallelism(int dop) => this with { MaxDegreeOfParallelism = dop };
}
