using DeerSharp.Engines;
using ILGPU.Runtime;

namespace DeerSharp.Gpu;

internal sealed partial class DeviceSolver<T>
{
    /// <summary>
    /// Solves <paramref name="batch"/> consecutive sequences of <paramref name="length"/> steps by <paramref name="settings"/>'
    /// method, writing their states into <paramref name="destination"/> at <paramref name="offset"/> ([B, L, S]) and one
    /// outcome per sequence. Each sequence stops on its own verdict (<see cref="NewtonIteration"/>): its states are
    /// copied out at that moment, so the residual each outcome reports is that of the states returned.
    /// </summary>
    /// <param name="cell">The cell.</param>
    /// <param name="inputs">x, [B, L, d].</param>
    /// <param name="batch">B.</param>
    /// <param name="length">L.</param>
    /// <param name="initialState">h0, [B, S], or empty for zeros.</param>
    /// <param name="warmStart">A starting trajectory [B, L, S], or empty for <see cref="SolverSettings{T}.InitialGuess"/>.</param>
    /// <param name="settings">Method, tolerances, limits, progress and cancellation.</param>
    /// <param name="firstSequence">The batch index of the first sequence, for progress reports.</param>
    /// <param name="window">The window's index, for progress reports.</param>
    /// <param name="destination">The host's states.</param>
    /// <param name="offset">Where these sequences' states start in it.</param>
    /// <param name="outcomes">One per sequence.</param>
    public void Solve(DeviceCell<T> cell, ReadOnlySpan<T> inputs, int batch, int length, ReadOnlySpan<T> initialState, ReadOnlySpan<T> warmStart,
        in SolverSettings<T> settings, int firstSequence, int window, T[] destination, long offset, Span<SequenceOutcome> outcomes)
    {
        ArgumentNullException.ThrowIfNull(cell);
        SolveMethod method = settings.Method;
        if (Unsupported(cell, method) is { } why)
        {
            throw new NotSupportedException($"{cell.Kind} {method}: {why}.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        int s = cell.StateSize;
        long rows = (long)batch * length;
        CellFootprint footprint = Footprint(cell);
        if (rows > SolverSettings<T>.DeviceMaxRows(footprint, method))
        {
            throw new ArgumentException($"{rows} rows of {s} states exceed one launch's index range; solve fewer or shorter sequences at a time.", nameof(inputs));
        }

        ICustomFunction<T>? custom = Custom(cell);
        using var ws = new DeviceWorkspace<T>(_accelerator, cell, batch, length, SolverSettings<T>.DeviceJacobianPerStep(footprint, method), custom is not null);
        ws.UploadInitialState(initialState);
        Project(cell, ws, inputs, custom is not null);
        IterationPolicy policy = settings.Iterations(firstSequence, window);
        double atol = double.CreateTruncating(settings.AbsoluteTolerance), rtol = double.CreateTruncating(settings.RelativeTolerance);
        if (method is SolveMethod.Sequential or SolveMethod.Scan)
        {
            if (method == SolveMethod.Sequential)
            {
                Loop(cell, custom, ws);
            }
            else
            {
                ScanExactly(cell, ws, atol, rtol);
            }

            // The loop's (or the scan's) states, checked like any method's: their residual, per sequence.
            var residuals = new IterateResidual[batch];
            Evaluate(cell, custom, ws, JacobianMode.None, atol, rtol, residuals);
            int iterations = method == SolveMethod.Scan ? 1 : 0;
            for (int q = 0; q < batch; q++)
            {
                IterateResidual r = residuals[q];
                double max = r.Finite ? r.Max : double.NaN;
                policy.Report?.Invoke(q, iterations, max);
                SolveStatus status = !r.Finite ? SolveStatus.Diverged : r.Within ? SolveStatus.Converged : SolveStatus.MaxIterationsReached;
                outcomes[q] = new SequenceOutcome(iterations, status, [max], max, status == SolveStatus.Diverged ? iterations : -1);
            }

            ws.Current.View.SubView(0, rows * s).AsContiguous().CopyToCPU(destination.AsSpan((int)offset, (int)(rows * s)));
            return;
        }

        InitialIterate(ws, s, warmStart, settings.InitialGuess);
        if (method == SolveMethod.QuasiElk)
        {
            Damping.Solve(this, cell, custom, ws, settings, policy, destination, offset, outcomes);
            return;
        }

        var system = new NewtonSystem(this, cell, custom, ws, settings.UpdateMode == JacobianMode.Block ? JacobianMode.Full : settings.UpdateMode, atol, rtol,
            destination, offset);
        NewtonIteration.Run(ref system, policy, outcomes);
    }

    /// <summary>
    /// A linear surrogate's exact trajectory: its coefficients depend on x alone, so one diagonal scan from any iterate
    /// is exact, level by level (GILR-LSTM's h~ first, then its c); the outputs that depend on the scanned parts alone
    /// (SRU's and GILR-LSTM's h) then come from one evaluation.
    /// </summary>
    private void ScanExactly(DeviceCell<T> cell, DeviceWorkspace<T> ws, double atol, double rtol)
    {
        ws.Current.MemSetToZero();
        int chunks = DiagonalScan<T>.Chunks(ws.Batch, ws.Length, cell.StateSize, threads: 1 << 16);
        for (int level = 0; level < cell.Levels; level++)
        {
            Evaluate(cell, null, ws, JacobianMode.Diagonal, atol, rtol, default);
            _diagonal.Solve(ws.Jacobians.View, ws.Terms.View, ws.InitialState.View, ws.Current.View, ws.Batch, ws.Length, cell.StateSize, chunks);
        }

        Evaluate(cell, null, ws, JacobianMode.None, atol, rtol, default);
        ws.Current.View.CopyFrom(ws.F.View);
    }

    /// <summary>
    /// The device's Newton (or Picard) system over a batch: every sequence advances together, and one that has its
    /// verdict is copied out to the host then, whatever the others go on to do.
    /// </summary>
    private sealed class NewtonSystem(DeviceSolver<T> solver, DeviceCell<T> cell, ICustomFunction<T>? custom, DeviceWorkspace<T> ws, JacobianMode mode,
        double atol, double rtol, T[] destination, long offset) : INewtonSystem
    {
        private readonly int _chunks = DiagonalScan<T>.Chunks(ws.Batch, ws.Length, cell.StateSize, threads: 1 << 16);

        public void Linearise(bool last, ReadOnlySpan<bool> active, Span<IterateResidual> residuals) =>
            solver.Evaluate(cell, custom, ws, last ? JacobianMode.None : mode, atol, rtol, residuals);

        public void Settle(int sequence) => Download(ws, sequence, cell.StateSize, destination, offset);

        public void Update(ReadOnlySpan<bool> active) => solver.Update(cell, ws, mode, _chunks);
    }
}
