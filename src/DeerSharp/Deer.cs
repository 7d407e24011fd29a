using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using DeerSharp.Driver;

namespace DeerSharp;

/// <summary>
/// Evaluates a recurrence h_t = f(h_{t-1}, x_t) over a whole sequence, sequentially or in parallel over t by
/// Newton's method (DEER, Lim et al., ICLR 2024), quasi-Newton or Picard iteration.
/// </summary>
/// <example>
/// <code>
/// var gru = GruCell&lt;float&gt;.Random(inputSize: 4, hiddenSize: 16, new Random(1));
/// float[,] x = ...;                          // [T, 4]
/// var result = Deer.Solve(gru, x);          // DEER by default
/// Console.WriteLine(result);                 // method, status, iterations, residual
/// </code>
/// </example>
public static partial class Deer
{
    /// <summary>Solves one sequence. <paramref name="inputs"/> is [T, d]; states come back as [1, T, S].</summary>
    /// <param name="cell">The cell f, e.g. <see cref="GruCell{T}"/> or an <see cref="AutoDiffCell{TFunction, T}"/>.</param>
    /// <param name="inputs">x, shape [T, d].</param>
    /// <param name="options">Method, tolerances and limits; null for <see cref="SolveOptions.Default"/>.</param>
    /// <param name="initialState">h0, [S]; null for zeros.</param>
    /// <param name="warmStart">A starting trajectory [T, S] for the iterative methods (e.g. last epoch's states); null to use <see cref="SolveOptions.InitialGuess"/>.</param>
    /// <param name="states">
    /// Where to write the states: exactly B·T·S values, every one overwritten, and then the result's
    /// <see cref="SolveResult{T}.States"/>; null for a new array. Reusing one array from call to call saves allocating
    /// and first touching fresh memory: a 65,536-step LSTM (16 MB of states) took 10.0-10.4 ms into one reused array
    /// against 12.9-13.2 ms into a new one each call (docs/benchmarks.md). It must not overlap the inputs, the initial
    /// state or the warm start. When the solve throws (cancelled, or an input that is not finite, which the sequential
    /// loop finds as it reads each chunk), what it holds is unspecified.
    /// </param>
    public static SolveResult<T> Solve<TCell, T>(TCell cell, T[,] inputs, SolveOptions? options = null, T[]? initialState = null, T[]? warmStart = null,
        T[]? states = null)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(inputs);
        CheckInputWidth<TCell, T>(cell, inputs);
        return SolveDriver.Solve(cell, Flat<T>(inputs), 1, inputs.GetLength(0), initialState, warmStart, options, states: states);
    }

    /// <summary>Solves a batch of sequences. <paramref name="inputs"/> is [B, T, d]; states come back as [B, T, S].</summary>
    /// <param name="cell">The cell f.</param>
    /// <param name="inputs">x, shape [B, T, d] (batch first).</param>
    /// <param name="options">Method, tolerances and limits; null for <see cref="SolveOptions.Default"/>.</param>
    /// <param name="initialState">h0, [B, S]; null for zeros.</param>
    /// <param name="warmStart">A starting trajectory [B, T, S]; null to use <see cref="SolveOptions.InitialGuess"/>.</param>
    /// <param name="states">
    /// Where to write the states: exactly B·T·S values, every one overwritten, and then the result's
    /// <see cref="SolveResult{T}.States"/>; null for a new array. Reusing one array from call to call saves allocating
    /// and first touching fresh memory: a 65,536-step LSTM (16 MB of states) took 10.0-10.4 ms into one reused array
    /// against 12.9-13.2 ms into a new one each call (docs/benchmarks.md). It must not overlap the inputs, the initial
    /// state or the warm start. When the solve throws (cancelled, or an input that is not finite, which the sequential
    /// loop finds as it reads each chunk), what it holds is unspecified.
    /// </param>
    public static SolveResult<T> Solve<TCell, T>(TCell cell, T[,,] inputs, SolveOptions? options = null, T[]? initialState = null, T[]? warmStart = null,
        T[]? states = null)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(inputs);
        CheckInputWidth<TCell, T>(cell, inputs);
        return SolveDriver.Solve(cell, Flat<T>(inputs), inputs.GetLength(0), inputs.GetLength(1), initialState, warmStart, options, states: states);
    }

    /// <summary>The span-first core: <paramref name="inputs"/> holds [batchSize, length, d] values, row-major.</summary>
    /// <param name="cell">The cell f.</param>
    /// <param name="inputs">x, batchSize·length·d values.</param>
    /// <param name="batchSize">B.</param>
    /// <param name="length">T.</param>
    /// <param name="options">Method, tolerances and limits; null for <see cref="SolveOptions.Default"/>.</param>
    /// <param name="initialState">h0, batchSize·S values, or empty for zeros.</param>
    /// <param name="warmStart">A starting trajectory of batchSize·length·S values, or empty.</param>
    /// <param name="states">
    /// Where to write the states: exactly B·T·S values, every one overwritten, and then the result's
    /// <see cref="SolveResult{T}.States"/>; null for a new array. Reusing one array from call to call saves allocating
    /// and first touching fresh memory: a 65,536-step LSTM (16 MB of states) took 10.0-10.4 ms into one reused array
    /// against 12.9-13.2 ms into a new one each call (docs/benchmarks.md). It must not overlap the inputs, the initial
    /// state or the warm start. When the solve throws (cancelled, or an input that is not finite, which the sequential
    /// loop finds as it reads each chunk), what it holds is unspecified.
    /// </param>
    public static SolveResult<T> Solve<TCell, T>(TCell cell, ReadOnlySpan<T> inputs, int batchSize, int length, SolveOptions? options = null,
        ReadOnlySpan<T> initialState = default, ReadOnlySpan<T> warmStart = default, T[]? states = null)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T> =>
        SolveDriver.Solve(cell, inputs, batchSize, length, initialState, warmStart, options, states: states);

    /// <summary>
    /// Solves a stack of layers, each layer's outputs being the next layer's inputs, one layer after another
    /// (each layer is its own recurrence over t). <paramref name="inputs"/> is [T, d].
    /// </summary>
    /// <param name="stack">The layers, bottom first.</param>
    /// <param name="inputs">x, shape [T, d].</param>
    /// <param name="options">Method, tolerances and limits for every layer.</param>
    /// <param name="initialStates">Each layer's h0, [layers, S] flat; null for zeros.</param>
    public static SolveResult<T> Solve<TCell, T>(StackedCells<TCell, T> stack, T[,] inputs, SolveOptions? options = null, T[]? initialStates = null)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(stack);
        ArgumentNullException.ThrowIfNull(inputs);
        return stack.Solve(Flat<T>(inputs), 1, inputs.GetLength(0), initialStates, options);
    }

    /// <summary>Solves a stack of layers over a batch: <paramref name="inputs"/> is [B, T, d].</summary>
    /// <param name="stack">The layers, bottom first.</param>
    /// <param name="inputs">x, shape [B, T, d].</param>
    /// <param name="options">Method, tolerances and limits for every layer.</param>
    /// <param name="initialStates">Each layer's h0, [layers, B, S] flat; null for zeros.</param>
    public static SolveResult<T> Solve<TCell, T>(StackedCells<TCell, T> stack, T[,,] inputs, SolveOptions? options = null, T[]? initialStates = null)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(stack);
        ArgumentNullException.ThrowIfNull(inputs);
        return stack.Solve(Flat<T>(inputs), inputs.GetLength(0), inputs.GetLength(1), initialStates, options);
    }

    /// <summary>Solves a stack of layers on the span-first layout: <paramref name="inputs"/> holds [batchSize, length, d] values.</summary>
    /// <param name="stack">The layers, bottom first.</param>
    /// <param name="inputs">x, batchSize·length·d values.</param>
    /// <param name="batchSize">B.</param>
    /// <param name="length">T.</param>
    /// <param name="options">Method, tolerances and limits for every layer.</param>
    /// <param name="initialStates">Each layer's h0, [layers, B, S] flat; empty for zeros.</param>
    public static SolveResult<T> Solve<TCell, T>(StackedCells<TCell, T> stack, ReadOnlySpan<T> inputs, int batchSize, int length,
        SolveOptions? options = null, ReadOnlySpan<T> initialStates = default)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(stack);
        return stack.Solve(inputs, batchSize, length, initialStates.IsEmpty ? null : initialStates.ToArray(), options);
    }

    /// <summary>
    /// Gradients of a loss through the solve of one sequence: given ∂L/∂output_t for every step ([T, OutputSize]), returns
    /// ∂L/∂θ, ∂L/∂x and ∂L/∂h0 (reference §7), exactly what PyTorch's autograd gives for output.backward(cotangent).
    /// </summary>
    /// <param name="cell">A differentiable cell (the built-in ones, or an <see cref="AutoDiffCell{TFunction, T}"/>).</param>
    /// <param name="inputs">x, [T, d].</param>
    /// <param name="outputCotangent">∂L/∂output, [T, OutputSize].</param>
    /// <param name="options">The forward solve's options (its fallback guarantees a solution to differentiate at).</param>
    /// <param name="gradient">How to solve the adjoint recurrence.</param>
    /// <param name="initialState">h0, [S]; null for zeros.</param>
    /// <param name="warmStart">A starting trajectory [T, S] for an iterative forward pass (e.g. the last epoch's states); null for <see cref="SolveOptions.InitialGuess"/>.</param>
    public static GradientResult<T> Gradient<TCell, T>(TCell cell, T[,] inputs, T[,] outputCotangent, SolveOptions? options = null,
        GradientOptions? gradient = null, T[]? initialState = null, T[]? warmStart = null)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T> =>
        GradientOfArrays(cell, inputs, outputCotangent, 1, options, gradient, initialState, warmStart);

    /// <summary>Gradients through the solve of a batch: <paramref name="inputs"/> [B, T, d], <paramref name="outputCotangent"/> [B, T, OutputSize].</summary>
    /// <param name="cell">A differentiable cell.</param>
    /// <param name="inputs">x, [B, T, d].</param>
    /// <param name="outputCotangent">∂L/∂output, [B, T, OutputSize].</param>
    /// <param name="options">The forward solve's options.</param>
    /// <param name="gradient">How to solve the adjoint recurrence.</param>
    /// <param name="initialState">h0, [B, S]; null for zeros.</param>
    /// <param name="warmStart">A starting trajectory [B, T, S] for an iterative forward pass; null for <see cref="SolveOptions.InitialGuess"/>.</param>
    public static GradientResult<T> Gradient<TCell, T>(TCell cell, T[,,] inputs, T[,,] outputCotangent, SolveOptions? options = null,
        GradientOptions? gradient = null, T[]? initialState = null, T[]? warmStart = null)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T> =>
        GradientOfArrays(cell, inputs, outputCotangent, inputs?.GetLength(0) ?? 0, options, gradient, initialState, warmStart);

    /// <summary>The array overloads of Gradient: [T, d] (one sequence) or [B, T, d], checked, then the span-first core.</summary>
    private static GradientResult<T> GradientOfArrays<TCell, T>(TCell cell, Array inputs, Array outputCotangent, int batchSize, SolveOptions? options,
        GradientOptions? gradient, T[]? initialState, T[]? warmStart)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(outputCotangent);
        CheckInputWidth<TCell, T>(cell, inputs);
        return Gradient(cell, Flat<T>(inputs), batchSize, inputs.GetLength(inputs.Rank - 2), Flat<T>(outputCotangent), options, gradient, initialState, warmStart);
    }

    /// <summary>Gradients through a solve, span-first: <paramref name="inputs"/> [B, T, d] and <paramref name="outputCotangent"/> [B, T, OutputSize] flat.</summary>
    /// <param name="cell">A differentiable cell.</param>
    /// <param name="inputs">x, B·T·d values.</param>
    /// <param name="batchSize">B.</param>
    /// <param name="length">T.</param>
    /// <param name="outputCotangent">∂L/∂output, B·T·OutputSize values.</param>
    /// <param name="options">The forward solve's options.</param>
    /// <param name="gradient">How to solve the adjoint recurrence.</param>
    /// <param name="initialState">h0, B·S values, or empty for zeros.</param>
    /// <param name="warmStart">A starting trajectory for an iterative forward pass (e.g. <see cref="Training.WarmStarts{T}"/>), or empty.</param>
    public static GradientResult<T> Gradient<TCell, T>(TCell cell, ReadOnlySpan<T> inputs, int batchSize, int length, ReadOnlySpan<T> outputCotangent,
        SolveOptions? options = null, GradientOptions? gradient = null, ReadOnlySpan<T> initialState = default, ReadOnlySpan<T> warmStart = default)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        SolveResult<T>? forward = warmStart.IsEmpty ? null
            : SolveDriver.Solve(cell, inputs, batchSize, length, initialState, warmStart, GradientDriver.ForwardOptions(options ?? SolveOptions.Default));
        var r = GradientDriver.Gradient(cell, inputs, batchSize, length, outputCotangent, initialState, options, gradient, solved: forward);
        return new GradientResult<T>(r.Forward, [r.Parameters], r.Inputs, r.InitialStates, r.Method, r.Windows, r.Device);
    }

    /// <summary>
    /// Gradients through a stack of layers: the top layer's ∂L/∂output in, every layer's parameter gradient, ∂L/∂x and
    /// each layer's ∂L/∂h0 out. Layers are differentiated top down, each layer's input gradient being the cotangent of the
    /// layer below's outputs.
    /// </summary>
    /// <param name="stack">The layers, bottom first.</param>
    /// <param name="inputs">x, B·T·d values.</param>
    /// <param name="batchSize">B.</param>
    /// <param name="length">T.</param>
    /// <param name="outputCotangent">∂L/∂(top layer's output), B·T·OutputSize values.</param>
    /// <param name="options">The forward solves' options.</param>
    /// <param name="gradient">How to solve the adjoint recurrences.</param>
    /// <param name="initialStates">Each layer's h0, [layers, B, S] flat; empty for zeros.</param>
    public static GradientResult<T> Gradient<TCell, T>(StackedCells<TCell, T> stack, ReadOnlySpan<T> inputs, int batchSize, int length,
        ReadOnlySpan<T> outputCotangent, SolveOptions? options = null, GradientOptions? gradient = null, ReadOnlySpan<T> initialStates = default)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(stack);
        return stack.Gradient(inputs, batchSize, length, outputCotangent, initialStates.IsEmpty ? null : initialStates.ToArray(), options, gradient);
    }

    private static void CheckInputWidth<TCell, T>(TCell cell, Array inputs)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        CellCheck.Require(cell, nameof(cell));
        int width = inputs.GetLength(inputs.Rank - 1);
        if (width != cell.InputSize)
        {
            string shape = string.Join(", ", Enumerable.Range(0, inputs.Rank).Select(inputs.GetLength));
            throw new ArgumentException(
                $"inputs must have {cell.InputSize} features per step (the cell's InputSize); its shape is [{shape}].", nameof(inputs));
        }
    }

    /// <summary>A multidimensional array's elements as one row-major span, without copying.</summary>
    internal static ReadOnlySpan<T> Flat<T>(Array array)
        where T : unmanaged =>
        MemoryMarshal.CreateReadOnlySpan(ref Unsafe.As<byte, T>(ref MemoryMarshal.GetArrayDataReference(array)), array.Length);
}
