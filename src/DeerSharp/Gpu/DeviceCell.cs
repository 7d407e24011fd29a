using System.Numerics;
using DeerSharp.Cells;

namespace DeerSharp.Gpu;

/// <summary>A cell that may have a device form: <see cref="ParameterizedCell{TFunction, T}"/>, whose function may be an <see cref="IDeviceRecurrence"/>.</summary>
internal interface IDeviceFormSource<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The device form, or null when the function is not a device recurrence.</summary>
    DeviceCell<T>? DeviceForm();
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
    /// <summary>The largest state the dense DEER kernels take (the block scan's one block: <see cref="BlockScanKernels.MaxSide"/>).</summary>
    public const int MaxDenseState = BlockScanKernels.MaxSide;

    /// <summary>A user's <see cref="IDeviceRecurrence"/>: its kernels, and the launches with its value (Custom only).</summary>
    public ICustomFunction<T>? Function { get; private init; }

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
    public static DeviceCell<T> Custom(ICustomFunction<T> function, int stateSize, int inputSize, T[] parameters) =>
        new(DeviceCellKind.Custom, stateSize, inputSize, stateSize, [T.Zero], parameters.Length > 0 ? parameters : [T.Zero], [T.Zero], [T.Zero])
        {
            Function = function,
            ParameterCount = parameters.Length,
        };

    /// <summary>A custom cell's number of parameters θ (its W_hh buffer holds one value more when θ is empty).</summary>
    public int ParameterCount { get; private init; }

    /// <summary>The Jacobian's blocks as DEER's scan takes them: the declared blocks, or one dense S×S block.</summary>
    public JacobianStructure Structure => Structured ? new JacobianStructure(BlockSize, Parts) : new JacobianStructure(StateSize);

    /// <summary>The device form of a built-in cell; null for any other cell (it has no kernels).</summary>
    public static DeviceCell<T>? From<TCell>(in TCell cell)
        where TCell : IRecurrentCell<T> => cell switch
    {
        TanhRnnCell<T> c => Dense(DeviceCellKind.TanhRnn, c.Weights),
        GruCell<T> c => Dense(DeviceCellKind.Gru, c.Weights),
        LstmCell<T> c => Dense(DeviceCellKind.Lstm, c.Weights),
        IndRnnCell<T> c => Blocks(DeviceCellKind.IndRnn, c.Weights),
        DiagonalGruCell<T> c => Blocks(DeviceCellKind.DiagonalGru, c.Weights),
        DiagonalLstmCell<T> c => Blocks(DeviceCellKind.DiagonalLstm, c.Weights),
        GilrCell<T> c => Gilr(c.Weights),
        SruCell<T> c => Sru(c),
        GilrLstmCell<T> c => GilrLstm(c.Weights),
        IDeviceFormSource<T> c => c.DeviceForm(),
        _ => null,
    };

    /// <summary>GILR-LSTM: xp = [surrogate gate; surrogate impulse; W_ih x + b (4n)] (6n); W_hh [4n, n] reads h~; no b_hh.</summary>
    private static DeviceCell<T> GilrLstm(GilrLstmWeights<T> w) =>
        new(DeviceCellKind.GilrLstm, w.HiddenSize, w.InputSize, 1, [.. w.Surrogate.GateWeight, .. w.Surrogate.ImpulseWeight, .. w.WeightIH], w.WeightHH,
            [.. w.Surrogate.GateBias, .. w.Surrogate.ImpulseBias, .. w.Bias], new T[6 * w.HiddenSize]);

    /// <summary>
    /// SRU with its projection extended by the identity, so xp = [x̃; f; r; x] (4n) carries the highway's x_t: W_ih
    /// [4n, n] = [W; I], b_ih = [0; b_f; b_r; 0].
    /// </summary>
    private static DeviceCell<T> Sru(SruCell<T> c)
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
    private static DeviceCell<T> Gilr(GilrWeights<T> w) =>
        new(DeviceCellKind.Gilr, w.HiddenSize, w.InputSize, 1, [.. w.GateWeight, .. w.ImpulseWeight], [T.Zero], [.. w.GateBias, .. w.ImpulseBias],
            new T[2 * w.HiddenSize]);

    private static DeviceCell<T> Dense(DeviceCellKind kind, RecurrentWeights<T> w) =>
        new(kind, w.HiddenSize, w.InputSize, w.HiddenSize, w.WeightIH, w.WeightHH, w.BiasIH, w.BiasHH);

    private static DeviceCell<T> Blocks(DeviceCellKind kind, StructuredWeights<T> w) =>
        new(kind, w.HiddenSize, w.InputSize, w.BlockSize, w.WeightIH, w.WeightHH, w.BiasIH, w.BiasHH);
}
