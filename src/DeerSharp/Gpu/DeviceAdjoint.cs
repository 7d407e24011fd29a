using DeerSharp.Engines;
using ILGPU;
using ILGPU.Runtime;

namespace DeerSharp.Gpu;

/// <summary>
/// The scan adjoint on the device (reference §7) at a solved trajectory: the Jacobians there, the reversed transposed
/// recurrence by the block (or diagonal) scan, δ per step, and the parameter sums in two stages (chunks of rows in
/// parallel, then the chunks in order). Its kernels load on first use; the forward kernels are the solver's.
/// </summary>
internal sealed class DeviceAdjoint<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly DeviceSolver<T> _solver;
    private readonly Accelerator _accelerator;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, int, int, int> _reverseTranspose;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int> _blockProduct;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int, int, int> _accumulateBlocks;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int> _productBlocks;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int> _surrogateCoefficients;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int> _surrogateDelta;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int> _gilrLstmCoefficients;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int> _gilrLstmDelta;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int> _gilrLstmSurrogateDelta;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, int, int, int> _reverseCotangent;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, int, int> _unreverse;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int> _initialState;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int> _delta;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int, int> _accumulate;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, int, int> _sumChunks;
    private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int> _productT;

    public DeviceAdjoint(DeviceSolver<T> solver)
    {
        _solver = solver;
        Accelerator accelerator = _accelerator = solver.Accelerator;
        _reverseTranspose = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, int, int, int>(AdjointKernels.ReverseTranspose<T>);
        _blockProduct = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int>(AdjointKernels.BlockProduct<T>);
        _accumulateBlocks = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int, int, int>(AdjointKernels.AccumulateBlocks<T>);
        _productBlocks = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int>(AdjointKernels.ProductBlocks<T>);
        _surrogateCoefficients = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int>(AdjointKernels.SurrogateCoefficients<T>);
        _surrogateDelta = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(AdjointKernels.SurrogateDelta<T>);
        _gilrLstmCoefficients = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int>(AdjointKernels.GilrLstmCoefficients<T>);
        _gilrLstmDelta = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int>(AdjointKernels.GilrLstmDelta<T>);
        _gilrLstmSurrogateDelta = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int>(AdjointKernels.GilrLstmSurrogateDelta<T>);
        _reverseCotangent = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, int, int, int>(AdjointKernels.ReverseCotangent<T>);
        _unreverse = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, int, int>(AdjointKernels.Unreverse<T>);
        _initialState = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(AdjointKernels.InitialStateAdjoint<T>);
        _delta = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int>(AdjointKernels.Delta<T>);
        _accumulate = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int, int>(AdjointKernels.Accumulate<T>);
        _sumChunks = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, int, int>(AdjointKernels.SumChunks<T>);
        _productT = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int>(AdjointKernels.Product<T>);
    }

    /// <summary>
    /// Whether <see cref="Gradient"/> runs the adjoint of <paramref name="cell"/> on the device: the dense and custom cells
    /// whose full Jacobian the block scan takes (S ≤ 32), the structured cells (their blocks, any n), and the linear
    /// surrogates (reversed diagonal scans, any n).
    /// </summary>
    public static bool Has(DeviceCell<T> cell) =>
        cell.Linear
        || (cell.Structured ? cell.Structure.Side <= DeviceCell<T>.MaxDenseState
            : cell.Kind is DeviceCellKind.TanhRnn or DeviceCellKind.Gru or DeviceCellKind.Lstm or DeviceCellKind.Custom && cell.StateSize <= DeviceCell<T>.MaxDenseState);

    /// <summary>
    /// The scan adjoint on the device at a solved trajectory <paramref name="states"/> [B, L, S]: the Jacobians there, the
    /// reversed transposed recurrence by the block scan, δ per step, and the sums. Returns ∂L/∂θ in PyTorch's flat layout
    /// [W_ih, W_hh, b_ih, b_hh] (summed over the batch), ∂L/∂x [B, L, d] and ∂L/∂h0 [B, S].
    /// </summary>
    public (T[] Parameters, T[] Inputs, T[] InitialStates) Gradient(DeviceCell<T> cell, ReadOnlySpan<T> inputs, ReadOnlySpan<T> states,
        ReadOnlySpan<T> initialState, ReadOnlySpan<T> cotangent, int batch, int length, int outputSize)
    {
        if (!Has(cell))
        {
            throw new NotSupportedException($"{cell.Kind}: the device adjoint takes the dense and custom cells with states up to {DeviceCell<T>.MaxDenseState}, the structured cells and the linear surrogates.");
        }

        int n = cell.HiddenSize, d = cell.InputSize, s = cell.StateSize, gates = cell.Gates * n, side = cell.Linear ? 1 : cell.Structure.Side, k = cell.BlockSize;
        long rows = (long)batch * length;
        if (rows > SolverSettings<T>.DeviceMaxRows(DeviceSolver<T>.Footprint(cell), SolveMethod.Deer))
        {
            throw new ArgumentException($"{rows} rows exceed one launch's index range for the device adjoint.", nameof(inputs));
        }

        if (DeviceSolver<T>.Custom(cell) is { } custom)
        {
            return CustomGradient(cell, custom, inputs, states, initialState, cotangent, batch, length, outputSize);
        }

        using var ws = new DeviceWorkspace<T>(_accelerator, cell, batch, length, s * side, custom: false, products: true);
        using MemoryBuffer1D<T, Stride1D.Dense> zero = _accelerator.Allocate1D<T>((long)batch * s),
            cot = _accelerator.Allocate1D<T>(rows * outputSize), a = _accelerator.Allocate1D<T>(rows * s * side), b = _accelerator.Allocate1D<T>(rows * s),
            v = _accelerator.Allocate1D<T>(rows * s), dih = _accelerator.Allocate1D<T>(rows * gates), dhh = _accelerator.Allocate1D<T>(rows * gates),
            direct = _accelerator.Allocate1D<T>(rows * s), dx = _accelerator.Allocate1D<T>(rows * d), gWih = _accelerator.Allocate1D<T>((long)gates * d),
            gWhh = _accelerator.Allocate1D<T>((long)gates * (cell.Structured ? k : n)), gBih = _accelerator.Allocate1D<T>(gates), gBhh = _accelerator.Allocate1D<T>(gates);
        ws.UploadInitialState(initialState);
        ws.Current.View.AsContiguous().CopyFromCPU(states[..(int)(rows * s)]);
        cot.View.AsContiguous().CopyFromCPU(cotangent[..(int)(rows * outputSize)]);
        zero.MemSetToZero();
        _solver.Project(cell, ws, inputs, custom: false);
        MemoryBuffer1D<T, Stride1D.Dense> x = ws.Inputs, xp = ws.Projections, h0 = ws.InitialState, current = ws.Current, previous = ws.Previous,
            hh = ws.Products, f = ws.F, jac = ws.Jacobians, term = ws.Terms, wih = ws.WeightIH, whh = ws.WeightHH, bhh = ws.BiasHH;


        int chunkCount = DiagonalScan<T>.Chunks(batch, length, n, threads: 1 << 16);
        if (cell.Kind == DeviceCellKind.GilrLstm)
        {
            // 1-3. GILR-LSTM: the gates at the solution (hh = W_hh h~_{t−1}), the reversed scan for c, the gates' δ, q = W_hhᵀ δ,
            // the reversed scan for h~, then the surrogate's δ.
            long m = rows * n;
            _solver.ShiftKernel((int)(rows * s), current.View, h0.View, previous.View, length, s);
            _solver.ProductKernel((int)(rows * 4 * n), whh.View, previous.View.SubView(n, (rows * s) - n), hh.View, n, s, 4 * n);
            ArrayView<T> dc = v.View.SubView(0, m), vs = v.View.SubView(m, m), q = f.View.SubView(0, m);
            _gilrLstmCoefficients((int)m, xp.View, hh.View, cot.View, q, a.View, b.View, length, n, 0);
            _solver.Diagonal.Solve(a.View, b.View, zero.View, term.View, batch, length, n, chunkCount);
            _unreverse((int)m, term.View, dc, length, n);
            _gilrLstmDelta((int)m, xp.View, hh.View, current.View, previous.View, dc, cot.View, dih.View, dhh.View, direct.View, n);
            _productT((int)m, dhh.View, whh.View, q, 4 * n, n, n, 0);
            _gilrLstmCoefficients((int)m, xp.View, hh.View, cot.View, q, a.View, b.View, length, n, 1);
            _solver.Diagonal.Solve(a.View, b.View, zero.View, term.View, batch, length, n, chunkCount);
            _unreverse((int)m, term.View, vs, length, n);
            _gilrLstmSurrogateDelta((int)m, xp.View, previous.View, vs, q, dih.View, direct.View, n);
        }
        else if (cell.Linear)
        {
            // 1-3. A linear surrogate: one reversed diagonal scan over its n linear channels gives their adjoint, then δ
            // over its projection rows (it has no W_hh).
            int surrogate = cell.Kind == DeviceCellKind.Gilr ? 0 : 1;
            _solver.ShiftKernel((int)(rows * s), current.View, h0.View, previous.View, length, s);
            _surrogateCoefficients((int)(rows * n), xp.View, current.View, cot.View, a.View, b.View, length, n, surrogate);
            _solver.Diagonal.Solve(a.View, b.View, zero.View, term.View, batch, length, n, chunkCount);
            _unreverse((int)(rows * n), term.View, v.View, length, n);
            _surrogateDelta((int)(rows * n), xp.View, current.View, previous.View, v.View, cot.View, dih.View, direct.View, n, surrogate);
        }
        else
        {
            // 1. The Jacobians (the full S×S, or a structured cell's blocks) at the solution, and hh = W_hh h_{t−1}, which δ needs.
            _solver.Evaluate(cell, null, ws, JacobianMode.Full, 1, 1, default);
            if (cell.Structured)
            {
                _blockProduct((int)(rows * gates), whh.View, previous.View, hh.View, gates, n, k, s);
            }

            // 2. The adjoint v by the reversed, transposed block scan.
            ReversedAdjoint(jac, cot, a, b, zero, v, batch, length, s, cell.Structure, outputSize);

            // 3. δ per step (the structured cells' gates are the dense ones' with hh from the blocks).
            int kind = cell.Kind switch
            {
                DeviceCellKind.TanhRnn or DeviceCellKind.IndRnn => 0,
                DeviceCellKind.Gru or DeviceCellKind.DiagonalGru => 1,
                _ => 2,
            };
            _delta((int)(rows * n), xp.View, hh.View, bhh.View, previous.View, v.View, dih.View, dhh.View, direct.View, n, kind);
        }

        // 4. The parameter sums, ∂L/∂x, and ∂L/∂h_{t−1} = direct + W_hhᵀ δ_hh (kept at t = 0 for ∂L/∂h0).
        // The parameter sums in two stages: chunks of rows in parallel, then the chunks in order.
        int chunkRows = (int)Math.Max(64, rows / 1024), chunks = (int)((rows + chunkRows - 1) / chunkRows);
        using MemoryBuffer1D<T, Stride1D.Dense> partial = _accelerator.Allocate1D<T>((long)chunks * gates * Math.Max(d, n));
        void Sum(ArrayView<T> delta, ArrayView<T> m, ArrayView<T> output, int columns, int stride)
        {
            int outputs = columns == 0 ? gates : gates * columns;
            _accumulate(chunks * outputs, delta, m, partial.View, gates, columns, stride, (int)rows, chunkRows);
            _sumChunks(outputs, partial.View, output, outputs, chunks);
        }

        Sum(dih.View, x.View, gWih.View, d, d);
        Sum(dih.View, dih.View, gBih.View, 0, 0);
        _productT((int)(rows * d), dih.View, wih.View, dx.View, gates, d, d, 0);
        if (cell.Structured)
        {
            _accumulateBlocks(chunks * gates * k, dhh.View, previous.View, partial.View, gates, n, k, s, (int)rows, chunkRows);
            _sumChunks(gates * k, partial.View, gWhh.View, gates * k, chunks);
            Sum(dhh.View, dhh.View, gBhh.View, 0, 0);
            _productBlocks((int)(rows * n), dhh.View, whh.View, direct.View, gates, n, k, s);
        }
        else if (cell.Kind == DeviceCellKind.GilrLstm)
        {
            // W_hh [4n, n] reads h~ (offset n of each state); δ_gates is dhh [rows, 4n].
            _accumulate(chunks * 4 * n * n, dhh.View, previous.View.SubView(n, (rows * s) - n), partial.View, 4 * n, n, s, (int)rows, chunkRows);
            _sumChunks(4 * n * n, partial.View, gWhh.View, 4 * n * n, chunks);
        }
        else if (!cell.Linear)
        {
            Sum(dhh.View, previous.View, gWhh.View, n, s);
            Sum(dhh.View, dhh.View, gBhh.View, 0, 0);
            _productT((int)(rows * n), dhh.View, whh.View, direct.View, gates, n, s, 1);
        }
        _accelerator.Synchronize();

        T[] gw = gWih.GetAsArray1D(), gb = gBih.GetAsArray1D();
        T[] parameters = cell.Kind switch
        {
            // GILR's layout: [W_gate, b_gate, W_impulse, b_impulse]; the device's rows are [gate; impulse].
            DeviceCellKind.Gilr => [.. gw.AsSpan(0, n * d), .. gb.AsSpan(0, n), .. gw.AsSpan(n * d, n * d), .. gb.AsSpan(n, n)],
            // SRU's: [W (3n × n, rows x̃, f, r), b_f, b_r]; the device's fourth block of rows is the highway's identity.
            DeviceCellKind.Sru => [.. gw.AsSpan(0, 3 * n * n), .. gb.AsSpan(n, 2 * n)],
            // GILR-LSTM's: [its GILR's, W_ih (4n × d), W_hh (4n × n), b (4n)]; the device's rows are [gate; impulse; W_ih].
            DeviceCellKind.GilrLstm => [.. gw.AsSpan(0, n * d), .. gb.AsSpan(0, n), .. gw.AsSpan(n * d, n * d), .. gb.AsSpan(n, n),
                .. gw.AsSpan(2 * n * d, 4 * n * d), .. gWhh.GetAsArray1D().AsSpan(0, 4 * n * n), .. gb.AsSpan(2 * n, 4 * n)],
            _ => [.. gw, .. gWhh.GetAsArray1D(), .. gb, .. gBhh.GetAsArray1D()],
        };
        T[] all = direct.GetAsArray1D();
        var initial = new T[batch * s];
        for (int q = 0; q < batch; q++)
        {
            all.AsSpan(q * length * s, s).CopyTo(initial.AsSpan(q * s, s));
        }

        return (parameters, dx.GetAsArray1D(), initial);
    }

    /// <summary>
    /// The scan adjoint of a user's device recurrence: v from the full Jacobians at the solution by the reversed block scan
    /// (as for the dense cells), then ∂L/∂x, ∂L/∂θ (chunks of rows, then the chunks in order) and ∂L/∂h0 = J_0ᵀ v_0, the
    /// products with ∂f/∂x and ∂f/∂θ from the user's Apply on dual numbers seeded along each input and parameter.
    /// </summary>
    private (T[] Parameters, T[] Inputs, T[] InitialStates) CustomGradient(DeviceCell<T> cell, ICustomFunction<T> custom, ReadOnlySpan<T> inputs,
        ReadOnlySpan<T> states, ReadOnlySpan<T> initialState, ReadOnlySpan<T> cotangent, int batch, int length, int outputSize)
    {
        int d = cell.InputSize, s = cell.StateSize, parameters = cell.ParameterCount;
        long rows = (long)batch * length;
        object kernels = _solver.Kernels(custom);
        using var ws = new DeviceWorkspace<T>(_accelerator, cell, batch, length, s * s, custom: true);
        using MemoryBuffer1D<T, Stride1D.Dense> zero = _accelerator.Allocate1D<T>((long)batch * s), cot = _accelerator.Allocate1D<T>(rows * outputSize),
            a = _accelerator.Allocate1D<T>(rows * s * s), b = _accelerator.Allocate1D<T>(rows * s), v = _accelerator.Allocate1D<T>(rows * s),
            dx = _accelerator.Allocate1D<T>(Math.Max(1, rows * d)), dh0 = _accelerator.Allocate1D<T>((long)batch * s), gTheta = _accelerator.Allocate1D<T>(Math.Max(1, parameters));
        ws.UploadInitialState(initialState);
        _solver.Project(cell, ws, inputs, custom: true);
        ws.Current.View.AsContiguous().CopyFromCPU(states[..(int)(rows * s)]);
        cot.View.AsContiguous().CopyFromCPU(cotangent[..(int)(rows * outputSize)]);
        zero.MemSetToZero();
        MemoryBuffer1D<T, Stride1D.Dense> x = ws.Projections, theta = ws.WeightHH, previous = ws.Previous, jac = ws.Jacobians;
        _solver.Evaluate(cell, custom, ws, JacobianMode.Full, 1, 1, default);
        ReversedAdjoint(jac, cot, a, b, zero, v, batch, length, s, new JacobianStructure(s), outputSize);

        if (d > 0)
        {
            custom.InputAdjoint(kernels, (int)(rows * d), x.View, previous.View, theta.View, v.View, dx.View, s, d);
        }

        _initialState(batch * s, jac.View, v.View, dh0.View, length, s);
        T[] gradient = [];
        if (parameters > 0)
        {
            int chunkRows = (int)Math.Max(64, rows / 256), chunks = (int)((rows + chunkRows - 1) / chunkRows);
            using MemoryBuffer1D<T, Stride1D.Dense> partial = _accelerator.Allocate1D<T>((long)chunks * parameters);
            custom.ParameterAdjoint(kernels, chunks * parameters, x.View, previous.View, theta.View, v.View, partial.View, s, d, parameters, (int)rows, chunkRows);
            _sumChunks(parameters, partial.View, gTheta.View, parameters, chunks);
            _accelerator.Synchronize();
            gradient = gTheta.GetAsArray1D();
        }

        _accelerator.Synchronize();
        return (gradient, d > 0 ? dx.View.SubView(0, rows * d).GetAsArray1D() : [], dh0.GetAsArray1D());
    }

    /// <summary>
    /// The adjoint v [B, L, S] from the Jacobians at the solution (full, or <paramref name="structure"/>'s blocks) and the
    /// output cotangent: reverse time and transpose, then the block scan from zero, w_u = J_{L−u}ᵀ w_{u−1} + g_{L−1−u},
    /// and v_t = w_{L−1−t}. <paramref name="a"/> and <paramref name="b"/> are scratch of the Jacobians' and the states' size.
    /// </summary>
    private void ReversedAdjoint(MemoryBuffer1D<T, Stride1D.Dense> jac, MemoryBuffer1D<T, Stride1D.Dense> cot, MemoryBuffer1D<T, Stride1D.Dense> a,
        MemoryBuffer1D<T, Stride1D.Dense> b, MemoryBuffer1D<T, Stride1D.Dense> zero, MemoryBuffer1D<T, Stride1D.Dense> v, int batch, int length, int s,
        JacobianStructure structure, int outputSize)
    {
        long rows = (long)batch * length;
        _reverseTranspose((int)(rows * s * structure.Side), jac.View, a.View, length, s, structure.Side);
        _reverseCotangent((int)(rows * s), cot.View, b.View, length, s, outputSize);
        _solver.Blocks.Solve(a.View, b.View, zero.View, b.View, batch, length, s, structure, DiagonalScan<T>.Chunks(batch, length, s, threads: 1 << 16));
        _unreverse((int)(rows * s), b.View, v.View, length, s);
    }
}
