using System.Numerics;
using DeerSharp.Cells;
using ILGPU;
using ILGPU.Runtime;

namespace DeerSharp.Gpu;

/// <summary>The three <see cref="BlockScanKernels"/> loaded once on an accelerator, solving on device buffers.</summary>
internal sealed class BlockScan<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Accelerator _accelerator;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int, int, int> _reduce;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int> _carry;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int, int, int> _apply;

    public BlockScan(Accelerator accelerator)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        _accelerator = accelerator;
        _reduce = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int, int, int>(BlockScanKernels.Reduce<T>);
        _carry = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int>(BlockScanKernels.Carry<T>);
        _apply = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int, int, int>(BlockScanKernels.Apply<T>);
    }

    /// <summary>
    /// Solves [<paramref name="batch"/>, <paramref name="length"/>, S] block-diagonal recurrences with A in
    /// <see cref="JacobianMode.Block"/> layout; h may alias b. Every size is checked here: an out-of-range index inside a
    /// kernel would end the process on the CPU accelerator.
    /// </summary>
    public void Solve(ArrayView<T> a, ArrayView<T> b, ArrayView<T> h0, ArrayView<T> h, int batch, int length, int s, JacobianStructure structure, int chunks)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunks, 1);
        structure.Validate(s, nameof(structure));
        int side = structure.Side, blocks = s / side;
        if (side > BlockScanKernels.MaxSide)
        {
            throw new ArgumentException($"The GPU block scan takes blocks of side at most {BlockScanKernels.MaxSide}; this structure's side is {side}.", nameof(structure));
        }

        long values = (long)batch * length * s;
        Require(a, values * side, nameof(a));
        Require(b, values, nameof(b));
        Require(h, values, nameof(h));
        Require(h0, (long)batch * s, nameof(h0));
        chunks = Math.Min(chunks, length);
        int chunk = (length + chunks - 1) / chunks;
        chunks = (length + chunk - 1) / chunk;
        long columns = (long)batch * chunks * blocks * (side + 1);
        if (columns * side > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(chunks), chunks, $"{batch}·{chunks}·{blocks} chunk maps of side {side} exceed one launch's index range.");
        }

        using MemoryBuffer1D<T, Stride1D.Dense> maps = _accelerator.Allocate1D<T>(columns * side), carry = _accelerator.Allocate1D<T>((long)batch * chunks * s);
        _reduce((int)columns, a, b, maps.View, length, s, structure.BlockSize, structure.Parts, chunk, chunks);
        _carry(batch * blocks, maps.View, h0, carry.View, s, structure.BlockSize, structure.Parts, chunks);
        _apply(batch * chunks * blocks, a, b, carry.View, h, length, s, structure.BlockSize, structure.Parts, chunk, chunks);
        _accelerator.Synchronize();
    }

    private static void Require(ArrayView<T> view, long needed, string name)
    {
        if (view.Length < needed)
        {
            throw new ArgumentException($"{name} must hold at least {needed} values; it holds {view.Length}.", name);
        }
    }
}

/// <summary>Which structured cell a <see cref="StructuredNewton{T}"/> solves.</summary>
internal enum StructuredKind
{
    IndRnn,
    DiagonalGru,
    DiagonalLstm,
}

/// <summary>
/// Exact DEER for a structured cell entirely on one ILGPU accelerator: the input projection once, then per iteration
/// the shift to h_{t−1}, one fused evaluation launch (f, the block Jacobian, the Newton term), the residual reduced on
/// the device, and the block scan (the diagonal scan when the blocks are 1×1). It stops only on the residual of the
/// iterate it returns. Like <see cref="GruQuasiNewton{T}"/>, a piece of the ILGPU backend not yet behind
/// <see cref="SolveOptions.Device"/> (issue #13).
/// </summary>
internal sealed class StructuredNewton<T> : IDisposable
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Accelerator _accelerator;
    private readonly DiagonalScan<T> _diagonal;
    private readonly BlockScan<T> _blocks;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int> _project;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int> _shift;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>[] _evaluate;
    private readonly DeviceResidual<T> _residual;

    /// <summary>States [B, L, S], the updates applied, the status, the residual of the returned states and its ratio to the tolerance.</summary>
    public readonly record struct Outcome(T[] States, int Iterations, SolveStatus Status, double MaxResidual, double Ratio);

    public StructuredNewton(Accelerator accelerator)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        if (typeof(T) != typeof(float) && typeof(T) != typeof(double))
        {
            throw new NotSupportedException($"The ILGPU kernels run in float or double; {typeof(T).Name} is not supported.");
        }

        _accelerator = accelerator;
        _diagonal = new DiagonalScan<T>(accelerator);
        _blocks = new BlockScan<T>(accelerator);
        _project = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(NewtonKernels.InputProjection<T>);
        _shift = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(NewtonKernels.Shift<T>);
        _evaluate =
        [
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(StructuredKernels.EvaluateIndRnn<T>),
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(StructuredKernels.EvaluateDiagonalGru<T>),
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(StructuredKernels.EvaluateDiagonalLstm<T>),
        ];
        _residual = new DeviceResidual<T>(accelerator);
    }

    public Outcome Solve(StructuredKind kind, StructuredWeights<T> weights, T[] inputs, int batch, int length, T[]? initialState, double atol, double rtol, int maxIterations)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(inputs);
        int gates = kind switch { StructuredKind.IndRnn => 1, StructuredKind.DiagonalGru => 3, _ => 4 };
        if (weights.Gates != gates)
        {
            throw new ArgumentException($"{kind} needs {gates} gate block(s); these weights have {weights.Gates}.", nameof(weights));
        }

        int n = weights.HiddenSize, d = weights.InputSize, k = weights.BlockSize, parts = kind == StructuredKind.DiagonalLstm ? 2 : 1, s = parts * n;
        var structure = new JacobianStructure(k, parts);
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(maxIterations);
        long rows = (long)batch * length;
        Require.Length(inputs, rows * d, nameof(inputs), $"[{batch}, {length}, {d}]");
        if (initialState is not null)
        {
            Require.Length(initialState, (long)batch * s, nameof(initialState), $"[{batch}, {s}]");
        }

        if (rows * s * structure.Side > int.MaxValue || rows * gates * n > int.MaxValue)
        {
            throw new ArgumentException($"{rows} rows of {s} states in blocks of {structure.Side} exceed one launch's index range; solve fewer or shorter sequences at a time.", nameof(inputs));
        }

        using MemoryBuffer1D<T, Stride1D.Dense> wih = _accelerator.Allocate1D(weights.WeightIH), whh = _accelerator.Allocate1D(weights.WeightHH),
            bih = _accelerator.Allocate1D(weights.BiasIH), bhh = _accelerator.Allocate1D(weights.BiasHH), x = _accelerator.Allocate1D(inputs),
            h0 = _accelerator.Allocate1D(initialState ?? new T[batch * s]), xp = _accelerator.Allocate1D<T>(rows * gates * n),
            current = _accelerator.Allocate1D<T>(rows * s), previous = _accelerator.Allocate1D<T>(rows * s), f = _accelerator.Allocate1D<T>(rows * s),
            jac = _accelerator.Allocate1D<T>(rows * s * structure.Side), term = _accelerator.Allocate1D<T>(rows * s);
        _project((int)(rows * gates * n), wih.View, bih.View, x.View, xp.View, d, gates * n);
        current.MemSetToZero();
        int chunks = DiagonalScan<T>.Chunks(batch, length, s, threads: 1 << 16);
        for (int iteration = 0; ; iteration++)
        {
            _shift((int)(rows * s), current.View, h0.View, previous.View, length, s);
            _evaluate[(int)kind]((int)(rows * n), xp.View, whh.View, bhh.View, previous.View, f.View, jac.View, term.View, n, k);
            (double ratio, double residual) = _residual.Measure(current.View, f.View, atol, rtol, (int)(rows * s));
            SolveStatus? status = ratio <= 1 ? SolveStatus.Converged
                : !double.IsFinite(ratio) ? SolveStatus.Diverged
                : iteration >= maxIterations ? SolveStatus.MaxIterationsReached
                : null;
            if (status is { } done)
            {
                return new Outcome(current.GetAsArray1D(), iteration, done, residual, ratio);
            }

            if (structure.Side == 1)
            {
                _diagonal.Solve(jac.View, term.View, h0.View, current.View, batch, length, s, chunks);
            }
            else
            {
                _blocks.Solve(jac.View, term.View, h0.View, current.View, batch, length, s, structure, chunks);
            }
        }
    }

    public void Dispose() => _residual.Dispose();
}
