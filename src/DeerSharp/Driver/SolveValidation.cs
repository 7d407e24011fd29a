using DeerSharp.Engines;

namespace DeerSharp.Driver;

/// <summary>
/// The checks every solve makes once, before any engine runs: options, the cell's sizes, every shape, the finiteness of
/// the initial state and warm start. The inputs' finiteness is the driver's call (<see cref="FiniteInputs"/>): up front,
/// or after the engine where the loop checks them as it reads them (<see cref="SolverSettings{T}.EngineChecksInputs"/>).
/// </summary>
internal static class SolveValidation
{
    public static void Check<TCell, T>(TCell cell, ReadOnlySpan<T> inputs, int batchSize, int length, ReadOnlySpan<T> initialState,
        ReadOnlySpan<T> warmStart, SolveOptions options)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        options.Validate();
        RequireSupportedType<T>();
        CellCheck.Require(cell, nameof(cell));
        int s = cell.StateSize, d = cell.InputSize;
        if (s < 1 || d < 0 || cell.OutputSize < 1 || cell.OutputSize > s || cell.ProjectionSize < 0 || cell.WorkspaceSize < 0)
        {
            throw new ArgumentException(
                $"The cell reports inconsistent sizes: StateSize {s}, InputSize {d}, OutputSize {cell.OutputSize}, ProjectionSize {cell.ProjectionSize}, WorkspaceSize {cell.WorkspaceSize}.",
                nameof(cell));
        }

        ArgumentOutOfRangeException.ThrowIfNegative(batchSize);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        long stepsTotal = (long)batchSize * length;
        Require.Length(inputs, stepsTotal * d, nameof(inputs), $"[{batchSize}, {length}, {d}]");
        if (!initialState.IsEmpty)
        {
            Require.Length(initialState, (long)batchSize * s, nameof(initialState), $"[{batchSize}, {s}]");
        }

        if (!warmStart.IsEmpty)
        {
            Require.Length(warmStart, stepsTotal * s, nameof(warmStart), $"[{batchSize}, {length}, {s}]");
        }

        if (stepsTotal * s > Array.MaxLength)
        {
            throw new ArgumentException(
                $"The states would hold {stepsTotal * s} values, more than one .NET array can hold ({Array.MaxLength}); split the batch.", nameof(inputs));
        }

        bool parallel = SolverSettings<T>.Cores(options) >= 2;
        Require.Finite(initialState, nameof(initialState), parallel, batchSize, s);
        Require.Finite(warmStart, nameof(warmStart), parallel, batchSize, length, s);
        if (options.Method == SolveMethod.Scan && cell is not ILinearSurrogateCell<T>)
        {
            throw new ArgumentException(
                $"SolveMethod.Scan needs a linear-surrogate cell (GilrCell, GilrLstmCell, SruCell: ILinearSurrogateCell); {typeof(TCell).Name} is not one.", nameof(options));
        }
    }

    /// <summary>Every input finite, or the error that names the first that is not, as [b, t, i].</summary>
    public static void FiniteInputs<T>(ReadOnlySpan<T> inputs, int batchSize, int length, int inputSize, bool parallel)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        Require.Finite(inputs, nameof(inputs), parallel, batchSize, length, inputSize);

    private static void RequireSupportedType<T>()
    {
        if (typeof(T) != typeof(float) && typeof(T) != typeof(double))
        {
            throw new NotSupportedException($"Deer solves in float or double; {typeof(T).Name} is not supported.");
        }
    }
}
