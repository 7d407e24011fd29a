using DeerSharp.Cpu;
using DeerSharp.Engines;
using DeerSharp.Gpu;

namespace DeerSharp.Driver;

/// <summary>
/// Gradients through a solve (reference §7): validates, solves the forward pass through <see cref="SolveDriver"/> (or
/// takes a stack's), then runs the adjoint on the device that solved it when that device has adjoint kernels for the
/// cell, else on the CPU (<see cref="Adjoint"/>), one sequence per worker, summed in sequence order.
/// </summary>
internal static class GradientDriver
{
    internal readonly record struct Result<T>(SolveResult<T> Forward, T[] Parameters, T[] Inputs, T[] InitialStates, AdjointMethod Method, int Windows,
        ComputeDevice Device = ComputeDevice.Cpu)
        where T : unmanaged, IFloatingPointIeee754<T>;

    public static Result<T> Gradient<TCell, T>(TCell cell, ReadOnlySpan<T> inputs, int batchSize, int length, ReadOnlySpan<T> outputCotangent,
        ReadOnlySpan<T> initialState, SolveOptions? options, GradientOptions? gradientOptions, int layer = 0, SolveResult<T>? solved = null)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        options ??= SolveOptions.Default;
        gradientOptions ??= GradientOptions.Default;
        if (!Enum.IsDefined(gradientOptions.Adjoint))
        {
            throw new ArgumentException($"Adjoint must be one of {string.Join(", ", Enum.GetNames<AdjointMethod>())}; it is {(int)gradientOptions.Adjoint}.", nameof(gradientOptions));
        }

        CellCheck.Require(cell, nameof(cell));
        int s = cell.StateSize, d = cell.InputSize, o = cell.OutputSize;
        Require.Length(outputCotangent, (long)batchSize * length * o, nameof(outputCotangent), $"[{batchSize}, {length}, {o}]");
        Require.Finite(outputCotangent, nameof(outputCotangent), batchSize, length, o);
        // A stack passes each layer's solve in, having solved the layers on the way up.
        // The memory budget is shared: half for the forward solve (its pooled buffers stay with the pool), half for the adjoint.
        long total = SolverSettings<T>.MemoryBudget(options);
        SolveResult<T> forward = solved ?? SolveDriver.Solve(cell, inputs, batchSize, length, initialState, default, ForwardOptions(options), layer);
        if (!forward.Converged)
        {
            throw new InvalidOperationException(
                $"The forward solve did not converge, and gradients at a state that is not a solution would be wrong: {forward.Message}");
        }

        AdjointMethod method = gradientOptions.Adjoint switch
        {
            AdjointMethod.Auto => forward.Method == SolveMethod.Sequential ? AdjointMethod.Sequential : AdjointMethod.Scan,
            var m => m,
        };
        int cores = SolverSettings<T>.Cores(options);
        if (method == AdjointMethod.Scan && forward.Device is ComputeDevice.Gpu or ComputeDevice.Emulated
            && DeviceEngine<T>.TryGradient(cell, forward.Device, inputs, forward.States, initialState, outputCotangent, batchSize, length, total / 2,
                out (T[] Parameters, T[] Inputs, T[] InitialStates) onDevice))
        {
            // The forward pass ran on the device and so does its adjoint: the same equations, on the same states.
            return new Result<T>(forward, onDevice.Parameters, onDevice.Inputs, onDevice.InitialStates, method, 1,
                forward.Device == ComputeDevice.Emulated ? ComputeDevice.Emulated : ComputeDevice.Gpu);
        }

        var parameters = new T[cell.ParameterCount];
        var dInputs = new T[(long)batchSize * length * d];
        Prefault.HugePages(dInputs);                                    // as the forward's states: 8 MB faulted 4 KB at a time (0.4-5 ms per MB on the VMs measured, Prefault)
        var dInitial = new T[(long)batchSize * s];
        T[] h0 = initialState.IsEmpty ? new T[(long)batchSize * s] : initialState.ToArray();
        // Each sequence's gradient in its own array, summed in sequence order afterwards: the same bits on every run. The
        // memory budget is shared by the workers; the inputs are pinned and passed by address, not copied.
        int workers = batchSize >= cores ? cores : 1;
        int inner = batchSize >= cores ? 1 : cores;
        long budget = total / 2 / Math.Max(1, Math.Min(workers, batchSize));
        // The scan adjoint and BPTT by blocks both build on a declared structure: check it first.
        if (Adjoint.PathOf<TCell, T>(cell, method) is Adjoint.Path.Scan or Adjoint.Path.Blocks && length > 0 && batchSize > 0
            && JacobianStructures.Of<TCell, T>(cell) is { } declared)
        {
            Adjoint.CheckDeclaredStructure(cell, forward.States.AsSpan(0, length * s), h0.AsSpan(0, s), inputs[..(length * d)], length, declared);
        }

        var windowCounts = new int[batchSize];
        unsafe
        {
            fixed (T* px = inputs, pcot = outputCotangent)
            {
                var sequences = new Sequences<TCell, T>(cell, (nint)px, (nint)pcot, forward.States, h0, dInputs, dInitial, windowCounts, length, method, inner,
                    budget, options.CancellationToken);
                Parallel.For(0, batchSize, new ParallelOptions { MaxDegreeOfParallelism = workers }, sequences.Run);
                foreach (T[] local in sequences.PerSequence)
                {
                    for (int i = 0; i < local.Length; i++)
                    {
                        parameters[i] += local[i];
                    }
                }
            }
        }

        return new Result<T>(forward, parameters, dInputs, dInitial, method, windowCounts.Length == 0 ? 1 : windowCounts.Max());
    }

    /// <summary>
    /// The batch's sequences, one per call of <see cref="Run"/>: each sequence's adjoint into its own parameter sum (summed in
    /// sequence order afterwards, the same bits on every run). The inputs and cotangents come pinned, by address.
    /// </summary>
    private sealed unsafe class Sequences<TCell, T>(TCell cell, nint inputs, nint cotangent, T[] states, T[] h0, T[] dInputs, T[] dInitial, int[] windows,
        int length, AdjointMethod method, int cores, long budget, CancellationToken cancellation)
        where TCell : IDifferentiableCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T[][] PerSequence { get; } = new T[windows.Length][];

        public void Run(int b)
        {
            int s = cell.StateSize, d = cell.InputSize, o = cell.OutputSize;
            var local = new T[cell.ParameterCount];
            var x = new ReadOnlySpan<T>((T*)inputs + ((long)b * length * d), length * d);
            var cot = new ReadOnlySpan<T>((T*)cotangent + ((long)b * length * o), length * o);
            windows[b] = Adjoint.Sequence(cell, x, states.AsSpan(b * length * s, length * s), h0.AsSpan(b * s, s), cot, local,
                dInputs.AsSpan(b * length * d, length * d), dInitial.AsSpan(b * s, s), method, cores, budget, cancellation);
            PerSequence[b] = local;
        }
    }

    /// <summary>The forward solve's options inside a gradient: half of the memory budget (the adjoint has the other half).</summary>
    internal static SolveOptions ForwardOptions(SolveOptions options) =>
        options with { MemoryBudgetBytes = Math.Max(1, SolverSettings<double>.MemoryBudget(options) / 2) };
}
