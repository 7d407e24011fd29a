using System.Globalization;
using DeerSharp.Engines;
using ILGPU;
using ILGPU.Runtime;

namespace DeerSharp.Gpu;

/// <summary>
/// quasi-ELK on the device, as the CPU runs it (Cpu.Solver.SolveDamped): Levenberg-Marquardt on r = h − f with the
/// Jacobian's diagonal, the tridiagonal step per channel (cyclic reduction or Thomas, <see cref="CyclicBelow"/>), λ × 0.3
/// after a step that lowers Σ|r|² or max|r|, × 10 and retry after one that does not, stalled past λ = 10^16. The batch
/// accepts or rejects a step together; each sequence's verdict then comes from its own residual of the returned iterate.
/// </summary>
internal sealed class DeviceDamping<T> : IDisposable
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>λ beyond this means no step lowers the residual: the damped iteration has stalled.</summary>
    private const double MaximumDamping = 1e16;

    /// <summary>
    /// Below this many channels (B·S) the damped step runs parallel cyclic reduction, parallel over t as well; at or above
    /// it, the Thomas algorithm, whose B·S threads are then enough to fill a GPU and whose O(L) work is log2 L times less.
    /// A choice by counting threads, not yet by a GPU measurement.
    /// </summary>
    internal const long CyclicBelow = 1 << 16;

    private readonly Accelerator _accelerator;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, T, int, int> _thomas;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, T, int, int> _cyclicSetup;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int> _cyclicStep;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>> _cyclicSolve;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>> _add;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<double>>? _meritSingle;
    private readonly Action<Index1D, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>>? _meritDouble;
    private readonly MemoryBuffer1D<double, Stride1D.Dense> _merit;

    public DeviceDamping(Accelerator accelerator)
    {
        _accelerator = accelerator;
        _thomas = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, T, int, int>(DampedKernels.Thomas<T>);
        _cyclicSetup = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, T, int, int>(DampedKernels.CyclicSetup<T>);
        _cyclicStep = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int>(DampedKernels.CyclicStep<T>);
        _cyclicSolve = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>>(DampedKernels.CyclicSolve<T>);
        _add = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>>(DampedKernels.Add<T>);
        if (typeof(T) == typeof(float))
        {
            _meritSingle = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<double>>(DampedKernels.MeritSingle);
        }
        else
        {
            _meritDouble = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<double>, ArrayView<double>, ArrayView<double>, ArrayView<double>>(DampedKernels.MeritDouble);
        }

        _merit = accelerator.Allocate1D<double>(1);
    }

    /// <summary>Runs quasi-ELK on the iterate in <paramref name="ws"/>; writes the returned states and one outcome per sequence.</summary>
    public void Solve(DeviceSolver<T> solver, DeviceCell<T> cell, ICustomFunction<T>? custom, DeviceWorkspace<T> ws, in SolverSettings<T> settings,
        IterationPolicy policy, T[] destination, long offset, Span<SequenceOutcome> outcomes)
    {
        int s = cell.StateSize, batch = ws.Batch, length = ws.Length;
        long count = ws.Rows * s;
        double atol = double.CreateTruncating(settings.AbsoluteTolerance), rtol = double.CreateTruncating(settings.RelativeTolerance);
        using MemoryBuffer1D<T, Stride1D.Dense> first = _accelerator.Allocate1D<T>(count), second = _accelerator.Allocate1D<T>(count),
            diagonal = _accelerator.Allocate1D<T>(count), sweep = _accelerator.Allocate1D<T>(count), step = _accelerator.Allocate1D<T>(count),
            backup = _accelerator.Allocate1D<T>(count);
        using CyclicBuffers? cyclic = (long)batch * s < CyclicBelow ? new CyclicBuffers(_accelerator, count) : null;
        var residuals = new IterateResidual[batch];
        var candidates = new IterateResidual[batch];
        var histories = new List<double>[batch];
        for (int q = 0; q < batch; q++)
        {
            histories[q] = [];
        }

        var watch = new ConvergenceWatch();
        solver.Evaluate(cell, custom, ws, JacobianMode.Diagonal, atol, rtol, residuals);
        Record(residuals, histories, policy, 0);
        Verdict verdict = watch.Judge(Combined(residuals), 0, settings.MaxIterations, policy.AbsoluteTolerance, policy.Single);
        if (verdict != Verdict.Continue)
        {
            Finish(ws, s, residuals, histories, 0, null, destination, offset, outcomes);
            return;
        }

        MemoryBuffer1D<T, Stride1D.Dense> r = first, next = second;
        double merit = Merit(ws, r, count);
        double max = Combined(residuals).Max;
        diagonal.View.CopyFrom(ws.Jacobians.View);
        double lambda = double.CreateTruncating(settings.InitialDamping);
        int accepted = 0;
        while (true)
        {
            policy.Cancellation.ThrowIfCancellationRequested();
            Step(r.View, diagonal.View, sweep.View, step.View, cyclic, T.CreateTruncating(lambda), batch, length, s);
            backup.View.CopyFrom(ws.Current.View);
            _add((int)count, ws.Current.View, step.View);
            solver.Evaluate(cell, custom, ws, JacobianMode.Diagonal, atol, rtol, candidates);
            IterateResidual all = Combined(candidates);
            double candidateMerit = all.Finite ? Merit(ws, next, count) : double.PositiveInfinity;
            if (all.Finite && (candidateMerit < merit || all.Max < max))
            {
                accepted++;
                (r, next) = (next, r);
                diagonal.View.CopyFrom(ws.Jacobians.View);
                candidates.CopyTo(residuals.AsSpan());
                (merit, max) = (candidateMerit, all.Max);
                Record(residuals, histories, policy, accepted);
                verdict = watch.Judge(all, accepted, settings.MaxIterations, policy.AbsoluteTolerance, policy.Single);
                if (verdict != Verdict.Continue)
                {
                    Finish(ws, s, residuals, histories, accepted, null, destination, offset, outcomes);
                    return;
                }

                lambda = Math.Max(lambda * 0.3, 1e-12);
            }
            else
            {
                ws.Current.View.CopyFrom(backup.View);
                lambda *= 10;
                if (lambda > MaximumDamping)
                {
                    string stalled = string.Create(CultureInfo.InvariantCulture, $"no step lowered Σ|r|² below {merit:G3} (damping grew past {MaximumDamping:G1})");
                    Finish(ws, s, residuals, histories, accepted, stalled, destination, offset, outcomes);
                    return;
                }
            }
        }
    }

    /// <summary>The batch as one: the largest residual, within only when every sequence is, finite only when every one is.</summary>
    private static IterateResidual Combined(IterateResidual[] residuals)
    {
        double max = 0;
        bool within = true, finite = true;
        foreach (IterateResidual r in residuals)
        {
            max = Math.Max(max, r.Max);
            within &= r.Within;
            finite &= r.Finite;
        }

        return new IterateResidual(finite ? max : double.NaN, within && finite, finite);
    }

    private static void Record(IterateResidual[] residuals, List<double>[] histories, IterationPolicy policy, int iteration)
    {
        for (int q = 0; q < residuals.Length; q++)
        {
            double max = residuals[q].Finite ? residuals[q].Max : double.NaN;
            histories[q].Add(max);
            policy.Report?.Invoke(q, iteration, max);
        }
    }

    /// <summary>The accepted iterate is the answer: each sequence's status from its own residual of it.</summary>
    private static void Finish(DeviceWorkspace<T> ws, int s, IterateResidual[] residuals, List<double>[] histories, int iterations, string? stalled,
        T[] destination, long offset, Span<SequenceOutcome> outcomes)
    {
        ws.Current.View.SubView(0, ws.Rows * s).AsContiguous().CopyToCPU(destination.AsSpan((int)offset, (int)(ws.Rows * s)));
        for (int q = 0; q < residuals.Length; q++)
        {
            IterateResidual r = residuals[q];
            SolveStatus status = !r.Finite ? SolveStatus.Diverged : r.Within ? SolveStatus.Converged : SolveStatus.MaxIterationsReached;
            double max = r.Finite ? r.Max : double.NaN;
            outcomes[q] = new SequenceOutcome(iterations, status, [.. histories[q]], max, status == SolveStatus.Diverged ? iterations : -1,
                Message: status == SolveStatus.MaxIterationsReached ? stalled : null);
        }
    }

    /// <summary>Two sets of (lower, main, upper, rhs) for cyclic reduction's steps, read from one and written to the other.</summary>
    private sealed class CyclicBuffers(Accelerator accelerator, long count) : IDisposable
    {
        private readonly MemoryBuffer1D<T, Stride1D.Dense>[] _buffers = [.. Enumerable.Range(0, 8).Select(_ => accelerator.Allocate1D<T>(count))];

        public ArrayView<T> this[int set, int part] => _buffers[(4 * set) + part].View;

        public void Dispose()
        {
            foreach (MemoryBuffer1D<T, Stride1D.Dense> buffer in _buffers)
            {
                buffer.Dispose();
            }
        }
    }

    /// <summary>The damped step per channel into <paramref name="step"/>, by cyclic reduction when <paramref name="parallel"/>, else by Thomas: for tests.</summary>
    internal void Step(ArrayView<T> r, ArrayView<T> d, ArrayView<T> sweep, ArrayView<T> step, bool parallel, T lambda, int batch, int length, int s)
    {
        using CyclicBuffers? cyclic = parallel ? new CyclicBuffers(_accelerator, (long)batch * length * s) : null;
        Step(r, d, sweep, step, cyclic, lambda, batch, length, s);
        _accelerator.Synchronize();
    }

    /// <summary>The damped step per channel into <paramref name="step"/>: cyclic reduction when <paramref name="cyclic"/> is given, else Thomas.</summary>
    private void Step(ArrayView<T> r, ArrayView<T> d, ArrayView<T> sweep, ArrayView<T> step, CyclicBuffers? cyclic, T lambda, int batch, int length, int s)
    {
        if (cyclic is null)
        {
            _thomas(batch * s, r, d, sweep, step, lambda, length, s);
            return;
        }

        int count = batch * length * s, from = 0;
        _cyclicSetup(count, r, d, cyclic[0, 0], cyclic[0, 1], cyclic[0, 2], cyclic[0, 3], lambda, length, s);
        for (int delta = 1; delta < length; delta *= 2)
        {
            int to = 1 - from;
            _cyclicStep(count, cyclic[from, 0], cyclic[from, 1], cyclic[from, 2], cyclic[from, 3], cyclic[to, 0], cyclic[to, 1], cyclic[to, 2], cyclic[to, 3],
                delta, length, s);
            from = to;
        }

        _cyclicSolve(count, cyclic[from, 1], cyclic[from, 3], step);
    }

    /// <summary>r = h − f into <paramref name="residual"/>; Σ r², summed on the device in double.</summary>
    private double Merit(DeviceWorkspace<T> ws, MemoryBuffer1D<T, Stride1D.Dense> residual, long count)
    {
        _merit.MemSetToZero();
        if (_meritSingle is not null)
        {
            _meritSingle((int)count, ws.Current.View.AsContiguous().Cast<float>(), ws.F.View.AsContiguous().Cast<float>(), residual.View.AsContiguous().Cast<float>(), _merit.View);
        }
        else
        {
            _meritDouble!((int)count, ws.Current.View.AsContiguous().Cast<double>(), ws.F.View.AsContiguous().Cast<double>(), residual.View.AsContiguous().Cast<double>(), _merit.View);
        }

        return _merit.GetAsArray1D()[0];
    }

    public void Dispose() => _merit.Dispose();
}
