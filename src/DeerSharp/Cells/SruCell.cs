using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DeerSharp.Cells;

/// <summary>
/// The simple recurrent unit (Lei et al., 2018), a linear-surrogate cell like GILR: x̃ = W x, f = σ(W_f x + b_f),
/// r = σ(W_r x + b_r), c_t = f ⊙ c_{t-1} + (1 - f) ⊙ x̃, h_t = r ⊙ tanh(c_t) + (1 - r) ⊙ x_t (a highway connection, so
/// d = n). Its gates read x alone: one diagonal scan for c gives the exact trajectory.
/// </summary>
/// <remarks>
/// The state is [h; c] (2n), the output h. Weights: weight [3n, d] (rows x̃, f, r) and bias [2n] (f, r); parameters, flat:
/// [weight, bias]. Projections hold [x̃; f; r; x] (4n). The Jacobian's only non-zero blocks are ∂c/∂c = diag(f) and
/// ∂h/∂c = diag(r (1 - tanh²(c_t)) f); its diagonal is [0; f].
/// </remarks>
public readonly partial struct SruCell<T> : ILinearSurrogateCell<T>, IConstructedCell, IDeviceFormSource<T>, IStructuredJacobian, IBackpropagationLoop<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>
    /// Blocks of one unit over two parts: h_j and c_j depend on c_{j,t-1} alone. Exact Newton (Method = Deer) and the scan
    /// adjoint then take 2×2 blocks instead of [2n, 2n] Jacobians. BPTT runs SRU's own loop (SruCell.Backpropagation.cs).
    /// </summary>
    JacobianStructure? IStructuredJacobian.JacobianStructure => new JacobianStructure(1, Parts: 2);

    /// <summary>The device kernels' form of this cell.</summary>
    DeviceCell<T>? IDeviceFormSource<T>.DeviceForm() => DeviceCell<T>.Sru(this);

    bool IConstructedCell.IsDefault => _rows is null;

    private readonly int _n;
    private readonly T[] _rows;         // W, [3n, n]
    private readonly T[] _transposed;   // Wᵀ, [n, 3n]
    private readonly T[] _bias;         // [0; b_f; b_r], 3n

    /// <summary>Validates and takes a snapshot of the weights: <paramref name="weight"/> [3n, n], <paramref name="bias"/> [2n].</summary>
    public SruCell(int hiddenSize, T[] weight, T[] bias)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(hiddenSize, 1);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(bias);
        Require.Length(weight, 3L * hiddenSize * hiddenSize, nameof(weight), $"[{3 * hiddenSize}, {hiddenSize}] (SRU's highway needs d = n)");
        Require.Length(bias, 2 * hiddenSize, nameof(bias), $"[{2 * hiddenSize}]");
        Require.Finite<T>(weight, nameof(weight));
        Require.Finite<T>(bias, nameof(bias));
        _n = hiddenSize;
        _rows = (T[])weight.Clone();
        _transposed = Kernels.Transpose(_rows, 3 * hiddenSize, hiddenSize);
        _bias = [.. new T[hiddenSize], .. bias];
    }

    /// <summary>W [3n, n] (rows x̃, f, r), as given.</summary>
    internal T[] WeightRows => _rows;

    /// <summary>[0; b_f; b_r], 3n.</summary>
    internal T[] ProjectionBias => _bias;

    /// <summary>n.</summary>
    internal int HiddenSize => _n;

    /// <summary>Random weights, uniform on ±s/√n.</summary>
    public static SruCell<T> Random(int hiddenSize, Random random, double scale = 1.0)
    {
        ArgumentNullException.ThrowIfNull(random);
        double bound = scale / Math.Sqrt(hiddenSize);
        T[] Draw(int count) => [.. Enumerable.Range(0, count).Select(_ => T.CreateTruncating((random.NextDouble() * 2 - 1) * bound))];
        return new SruCell<T>(hiddenSize, Draw(3 * hiddenSize * hiddenSize), Draw(2 * hiddenSize));
    }

    /// <summary>2n: [h; c].</summary>
    public int StateSize => 2 * _n;

    /// <summary>n (the highway needs d = n).</summary>
    public int InputSize => _n;

    /// <summary>n: the output is h.</summary>
    public int OutputSize => _n;

    /// <summary>[x̃; f; r; x]: 4n.</summary>
    public int ProjectionSize => 4 * _n;

    /// <inheritdoc/>
    public int WorkspaceSize => 0;

    /// <summary>[weight (3n·n), bias (2n)].</summary>
    public int ParameterCount => 3 * _n * _n + 2 * _n;

    /// <inheritdoc/>
    public int BlockWorkspaceSize(int count) => 0;

    /// <inheritdoc/>
    public int BackwardWorkspaceSize(int count) => 6 * count * _n;

    /// <summary>
    /// [x̃; f; r] for every step by one matrix product into a pooled buffer (rented once per call, not per chunk of a
    /// loop: a fresh [count, 3n] array per call was most of the loop's time, in page faults), then per step x̃ copied, σ over
    /// the contiguous [f; r] pre-activations a vector at a time, and x appended.
    /// </summary>
    public void ProjectInputs(ReadOnlySpan<T> inputs, Span<T> projections, int count)
    {
        int n = _n;
        T[] rented = ArrayPool<T>.Shared.Rent(count * 3 * n);
        try
        {
            Span<T> pre = rented.AsSpan(0, count * 3 * n);
            Kernels.Gemm<T>(inputs, _transposed, pre, count, n, 3 * n);
            // Per step: x̃ as computed, σ over the contiguous [f; r] pre-activations plus their bias, x as given.
            ref T b = ref _bias[0];
            ref T rp = ref MemoryMarshal.GetReference(projections[..(count * 4 * n)]);
            ref T rx = ref MemoryMarshal.GetReference(inputs[..(count * n)]);
            int v = Vector<T>.Count;
            for (int t = 0; t < count; t++)
            {
                ref T row = ref pre[t * 3 * n];
                ref T p = ref Unsafe.Add(ref rp, t * 4 * n);
                ref T x = ref Unsafe.Add(ref rx, t * n);
                Unsafe.CopyBlockUnaligned(ref Unsafe.As<T, byte>(ref p), ref Unsafe.As<T, byte>(ref row), (uint)(n * Unsafe.SizeOf<T>()));
                Unsafe.CopyBlockUnaligned(ref Unsafe.As<T, byte>(ref Unsafe.Add(ref p, 3 * n)), ref Unsafe.As<T, byte>(ref x), (uint)(n * Unsafe.SizeOf<T>()));
                int j = n;
                for (; j + v <= 3 * n; j += v)
                {
                    Activations.Sigmoid(Vector.LoadUnsafe(ref row, (nuint)j) + Vector.LoadUnsafe(ref b, (nuint)j)).StoreUnsafe(ref p, (nuint)j);
                }

                for (; j < 3 * n; j++)
                {
                    Unsafe.Add(ref p, j) = Activations.Sigmoid(Unsafe.Add(ref row, j) + Unsafe.Add(ref b, j));
                }
            }
        }
        finally
        {
            ArrayPool<T>.Shared.Return(rented);
        }
    }

    /// <summary>c' = f ⊙ c + (1 - f) ⊙ x̃ and h' = r ⊙ tanh(c') + (1 - r) ⊙ x, a vector of units at a time (then a scalar tail).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Evaluate(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> workspace)
    {
        int n = _n, v = Vector<T>.Count, j = 0;
        // The lengths once, then unchecked loads: this is the loop's whole step.
        ref T h = ref MemoryMarshal.GetReference(state[..(2 * n)]);
        ref T p = ref MemoryMarshal.GetReference(projection[..(4 * n)]);
        ref T o = ref MemoryMarshal.GetReference(next[..(2 * n)]);
        for (; j + v <= n; j += v)
        {
            Vector<T> f = Vector.LoadUnsafe(ref p, (nuint)(n + j)), r = Vector.LoadUnsafe(ref p, (nuint)((2 * n) + j));
            Vector<T> c = (f * Vector.LoadUnsafe(ref h, (nuint)(n + j))) + ((Vector<T>.One - f) * Vector.LoadUnsafe(ref p, (nuint)j));
            c.StoreUnsafe(ref o, (nuint)(n + j));
            ((r * Activations.Tanh(c)) + ((Vector<T>.One - r) * Vector.LoadUnsafe(ref p, (nuint)((3 * n) + j)))).StoreUnsafe(ref o, (nuint)j);
        }

        for (; j < n; j++)
        {
            T xt = Unsafe.Add(ref p, j), f = Unsafe.Add(ref p, n + j), r = Unsafe.Add(ref p, (2 * n) + j), x = Unsafe.Add(ref p, (3 * n) + j);
            T c = (f * Unsafe.Add(ref h, n + j)) + ((T.One - f) * xt);
            Unsafe.Add(ref o, n + j) = c;
            Unsafe.Add(ref o, j) = (r * Activations.Tanh(c)) + ((T.One - r) * x);
        }
    }

    /// <summary>
    /// The steps' next states and, by <paramref name="mode"/>, their Jacobians: the diagonal [0; f], the declared 2×2
    /// blocks of unit j over (h_j, c_j), [[0, r (1 - tanh² c') f], [0, f]], or the full [2n, 2n] matrix with the same
    /// two non-zero diagonals.
    /// </summary>
    public void EvaluateBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> next, Span<T> jacobians, JacobianMode mode,
        Span<T> workspace, int count)
    {
        int n = _n, s = 2 * n, p = 4 * n;
        int entries = mode switch { JacobianMode.Full => s * s, JacobianMode.Block => 2 * s, _ => s };
        if (mode is JacobianMode.Full or JacobianMode.Block)
        {
            jacobians[..(count * entries)].Clear();
        }

        for (int k = 0; k < count; k++)
        {
            ReadOnlySpan<T> proj = projections.Slice(k * p, p);
            Span<T> nk = next.Slice(k * s, s);
            Evaluate(states.Slice(k * s, s), proj, nk, workspace);
            if (mode == JacobianMode.None)
            {
                continue;
            }

            Span<T> jk = jacobians.Slice(k * entries, entries);
            for (int j = 0; j < n; j++)
            {
                T f = proj[n + j], r = proj[2 * n + j], tc = Activations.Tanh(nk[n + j]), hc = r * (T.One - (tc * tc)) * f;
                switch (mode)
                {
                    case JacobianMode.Diagonal:
                        jk[j] = T.Zero;
                        jk[n + j] = f;
                        break;
                    case JacobianMode.Block:
                        jk[(4 * j) + 1] = hc;
                        jk[(4 * j) + 3] = f;
                        break;
                    default:
                        jk[((n + j) * s) + n + j] = f;
                        jk[(j * s) + n + j] = hc;
                        break;
                }
            }
        }
    }

    /// <summary>
    /// With v = [v_h; v_c]: ∂c = v_c + v_h ⊙ r(1 - tanh²c), ∂r = v_h ⊙ (tanh c - x), ∂f = ∂c ⊙ (c_{t-1} - x̃), ∂x̃ = ∂c ⊙ (1 - f),
    /// ∂c_{t-1} = ∂c ⊙ f, and ∂x = Wᵀ [∂x̃; ∂a_f; ∂a_r] + v_h ⊙ (1 - r).
    /// </summary>
    public void BackwardBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, ReadOnlySpan<T> inputs, ReadOnlySpan<T> adjoints,
        Span<T> previousAdjoints, Span<T> inputAdjoints, Span<T> gradient, Span<T> workspace, int count)
    {
        int n = _n, s = 2 * n, p = 4 * n;
        Span<T> delta = workspace[..(3 * n * count)], transposed = workspace.Slice(3 * n * count, 3 * n * count);
        Span<T> highway = inputAdjoints[..(n * count)];
        var next = new T[s];
        for (int k = 0; k < count; k++)
        {
            ReadOnlySpan<T> proj = projections.Slice(k * p, p), v = adjoints.Slice(k * s, s), state = states.Slice(k * s, s);
            Evaluate(state, proj, next, default);
            for (int j = 0; j < n; j++)
            {
                T xt = proj[j], f = proj[n + j], r = proj[2 * n + j], x = proj[3 * n + j], tc = Activations.Tanh(next[n + j]);
                T dc = v[n + j] + v[j] * r * (T.One - tc * tc);
                delta[k * 3 * n + j] = dc * (T.One - f);
                delta[k * 3 * n + n + j] = dc * (state[n + j] - xt) * f * (T.One - f);
                delta[k * 3 * n + 2 * n + j] = v[j] * (tc - x) * r * (T.One - r);
                previousAdjoints[k * s + j] = T.Zero;
                previousAdjoints[k * s + n + j] = dc * f;
                highway[k * n + j] = v[j] * (T.One - r);
            }
        }

        // ∂x = δ W + the highway term (already in inputAdjoints); ∂W += δᵀ X; ∂b += the f and r parts of δ.
        Kernels.Gemm<T>(delta, _rows, inputAdjoints, count, 3 * n, n, accumulate: true);
        for (int k = 0; k < count; k++)
        {
            for (int j = 0; j < 3 * n; j++)
            {
                transposed[j * count + k] = delta[k * 3 * n + j];
            }
        }

        Kernels.Gemm<T>(transposed, inputs, gradient[..(3 * n * n)], 3 * n, count, n, accumulate: true);
        Span<T> gb = gradient.Slice(3 * n * n, 2 * n);
        for (int k = 0; k < count; k++)
        {
            TensorPrimitives.Add(gb, delta.Slice(k * 3 * n + n, 2 * n), gb);
        }
    }

    /// <summary>
    /// The recurrence for c is diagonal and h' reads only c': on a CPU its scan, run in order, is the loop itself, so
    /// the trajectory is <see cref="Evaluate"/>'s step after step (each state f of the one before, exactly), with no
    /// [T, n] buffers for the scan's coefficients.
    /// </summary>
    public void SolveLinear(ReadOnlySpan<T> projections, ReadOnlySpan<T> initialState, Span<T> states, int length)
    {
        int s = 2 * _n, p = 4 * _n;
        ReadOnlySpan<T> previous = initialState.IsEmpty ? new T[s] : initialState[..s];
        for (int t = 0; t < length; t++)
        {
            Span<T> current = states.Slice(t * s, s);
            Evaluate(previous, projections.Slice(t * p, p), current, default);
            previous = current;
        }
    }
}
