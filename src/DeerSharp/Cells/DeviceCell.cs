
namespace DeerSharp.Cells;

/// <summary>
/// A cell that describes itself to the ILGPU backend: each built-in cell with kernels gives its kind and weights, and a
/// <see cref="ParameterizedCell{TFunction, T}"/> over an <see cref="IDeviceRecurrence"/> gives the user's function. The
/// device engine reads only this, so a new cell does not touch the Gpu folder.
/// </summary>
internal interface IDeviceFormSource<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The device form, or null when there is none (a parameterised cell whose function is not a device recurrence).</summary>
    DeviceCell<T>? DeviceForm();
}

/// <summary>What the device backend does with a user's <see cref="IDeviceRecurrence"/>, given its struct type: compile its kernels.</summary>
internal interface IDeviceFunctionVisitor<out TResult>
{
    TResult Visit<TFunction>(TFunction function)
        where TFunction : struct, IDeviceRecurrence;
}

/// <summary>A user's recurrence the ILGPU backend can compile: it hands its struct type to a visitor.</summary>
internal interface IDeviceFunction
{
    TResult Accept<TResult>(IDeviceFunctionVisitor<TResult> visitor);
}

/// <summary>The sizes the device kernels take.</summary>
internal static class DeviceLimits
{
    /// <summary>The largest state the dense DEER kernels take: one block of the device's block scan.</summary>
    public const int MaxDenseState = 32;
}

/// <summary>The cells the ILGPU backend has kernels for.</summary>
internal enum DeviceCellKind
{
    TanhRnn,
    Gru,
    Lstm,
    IndRnn,
    DiagonalGru,
    DiagonalLstm,
    Gilr,
    Sru,
    GilrLstm,
    Custom,
}

/// <summary>
/// A cell as the device kernels take it: its kind and PyTorch-layout weights (W_hh [G·n, n] dense, [G·n, k] structured;
/// GILR's gate and impulse as two input-only blocks).
/// </summary>
internal sealed record DeviceCell<T>(DeviceCellKind Kind, int HiddenSize, int InputSize, int BlockSize, T[] WeightIH, T[] WeightHH, T[] BiasIH, T[] BiasHH)
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The largest state the dense DEER kernels take (<see cref="DeviceLimits.MaxDenseState"/>).</summary>
    public const int MaxDenseState = DeviceLimits.MaxDenseState;

    /// <summary>A user's <see cref="IDeviceRecurrence"/> (Custom only): the device engine compiles its kernels.</summary>
    public IDeviceFunction? Function { get; private init; }

    public bool Structured => Kind is DeviceCellKind.IndRnn or DeviceCellKind.DiagonalGru or DeviceCellKind.DiagonalLstm;

    public int Gates => Kind switch
    {
        DeviceCellKind.TanhRnn or DeviceCellKind.IndRnn => 1,
        DeviceCellKind.Gilr => 2,
        DeviceCellKind.Sru => 4,
        DeviceCellKind.GilrLstm => 6,
        DeviceCellKind.Gru or DeviceCellKind.DiagonalGru => 3,
        _ => 4,
    };

    public int Parts => Kind switch
    {
        DeviceCellKind.GilrLstm => 3,
        DeviceCellKind.Lstm or DeviceCellKind.DiagonalLstm or DeviceCellKind.Sru => 2,
        _ => 1,
    };

    /// <summary>The linear-surrogate cells, whose coefficients depend on x alone: one diagonal scan is exact.</summary>
    public bool Linear => Kind is DeviceCellKind.Gilr or DeviceCellKind.Sru or DeviceCellKind.GilrLstm;

    /// <summary>Scans a linear surrogate needs, each making exact the level that reads the one before: GILR-LSTM's h~, then its c.</summary>
    public int Levels => Kind == DeviceCellKind.GilrLstm ? 2 : 1;

    public int StateSize => Parts * HiddenSize;

    /// <summary>Values per row of xp, what f reads of x_t: the input itself for a custom cell, W_ih x + b_ih (G·n) for the built-in ones.</summary>
    public int ProjectionSize => Kind == DeviceCellKind.Custom ? InputSize : Gates * HiddenSize;

    /// <summary>
    /// A user's device recurrence: S = HiddenSize, one dense S×S Jacobian block; θ travels as W_hh (the evaluation reads
    /// it there), the inputs as xp.
    /// </summary>
    public static DeviceCell<T> Custom(IDeviceFunction function, int stateSize, int inputSize, T[] parameters) =>
        new(DeviceCellKind.Custom, stateSize, inputSize, stateSize, [T.Zero], parameters.Length > 0 ? parameters : [T.Zero], [T.Zero], [T.Zero])
        {
            Function = function,
            ParameterCount = parameters.Length,
        };

    /// <summary>A custom cell's number of parameters θ (its W_hh buffer holds one value more when θ is empty).</summary>
    public int ParameterCount { get; private init; }

    /// <summary>The Jacobian's blocks as DEER's scan takes them: the declared blocks, or one dense S×S block.</summary>
    public JacobianStructure Structure => Structured ? new JacobianStructure(BlockSize, Parts) : new JacobianStructure(StateSize);

    /// <summary>The device form of <paramref name="cell"/>; null for a cell with no kernels.</summary>
    public static DeviceCell<T>? From<TCell>(in TCell cell)
        where TCell : IRecurrentCell<T> => cell is IDeviceFormSource<T> source ? source.DeviceForm() : null;

    /// <summary>GILR-LSTM: xp = [surrogate gate; surrogate impulse; W_ih x + b (4n)] (6n); W_hh [4n, n] reads h~; no b_hh.</summary>
    internal static DeviceCell<T> GilrLstm(GilrLstmWeights<T> w) =>
        new(DeviceCellKind.GilrLstm, w.HiddenSize, w.InputSize, 1, [.. w.Surrogate.GateWeight, .. w.Surrogate.ImpulseWeight, .. w.WeightIH], w.WeightHH,
            [.. w.Surrogate.GateBias, .. w.Surrogate.ImpulseBias, .. w.Bias], new T[6 * w.HiddenSize]);

    /// <summary>
    /// SRU with its projection extended by the identity, so xp = [x̃; f; r; x] (4n) carries the highway's x_t: W_ih
    /// [4n, n] = [W; I], b_ih = [0; b_f; b_r; 0].
    /// </summary>
    internal static DeviceCell<T> Sru(SruCell<T> c)
    {
        int n = c.HiddenSize;
        var wih = new T[4 * n * n];
        c.WeightRows.CopyTo(wih, 0);
        for (int j = 0; j < n; j++)
        {
            wih[((3 * n) + j) * n + j] = T.One;
        }

        return new(DeviceCellKind.Sru, n, n, 1, wih, [T.Zero], [.. c.ProjectionBias, .. new T[n]], new T[4 * n]);
    }

    /// <summary>GILR as two input-only gate blocks, [gate; impulse]: W_ih [2n, d], b_ih [2n], no W_hh.</summary>
    internal static DeviceCell<T> Gilr(GilrWeights<T> w) =>
        new(DeviceCellKind.Gilr, w.HiddenSize, w.InputSize, 1, [.. w.GateWeight, .. w.ImpulseWeight], [T.Zero], [.. w.GateBias, .. w.ImpulseBias],
            new T[2 * w.HiddenSize]);

    internal static DeviceCell<T> Dense(DeviceCellKind kind, RecurrentWeights<T> w) =>
        new(kind, w.HiddenSize, w.InputSize, w.HiddenSize, w.WeightIH, w.WeightHH, w.BiasIH, w.BiasHH);

    internal static DeviceCell<T> Blocks(DeviceCellKind kind, StructuredWeights<T> w) =>
        new(kind, w.HiddenSize, w.InputSize, w.BlockSize, w.WeightIH, w.WeightHH, w.BiasIH, w.BiasHH);
}
