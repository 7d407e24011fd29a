using System.Diagnostics.CodeAnalysis;
using System.Numerics;
using DeerSharp.Cells;

namespace DeerSharp.Cuda;

/// <summary>Routes a solve to the GPU when <see cref="SolveOptions.Device"/> asks for it (or Auto finds it worthwhile).</summary>
internal static class GpuDispatch
{
    /// <summary>Below this many state values (B·T·S), Auto keeps the CPU: launch and transfer overheads dominate.</summary>
    public const long AutoThreshold = 1L << 20;

    private static readonly Lazy<CudaRuntime> Shared = new(() => CudaRuntime.Open(), LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly AsyncLocal<IGpuRuntime?> Override = new();

    /// <summary>For tests: routes this async flow's GPU solves to another runtime (the CPU emulator).</summary>
    internal static IDisposable Use(IGpuRuntime runtime)
    {
        IGpuRuntime? previous = Override.Value;
        Override.Value = runtime;
        return new Restore(previous);
    }

    private static bool Present => Override.Value is not null || CudaDevices.Probe().Available;

    private static IGpuRuntime Runtime => Override.Value ?? Shared.Value;

    /// <summary>The methods the GPU runs, after Auto is resolved; null when it has none for <paramref name="method"/>.</summary>
    internal static SolveMethod? GpuMethod(SolveMethod method, GpuCellKind kind, int stateSize) => (method, kind) switch
    {
        (_, GpuCellKind.Gilr) when method is not SolveMethod.QuasiElk => SolveMethod.Scan, // linear: one scan is exact
        (SolveMethod.Auto, _) => stateSize <= GpuSolver.MaxDenseState ? SolveMethod.Deer : SolveMethod.QuasiDeer,
        (SolveMethod.Sequential or SolveMethod.Deer or SolveMethod.QuasiDeer or SolveMethod.Picard, not GpuCellKind.Gilr) => method,
        _ => null,
    };

    public static bool TrySolve<TCell, T>(TCell cell, ReadOnlySpan<T> inputs, int batch, int length, ReadOnlySpan<T> h0, ReadOnlySpan<T> warmStart,
        SolveOptions options, [NotNullWhen(true)] out SolveResult<T>? result)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        result = null;
        bool required = options.Device == ComputeDevice.Cuda;
        GpuCell<T>? gpuCell = GpuCell<T>.From(cell);
        if (gpuCell is null)
        {
            return required
                ? throw new NotSupportedException(
                    $"The CUDA backend has kernels for TanhRnnCell, GruCell, LstmCell and GilrCell; {typeof(TCell).Name} has none. Use Device = Cpu or Auto.")
                : false;
        }

        SolveMethod? method = GpuMethod(options.Method, gpuCell.Kind, gpuCell.StateSize);
        if (method is null || (method == SolveMethod.Deer && gpuCell.StateSize > GpuSolver.MaxDenseState))
        {
            return required
                ? throw new NotSupportedException(
                    $"The CUDA backend does not run {options.Method} for a {gpuCell.Kind} with state size {gpuCell.StateSize} "
                    + $"(it runs Sequential, Deer up to state {GpuSolver.MaxDenseState}, QuasiDeer, Picard, and Scan for GILR). Use Device = Cpu or Auto.")
                : false;
        }

        if (!Present)
        {
            return required ? throw new CudaException($"Device = Cuda, but no CUDA device is available: {CudaDevices.Probe().Reason}.") : false;
        }

        if (!required && (long)batch * length * gpuCell.StateSize < AutoThreshold)
        {
            return false;
        }

        bool single = typeof(T) == typeof(float);
        double atol = options.AbsoluteTolerance ?? (single ? 1e-5 : 1e-10), rtol = options.RelativeTolerance ?? (single ? 1e-5 : 1e-10);
        int maxIterations = options.MaxIterations ?? Math.Min(method == SolveMethod.Deer ? 100 : 500, Math.Max(length, 0));
        IGpuRuntime gpu = Runtime;
        result = GpuSolver.Solve(gpu, gpuCell, inputs, batch, length, h0, method.Value, atol, rtol, maxIterations, warmStart);
        if (!result.Converged && (options.Fallback == FallbackPolicy.Sequential || options.Method == SolveMethod.Auto) && method != SolveMethod.Sequential)
        {
            // Labelled as on the CPU: Method names what failed, FallbackMethod (Sequential) what produced the states, and
            // the status and residual are the loop's own, checked.
            SolveResult<T> loop = GpuSolver.Solve(gpu, gpuCell, inputs, batch, length, h0, SolveMethod.Sequential, atol, rtol, 0, default);
            string message = loop.Converged
                ? $"{method} did not converge on the GPU, and the GPU's sequential loop evaluated all {batch} sequence(s) instead ({result.Message}) {loop.Message}"
                : $"{method} did not converge on the GPU ({result.Message}), nor did the fallback: {loop.Message}";
            result = new SolveResult<T>(loop.States, batch, length, loop.StateSize, loop.OutputSize, result.Method, result.Iterations,
                loop.Status, message, [.. result.ResidualHistory], loop.MaxResidual,
                result.Elapsed + loop.Elapsed, null, batch, result.Message) { Device = ComputeDevice.Cuda };
        }

        return true;
    }

    private sealed class Restore(IGpuRuntime? previous) : IDisposable
    {
        public void Dispose() => Override.Value = previous;
    }
}
