using System.Numerics.Tensors;
using DeerSharp.Scan;

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
public readonly struct SruCell<T> : ILinearSurrogateCell<T>, IConstructedCell, IDeviceFormSource<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
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

    /// <inheritdoc/>
    public void ProjectInputs(ReadOnlySpan<T> inputs, Span<T> projections, int count)
    {
        int n = _n;
        var pre = new T[count * 3 * n];
        Kernels.Gemm<T>(inputs, _transposed, pre, count, n, 3 * n);
        for (int t = 0; t < count; t++)
        {
            Span<T> row = pre.AsSpan(t * 3 * n, 3 * n), p = projections.Slice(t * 4 * n, 4 * n);
            TensorPrimitives.Add(row, _bias, row);
            row[..n].CopyTo(p);
            TensorPrimitives.Sigmoid(row[n..], p.Slice(n, 2 * n));
            inputs.Slice(t * n, n).CopyTo(p.Slice(3 * n, n));
        }
    }

    /// <inheritdoc/>
    public void Evaluate(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> workspace)
    {
        int n = _n;
        for (int j = 0; j < n; j++)
        {
            T xt = projection[j], f = projection[n + j], r = projection[2 * n + j], x = projection[3 * n + j];
            T c = f * state[n + j] + (T.One - f) * xt;
            next[n + j] = c;
            next[j] = r * Activations.Tanh(c) + (T.One - r) * x;
        }
    }

    /// <inheritdoc/>
    public void EvaluateBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> next, Span<T> jacobians, JacobianMode mode,
        Span<T> workspace, int count)
    {
        int n = _n, s = 2 * n, p = 4 * n;
        if (mode == JacobianMode.Full)
        {
            jacobians[..(count * s * s)].Clear();
        }

        for (int k = 0; k < count; k++)
        {
            ReadOnlySpan<T> proj = projections.Slice(k * p, p);
            Span<T> nk = next.Slice(k * s, s);
            Evaluate(states.Slice(k * s, s), proj, nk, workspace);
            for (int j = 0; j < n && mode != JacobianMode.None; j++)
            {
                T f = proj[n + j], r = proj[2 * n + j], tc = Activations.Tanh(nk[n + j]);
                if (mode == JacobianMode.Diagonal)
                {
                    jacobians[k * s + j] = T.Zero;
                    jacobians[k * s + n + j] = f;
                }
                else
                {
                    Span<T> jk = jacobians.Slice(k * s * s, s * s);
                    jk[(n + j) * s + n + j] = f;
                    jk[j * s + n + j] = r * (T.One - tc * tc) * f;
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

    /// <summary>One scan for c (a = f, b = (1 - f) ⊙ x̃), then h from c.</summary>
    public void SolveLinear(ReadOnlySpan<T> projections, ReadOnlySpan<T> initialState, Span<T> states, int length)
    {
        int n = _n, s = 2 * n, p = 4 * n;
        var a = new T[length * n];
        var b = new T[length * n];
        var c = new T[length * n];
        for (int t = 0; t < length; t++)
        {
            for (int j = 0; j < n; j++)
            {
                T f = projections[t * p + n + j];
                a[t * n + j] = f;
                b[t * n + j] = (T.One - f) * projections[t * p + j];
            }
        }

        LinearRecurrence.SolveDiagonalSequential<T>(a, b, initialState.IsEmpty ? new T[n] : initialState.Slice(n, n), c, n);
        for (int t = 0; t < length; t++)
        {
            for (int j = 0; j < n; j++)
            {
                T r = projections[t * p + 2 * n + j], ct = c[t * n + j];
                states[t * s + n + j] = ct;
                states[t * s + j] = r * Activations.Tanh(ct) + (T.One - r) * projections[t * p + 3 * n + j];
            }
        }
    }
}
