using System.Diagnostics;
using System.Numerics;
using DeerSharp.Cells;

namespace DeerSharp.Cuda;

/// <summary>The cells the GPU backend evaluates.</summary>
internal enum GpuCellKind
{
    TanhRnn,
    Gru,
    Lstm,
    Gilr,
}

/// <summary>A cell's weights as the kernels read them: PyTorch's layouts, biases always present (zeros when absent).</summary>
internal sealed class GpuCell<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    public GpuCell(GpuCellKind kind, int inputSize, int hiddenSize, T[] weightIH, T[] biasIH, T[]? weightHH, T[]? biasHH)
    {
        Kind = kind;
        InputSize = inputSize;
        HiddenSize = hiddenSize;
        WeightIH = weightIH;
        BiasIH = biasIH;
        WeightHH = weightHH;
        BiasHH = biasHH;
    }

    public GpuCellKind Kind { get; }

    public int InputSize { get; }

    public int HiddenSize { get; }

    /// <summary>[G·n, d]: W_ih, or [U; V] for GILR.</summary>
    public T[] WeightIH { get; }

    public T[] BiasIH { get; }

    /// <summary>[G·n, n]; null for GILR.</summary>
    public T[]? WeightHH { get; }

    public T[]? BiasHH { get; }

    public int Gates => Kind switch { GpuCellKind.TanhRnn => 1, GpuCellKind.Gru => 3, GpuCellKind.Lstm => 4, _ => 2 };

    public int StateSize => Kind == GpuCellKind.Lstm ? 2 * HiddenSize : HiddenSize;

    /// <summary>The GPU form of a library cell, or null when the GPU backend has no kernels for it.</summary>
    public static GpuCell<T>? From<TCell>(TCell cell)
        where TCell : IRecurrentCell<T>
    {
        switch (cell)
        {
            case TanhRnnCell<T> rnn:
                return FromRecurrent(GpuCellKind.TanhRnn, rnn.Weights);
            case GruCell<T> gru:
                return FromRecurrent(GpuCellKind.Gru, gru.Weights);
            case LstmCell<T> lstm:
                return FromRecurrent(GpuCellKind.Lstm, lstm.Weights);
            case GilrCell<T> gilr:
                GilrWeights<T> w = gilr.Weights;
                return new GpuCell<T>(GpuCellKind.Gilr, w.InputSize, w.HiddenSize, [.. w.GateWeight, .. w.ImpulseWeight], [.. w.GateBias, .. w.ImpulseBias], null, null);
            default:
                return null;
        }
    }

    private static GpuCell<T> FromRecurrent(GpuCellKind kind, RecurrentWeights<T> w) =>
        new(kind, w.InputSize, w.HiddenSize, w.WeightIH, w.BiasIH, w.WeightHH, w.BiasHH);
}

/// <summary>
/// DEER, quasi-DEER, Picard, the sequential loop and the GILR scan on a GPU, through <see cref="IGpuRuntime"/>. Device
/// buffers are allocated once per solve and reused by every iteration; each iteration brings back two numbers (the
/// largest residual ratio and the largest residual), reduced on the device.
/// </summary>
/// <remarks>
/// One iteration: shift the iterate (h_{t−1} for every t); one GEMM for W_hh h_{t−1}; one fused kernel for f, the
/// Jacobian (full or diagonal), the affine term f − J h_{t−1} and the residual of the iterate; then, unless the residual
/// already meets the tolerance, a three-phase scan (dense or diagonal) for the next iterate. As on the CPU, "converged"
/// means the residual of the returned iterate was checked.
/// </remarks>
internal static unsafe class GpuSolver
{
    private const int Block = 256;

    /// <summary>The largest state for which the dense scan runs: n² threads per block.</summary>
    public const int MaxDenseState = 32;

    public static SolveResult<T> Solve<T>(IGpuRuntime gpu, GpuCell<T> cell, ReadOnlySpan<T> inputs, int batch, int length, ReadOnlySpan<T> h0,
        SolveMethod method, double atol, double rtol, int maxIterations, ReadOnlySpan<T> warmStart)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var clock = Stopwatch.StartNew();
        bool isDouble = typeof(T) == typeof(double);
        int n = cell.HiddenSize, s = cell.StateSize, d = cell.InputSize, gn = cell.Gates * n;
        long rows = (long)batch * length;
        int size = sizeof(T);
        if (cell.Kind == GpuCellKind.Gilr)
        {
            // GILR is linear in h: its loop and its scan solve the same recurrence, and the scan is the GPU's way.
            method = SolveMethod.Scan;
        }

        if (method == SolveMethod.Deer && s > MaxDenseState)
        {
            throw new NotSupportedException(
                $"DEER on the GPU forms dense {s}×{s} Jacobians; its dense scan supports states up to {MaxDenseState}. Use quasi-DEER for this cell, or the CPU.");
        }

        bool dense = method == SolveMethod.Deer;
        long jacobianValues = method switch { SolveMethod.Deer => rows * s * s, SolveMethod.QuasiDeer => rows * s, _ => 0 };
        long bytes = size * (rows * (d + gn + 6L * s) + jacobianValues + (long)gn * (d + n + 2) + batch * s);
        if (bytes > gpu.FreeMemoryBytes)
        {
            throw new InsufficientMemoryException(
                $"The GPU solve needs about {bytes >> 20} MiB of device memory ({batch} × {length} steps, state {s}, {method}); {gpu.FreeMemoryBytes >> 20} MiB is available. Solve fewer sequences at a time or use quasi-DEER.");
        }

        using var buffers = new DeviceBuffers(gpu);
        ulong x = buffers.Upload(inputs), wih = buffers.Upload<T>(cell.WeightIH), bih = buffers.Upload<T>(cell.BiasIH);
        ulong xp = buffers.Allocate(rows * gn * size);
        gpu.GemmABt(isDouble, (int)rows, gn, d, x, d, wih, d, 0, xp, gn);
        Elementwise(gpu, "add_bias", isDouble, rows * gn, xp, bih, rows, gn);

        T[] initial = h0.IsEmpty ? new T[batch * s] : h0.ToArray();
        ulong start = buffers.Upload<T>(initial);
        ulong cur = buffers.Allocate(rows * s * size);
        var result = new T[rows * s];
        var history = new List<double>();
        if (cell.Kind == GpuCellKind.Gilr)
        {
            ulong a = buffers.Allocate(rows * n * size), b = buffers.Allocate(rows * n * size);
            Elementwise(gpu, "gilr_coefficients", isDouble, rows * n, xp, a, b, batch, length, n);
            DiagonalScan<T>(gpu, buffers, isDouble, a, b, start, cur, batch, length, n);
            // One scan is exact in exact arithmetic; the residual of what it returned is checked all the same.
            ulong shifted = buffers.Allocate(rows * n * size), scanStats = buffers.Allocate(2 * sizeof(ulong));
            Elementwise(gpu, "shift_states", isDouble, rows * s, cur, start, shifted, batch, length, s);
            gpu.Zero(scanStats, 2 * sizeof(ulong));
            Elementwise(gpu, "linear_residual", isDouble, rows * n, a, b, shifted, cur, scanStats, rows * n, T.CreateTruncating(atol), T.CreateTruncating(rtol));
            return Checked(gpu, cur, scanStats, result, batch, length, s, n, SolveMethod.Scan, 1, "GPU scan of the GILR recurrence", history, clock);
        }

        ulong whh = buffers.Upload<T>(cell.WeightHH!), bhh = buffers.Upload<T>(cell.BiasHH!);
        if (method == SolveMethod.Sequential)
        {
            int threads = Math.Min(1024, Math.Max(32, (n + 31) / 32 * 32));
            uint shared = (uint)((s + gn) * size);
            int gates = cell.Gates;
            Launch(gpu, "sequential_cell", isDouble, (uint)batch, 1, (uint)threads, shared, xp, whh, bhh, start, cur, batch, length, n, gates);
            // The loop's states are f of the one before by construction, up to the GPU's rounding; one evaluation checks them
            // (and that they are finite) as the CPU checks its loop's.
            ulong before = buffers.Allocate(rows * s * size), products = buffers.Allocate(rows * gn * size), values = buffers.Allocate(rows * s * size);
            ulong loopStats = buffers.Allocate(2 * sizeof(ulong));
            Elementwise(gpu, "shift_states", isDouble, rows * s, cur, start, before, batch, length, s);
            gpu.GemmABt(isDouble, (int)rows, gn, n, before, s, whh, n, 0, products, gn);
            gpu.Zero(loopStats, 2 * sizeof(ulong));
            string check = cell.Kind switch { GpuCellKind.TanhRnn => "rnn_eval", GpuCellKind.Gru => "gru_eval", _ => "lstm_eval" };
            Elementwise(gpu, check, isDouble, rows * n, xp, products, bhh, whh, before, cur, values, 0UL, 0UL, loopStats, batch, length, n, 0,
                T.CreateTruncating(atol), T.CreateTruncating(rtol));
            return Checked(gpu, cur, loopStats, result, batch, length, s, n, SolveMethod.Sequential, 0, "GPU sequential loop", history, clock);
        }

        // The iterate: a warm start, or h0 broadcast over t... zeros are the CPU's default; match it.
        if (!warmStart.IsEmpty)
        {
            buffers.UploadInto(cur, warmStart);
        }
        else
        {
            gpu.Zero(cur, rows * s * size);
        }

        ulong prev = buffers.Allocate(rows * s * size), hh = buffers.Allocate(rows * gn * size), f = buffers.Allocate(rows * s * size);
        ulong jac = jacobianValues > 0 ? buffers.Allocate(jacobianValues * size) : 0, bterm = buffers.Allocate(rows * s * size);
        ulong stats = buffers.Allocate(2 * sizeof(ulong));
        string eval = cell.Kind switch { GpuCellKind.TanhRnn => "rnn_eval", GpuCellKind.Gru => "gru_eval", _ => "lstm_eval" };
        int mode = method switch { SolveMethod.Deer => 2, SolveMethod.QuasiDeer => 1, _ => 0 };
        T atolT = T.CreateTruncating(atol), rtolT = T.CreateTruncating(rtol);
        var host = stackalloc ulong[2];
        for (int iteration = 0; ; iteration++)
        {
            Elementwise(gpu, "shift_states", isDouble, rows * s, cur, start, prev, batch, length, s);
            gpu.GemmABt(isDouble, (int)rows, gn, n, prev, s, whh, n, 0, hh, gn);
            gpu.Zero(stats, 2 * sizeof(ulong));
            Elementwise(gpu, eval, isDouble, rows * n, xp, hh, bhh, whh, prev, cur, f, jac, bterm, stats, batch, length, n, mode, atolT, rtolT);
            gpu.Download(host, stats, 2 * sizeof(ulong));
            double ratio = BitConverter.Int64BitsToDouble((long)host[0]), residual = BitConverter.Int64BitsToDouble((long)host[1]);
            history.Add(residual);
            if (ratio <= 1)
            {
                Download(gpu, cur, result);
                return Result(result, batch, length, s, n, method, iteration, SolveStatus.Converged,
                    $"GPU {method}: converged after {iteration} iteration(s); residual checked on the device.", history, residual, clock);
            }

            if (!double.IsFinite(ratio) || iteration >= maxIterations)
            {
                Download(gpu, cur, result);
                SolveStatus status = double.IsFinite(ratio) ? SolveStatus.MaxIterationsReached : SolveStatus.Diverged;
                return Result(result, batch, length, s, n, method, iteration, status,
                    status == SolveStatus.Diverged
                        ? $"GPU {method}: the iterate became NaN or infinite after {iteration} iteration(s)."
                        : $"GPU {method}: the residual was still {residual:G3} after {iteration} iteration(s).", history, residual, clock);
            }

            switch (method)
            {
                case SolveMethod.Deer:
                    DenseScan<T>(gpu, buffers, isDouble, jac, bterm, start, cur, batch, length, s);
                    break;
                case SolveMethod.QuasiDeer:
                    DiagonalScan<T>(gpu, buffers, isDouble, jac, bterm, start, cur, batch, length, s);
                    break;
                default:
                    gpu.Copy(cur, f, rows * s * size);
                    break;
            }
        }
    }

    /// <summary>The result of a path whose states are exact by construction (the loop, the linear scan), once their residual is known.</summary>
    private static SolveResult<T> Checked<T>(IGpuRuntime gpu, ulong states, ulong stats, T[] result, int batch, int length, int s, int n,
        SolveMethod method, int iterations, string what, List<double> history, Stopwatch clock)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ulong* host = stackalloc ulong[2];
        gpu.Download(host, stats, 2 * sizeof(ulong));
        double ratio = BitConverter.Int64BitsToDouble((long)host[0]), residual = BitConverter.Int64BitsToDouble((long)host[1]);
        Download(gpu, states, result);
        if (method != SolveMethod.Sequential)
        {
            history.Add(residual);
        }

        SolveStatus status = ratio <= 1 ? SolveStatus.Converged : double.IsFinite(ratio) ? SolveStatus.MaxIterationsReached : SolveStatus.Diverged;
        string message = status switch
        {
            SolveStatus.Converged => $"{what}: residual {residual:G3} checked on the device.",
            SolveStatus.Diverged => $"{what} produced NaN or infinity: the recurrence overflows for these weights and inputs.",
            _ => $"{what}: the residual of its states is {residual:G3}, above the tolerance (rounding).",
        };
        return Result(result, batch, length, s, n, method, iterations, status, message, history, residual, clock);
    }

    private static SolveResult<T> Result<T>(T[] states, int batch, int length, int s, int n, SolveMethod method, int iterations, SolveStatus status,
        string message, List<double> history, double residual, Stopwatch clock)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        new(states, batch, length, s, n, method, iterations, status, message, [.. history], residual, clock.Elapsed) { Device = ComputeDevice.Cuda };

    /// <summary>Three-phase diagonal scan: enough chunks that every SM has work even for one short-state sequence.</summary>
    internal static void DiagonalScan<T>(IGpuRuntime gpu, DeviceBuffers buffers, bool isDouble, ulong a, ulong b, ulong h0, ulong h, int batch, int length, int n)
        where T : unmanaged
    {
        int chunk = DiagonalChunk(batch, length, n), chunks = (length + chunk - 1) / chunk;
        long count = (long)batch * chunks * n;
        ulong p = buffers.Scratch(0, count * sizeof(T)), r = buffers.Scratch(1, count * sizeof(T)), carry = buffers.Scratch(2, count * sizeof(T));
        Elementwise(gpu, "scan_diag_reduce", isDouble, count, a, b, p, r, batch, length, n, chunk, chunks);
        Elementwise(gpu, "scan_diag_carry", isDouble, (long)batch * n, p, r, h0, carry, batch, n, chunks);
        Elementwise(gpu, "scan_diag_apply", isDouble, count, a, b, carry, h, batch, length, n, chunk, chunks);
    }

    /// <summary>Chunk length: about 2^16 (sequence, chunk, channel) threads in all, at least 16 steps each.</summary>
    internal static int DiagonalChunk(int batch, int length, int n)
    {
        long lanes = Math.Max(1L, (long)batch * n);
        long chunks = Math.Max(1L, 65536 / lanes);
        return (int)Math.Clamp((length + chunks - 1) / chunks, 16, Math.Max(16, length));
    }

    /// <summary>Three-phase dense scan for states up to <see cref="MaxDenseState"/>: blocks of n² threads compose 64-step chunks.</summary>
    internal static void DenseScan<T>(IGpuRuntime gpu, DeviceBuffers buffers, bool isDouble, ulong a, ulong b, ulong h0, ulong h, int batch, int length, int n)
        where T : unmanaged
    {
        const int chunk = 64;
        int chunks = (length + chunk - 1) / chunk;
        long count = (long)batch * chunks;
        ulong p = buffers.Scratch(0, count * n * n * sizeof(T)), r = buffers.Scratch(1, count * n * sizeof(T)), carry = buffers.Scratch(2, count * n * sizeof(T));
        uint threads = (uint)Math.Max(32, (n * n + 31) / 32 * 32), small = (uint)Math.Max(32, (n + 31) / 32 * 32);
        Launch(gpu, "scan_dense_reduce", isDouble, (uint)chunks, (uint)batch, threads, (uint)((2 * n * n + 2 * n) * sizeof(T)), a, b, p, r, batch, length, n, chunk, chunks);
        Launch(gpu, "scan_dense_carry", isDouble, (uint)batch, 1, small, (uint)(n * sizeof(T)), p, r, h0, carry, batch, n, chunks);
        Launch(gpu, "scan_dense_apply", isDouble, (uint)chunks, (uint)batch, small, (uint)(n * sizeof(T)), a, b, carry, h, batch, length, n, chunk, chunks);
    }

    private static void Download<T>(IGpuRuntime gpu, ulong source, T[] destination)
        where T : unmanaged
    {
        fixed (T* p = destination)
        {
            gpu.Download(p, source, (long)destination.Length * sizeof(T));
        }
    }

    /// <summary>A one-thread-per-element launch over <paramref name="count"/> elements.</summary>
    private static void Elementwise(IGpuRuntime gpu, string kernel, bool isDouble, long count, params object[] arguments) =>
        Launch(gpu, kernel, isDouble, (uint)((count + Block - 1) / Block), 1, Block, 0, arguments);

    /// <summary>
    /// Launches with arguments boxed as their kernel types (ulong pointers, int, long, float or double scalars): each is
    /// copied to pinned memory and passed by address, as cuLaunchKernel expects.
    /// </summary>
    private static void Launch(IGpuRuntime gpu, string kernel, bool isDouble, uint gridX, uint gridY, uint blockX, uint shared, params object[] arguments)
    {
        const int slot = 8;
        byte* storage = stackalloc byte[arguments.Length * slot];
        void** pointers = stackalloc void*[arguments.Length];
        for (int i = 0; i < arguments.Length; i++)
        {
            byte* at = storage + i * slot;
            switch (arguments[i])
            {
                case ulong u: *(ulong*)at = u; break;
                case long l: *(long*)at = l; break;
                case int v: *(int*)at = v; break;
                case float v: *(float*)at = v; break;
                case double v: *(double*)at = v; break;
                default: throw new ArgumentException($"kernel argument {i} of {kernel} has unsupported type {arguments[i].GetType().Name}.");
            }

            pointers[i] = at;
        }

        gpu.Launch(kernel, isDouble, gridX, gridY, blockX, shared, pointers);
    }

    /// <summary>Device allocations of one solve, freed together; scratch slots are reused and grown as needed.</summary>
    internal sealed class DeviceBuffers(IGpuRuntime gpu) : IDisposable
    {
        private readonly List<ulong> _owned = [];
        private readonly (ulong Pointer, long Bytes)[] _scratch = new (ulong, long)[3];

        public ulong Allocate(long bytes)
        {
            ulong p = gpu.Allocate(bytes);
            _owned.Add(p);
            return p;
        }

        public ulong Upload<T>(ReadOnlySpan<T> values)
            where T : unmanaged
        {
            ulong p = Allocate((long)values.Length * sizeof(T));
            UploadInto(p, values);
            return p;
        }

        public void UploadInto<T>(ulong pointer, ReadOnlySpan<T> values)
            where T : unmanaged
        {
            fixed (T* v = values)
            {
                gpu.Upload(pointer, v, (long)values.Length * sizeof(T));
            }
        }

        public ulong Scratch(int slot, long bytes)
        {
            if (_scratch[slot].Bytes < bytes)
            {
                if (_scratch[slot].Pointer != 0)
                {
                    gpu.Free(_scratch[slot].Pointer);
                }

                _scratch[slot] = (gpu.Allocate(bytes), bytes);
            }

            return _scratch[slot].Pointer;
        }

        public void Dispose()
        {
            foreach (ulong p in _owned)
            {
                gpu.Free(p);
            }

            foreach (var (p, _) in _scratch)
            {
                if (p != 0)
                {
                    gpu.Free(p);
                }
            }
        }
    }
}
