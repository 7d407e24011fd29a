using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DeerSharp.Cells;

/// <summary>
/// GILR, the gated impulse linear recurrence (Martin &amp; Cundy 2018, reference §9):
/// g_t = σ(U x_t + b_g), i_t = tanh(V x_t + b_i), h_t = g_t ⊙ h_{t-1} + (1 - g_t) ⊙ i_t.
/// Linear in h, with coefficients that depend on x alone: one diagonal scan gives the exact trajectory.
/// </summary>
/// <remarks>
/// The input projection holds the activated gate and impulse, [g_t; i_t]. The Jacobian is diag(g_t). Parameters, flat:
/// [gate.weight, gate.bias, impulse.weight, impulse.bias].
/// </remarks>
public readonly partial struct GilrCell<T> : ILinearSurrogateCell<T>, IConstructedCell, IDeviceFormSource<T>, IStructuredJacobian, IBackpropagationLoop<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    bool IConstructedCell.IsDefault => _p is null;

    /// <summary>Diagonal: ∂h_t/∂h_{t-1} = diag(g_t). The scan adjoint then runs over the diagonal, in O(T n); BPTT runs GILR's own loop (GilrCell.Backpropagation.cs).</summary>
    JacobianStructure? IStructuredJacobian.JacobianStructure => new JacobianStructure(1);

    private readonly GilrProjection<T> _p;

    /// <summary>Wraps the weights (a snapshot of them).</summary>
    public GilrCell(GilrWeights<T> weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        Weights = weights;
        _p = new GilrProjection<T>(weights);
    }

    /// <summary>Random weights, uniform on ±s/√d.</summary>
    public static GilrCell<T> Random(int inputSize, int hiddenSize, Random random, double scale = 1.0) =>
        new(GilrWeights<T>.Random(hiddenSize, inputSize, random, scale));

    /// <summary>The weights as given.</summary>
    public GilrWeights<T> Weights { get; }

    /// <summary>The device kernels' form of this cell.</summary>
    DeviceCell<T>? IDeviceFormSource<T>.DeviceForm() => DeviceCell<T>.Gilr(Weights);

    /// <inheritdoc/>
    public int StateSize => _p.HiddenSize;

    /// <inheritdoc/>
    public int InputSize => _p.InputSize;

    /// <inheritdoc/>
    public int OutputSize => _p.HiddenSize;

    /// <summary>[g_t; i_t], activated: 2n.</summary>
    public int ProjectionSize => 2 * _p.HiddenSize;

    /// <inheritdoc/>
    public int WorkspaceSize => 0;

    /// <inheritdoc/>
    public int ParameterCount => Weights.ParameterCount;

    /// <inheritdoc/>
    public int BlockWorkspaceSize(int count) => 0;

    /// <inheritdoc/>
    public int BackwardWorkspaceSize(int count) => 2 * count * _p.HiddenSize;

    /// <inheritdoc/>
    public void ProjectInputs(ReadOnlySpan<T> inputs, Span<T> projections, int count) => _p.Project(inputs, projections, count, 2 * _p.HiddenSize, 0);

    /// <summary>h' = g ⊙ h + (1 - g) ⊙ i, a vector of units at a time (then a scalar tail).</summary>
    public void Evaluate(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> workspace)
    {
        int n = _p.HiddenSize, v = Vector<T>.Count, j = 0;
        ref T h = ref MemoryMarshal.GetReference(state[..n]);
        ref T p = ref MemoryMarshal.GetReference(projection[..(2 * n)]);
        ref T o = ref MemoryMarshal.GetReference(next[..n]);
        for (; j + v <= n; j += v)
        {
            Vector<T> g = Vector.LoadUnsafe(ref p, (nuint)j);
            ((g * Vector.LoadUnsafe(ref h, (nuint)j)) + ((Vector<T>.One - g) * Vector.LoadUnsafe(ref p, (nuint)(n + j)))).StoreUnsafe(ref o, (nuint)j);
        }

        for (; j < n; j++)
        {
            T g = Unsafe.Add(ref p, j);
            Unsafe.Add(ref o, j) = (g * Unsafe.Add(ref h, j)) + ((T.One - g) * Unsafe.Add(ref p, n + j));
        }
    }

    /// <inheritdoc/>
    public void EvaluateBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> next, Span<T> jacobians, JacobianMode mode,
        Span<T> workspace, int count)
    {
        int n = _p.HiddenSize;
        if (mode == JacobianMode.Full)
        {
            jacobians[..(count * n * n)].Clear();
        }

        for (int k = 0; k < count; k++)
        {
            ReadOnlySpan<T> p = projections.Slice(k * 2 * n, 2 * n);
            Evaluate(states.Slice(k * n, n), p, next.Slice(k * n, n), workspace);
            for (int j = 0; j < n && mode != JacobianMode.None; j++)
            {
                jacobians[mode == JacobianMode.Diagonal ? k * n + j : k * n * n + j * n + j] = p[j];
            }
        }
    }

    /// <summary>∂h_{t-1} = g ⊙ v; ∂g = v ⊙ (h_{t-1} - i), ∂i = v ⊙ (1 - g), through σ and tanh to the weights and x.</summary>
    public void BackwardBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, ReadOnlySpan<T> inputs, ReadOnlySpan<T> adjoints,
        Span<T> previousAdjoints, Span<T> inputAdjoints, Span<T> gradient, Span<T> workspace, int count)
    {
        int n = _p.HiddenSize;
        Span<T> da = workspace[..(2 * count * n)];
        for (int k = 0; k < count; k++)
        {
            for (int j = 0; j < n; j++)
            {
                T g = projections[k * 2 * n + j], i = projections[k * 2 * n + n + j], v = adjoints[k * n + j];
                previousAdjoints[k * n + j] = g * v;
                da[k * 2 * n + j] = v * (states[k * n + j] - i) * g * (T.One - g);
                da[k * 2 * n + n + j] = v * (T.One - g) * (T.One - i * i);
            }
        }

        _p.Backward(da, inputs, inputAdjoints, gradient, count, accumulateInputs: false);
    }

    /// <summary>
    /// One diagonal recurrence, h_t = g_t ⊙ h_{t-1} + (1 - g_t) ⊙ i_t: on a CPU its scan, run in order, is the loop, so
    /// the trajectory is <see cref="Evaluate"/>'s step after step (each state f of the one before), with no [T, n] buffer
    /// for the scan's coefficients.
    /// </summary>
    public void SolveLinear(ReadOnlySpan<T> projections, ReadOnlySpan<T> initialState, Span<T> states, int length)
    {
        int n = _p.HiddenSize;
        ReadOnlySpan<T> previous = initialState.IsEmpty ? new T[n] : initialState[..n];
        for (int t = 0; t < length; t++)
        {
            Span<T> current = states.Slice(t * n, n);
            Evaluate(previous, projections.Slice(t * 2 * n, 2 * n), current, default);
            previous = current;
        }
    }
}
