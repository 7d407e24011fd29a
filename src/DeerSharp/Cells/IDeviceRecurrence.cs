
namespace DeerSharp.Cells;

/// <summary>A read-only vector as <see cref="IDeviceRecurrence.Apply{TNum, TVector}"/> sees its state, input and parameters.</summary>
/// <typeparam name="TNum">The number type: the element type, or a dual number when Deer differentiates.</typeparam>
public interface IReadOnlyVector<TNum>
{
    /// <summary>Entry <paramref name="index"/>.</summary>
    TNum this[int index] { get; }
}

/// <summary>
/// A recurrence h_t = f(h_{t−1}, x_t; θ) written one output unit at a time, over read-only vectors instead of spans, so
/// that ILGPU can compile it into a GPU kernel. Wrapped by <see cref="DeviceRecurrence.Cell{TFunction, T}(TFunction, ReadOnlySpan{T})"/>,
/// it is solved like any cell on the CPU, and with <see cref="SolveOptions.Device"/> = Gpu or Emulated its evaluation,
/// its Jacobian (forward-mode dual numbers, as on the CPU) and the whole Newton iteration run on the device.
/// </summary>
/// <remarks>
/// <para>
/// Implement it on a struct whose fields are plain values (no arrays, strings or other references: the struct is copied
/// to the device as a kernel argument); put weights in the parameters θ, which the solver copies to the device once per
/// solve. <see cref="Apply{TNum, TVector}"/> is a GPU kernel's code: no spans, arrays, <c>stackalloc</c>, exceptions,
/// strings or calls into other libraries; plain arithmetic, loops, and the number type's functions
/// (<c>TNum.Tanh</c>, <c>TNum.Exp</c>, ...). It is called from many threads at once.
/// </para>
/// <para>
/// Cost: unit i is computed on its own, so work shared between units (a hidden layer of an MLP) is repeated per unit;
/// the Jacobian's diagonal costs S unit evaluations on dual numbers per step, the full Jacobian S². That suits the small
/// states of custom recurrences and ODE models; for a GRU or LSTM use the built-in cells, whose kernels are closed forms.
/// </para>
/// </remarks>
public interface IDeviceRecurrence
{
    /// <summary>The state dimension S.</summary>
    int StateSize { get; }

    /// <summary>The input dimension d.</summary>
    int InputSize { get; }

    /// <summary>The number of parameters θ (zero for none).</summary>
    int ParameterCount { get; }

    /// <summary>Returns unit <paramref name="unit"/> (0 ≤ unit &lt; S) of f(state, input; parameters).</summary>
    TNum Apply<TNum, TVector>(int unit, TVector state, TVector input, TVector parameters)
        where TNum : IFloatingPointIeee754<TNum>
        where TVector : IReadOnlyVector<TNum>, allows ref struct;
}

/// <summary>Builds the cell that solves an <see cref="IDeviceRecurrence"/> on the CPU or on the ILGPU backend.</summary>
public static class DeviceRecurrence
{
    /// <summary>
    /// A cell for <paramref name="function"/> with its parameter values θ (copied): on the CPU it is a
    /// <see cref="ParameterizedCell{TFunction, T}"/> (so <c>Deer.Gradient</c>
    /// gives ∂L/∂θ), and with <see cref="SolveOptions.Device"/> = Gpu or Emulated the solve runs on the device.
    /// </summary>
    public static ParameterizedCell<DeviceRecurrence<TFunction>, T> Cell<TFunction, T>(TFunction function, ReadOnlySpan<T> parameters)
        where TFunction : struct, IDeviceRecurrence
        where T : unmanaged, IFloatingPointIeee754<T> =>
        new(new DeviceRecurrence<TFunction>(function), parameters);

    /// <summary>A cell for <paramref name="function"/>, which has no parameters.</summary>
    public static ParameterizedCell<DeviceRecurrence<TFunction>, T> Cell<TFunction, T>(TFunction function)
        where TFunction : struct, IDeviceRecurrence
        where T : unmanaged, IFloatingPointIeee754<T> =>
        Cell<TFunction, T>(function, []);
}

/// <summary>
/// An <see cref="IDeviceRecurrence"/> seen as an <see cref="IParameterizedRecurrence"/>: the CPU evaluates f unit by
/// unit over spans; the ILGPU backend recognises it and compiles the function itself into its kernels.
/// </summary>
public readonly struct DeviceRecurrence<TFunction>(TFunction function) : IParameterizedRecurrence, IDeviceFunction
    where TFunction : struct, IDeviceRecurrence
{
    /// <summary>The wrapped recurrence.</summary>
    public TFunction Function => function;

    /// <inheritdoc/>
    public int StateSize => function.StateSize;

    /// <inheritdoc/>
    public int InputSize => function.InputSize;

    /// <inheritdoc/>
    public int ParameterCount => function.ParameterCount;

    /// <inheritdoc/>
    public void Apply<TNum>(ReadOnlySpan<TNum> state, ReadOnlySpan<TNum> input, ReadOnlySpan<TNum> parameters, Span<TNum> next)
        where TNum : IFloatingPointIeee754<TNum>
    {
        for (int unit = 0; unit < next.Length; unit++)
        {
            next[unit] = function.Apply<TNum, SpanVector<TNum>>(unit, new(state), new(input), new(parameters));
        }
    }

    TResult IDeviceFunction.Accept<TResult>(IDeviceFunctionVisitor<TResult> visitor) => visitor.Visit(function);
}

/// <summary>A span as an <see cref="IReadOnlyVector{TNum}"/>: the CPU's view of the state, input and parameters.</summary>
internal readonly ref struct SpanVector<TNum>(ReadOnlySpan<TNum> values) : IReadOnlyVector<TNum>
{
    private readonly ReadOnlySpan<TNum> _values = values;

    public TNum this[int index] => _values[index];
}
