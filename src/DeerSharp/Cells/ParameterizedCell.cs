using System.Runtime.InteropServices;
using DeerSharp.AutoDiff;

namespace DeerSharp.Cells;

/// <summary>
/// A cell for a user's <see cref="IParameterizedRecurrence"/> with its parameter values, differentiated by forward-mode
/// automatic differentiation: column j of J is the derivative of f along the unit vector e_j, one dual-number evaluation
/// of f per column; likewise for the inputs and the parameters.
/// </summary>
/// <remarks>
/// The full Jacobian and its diagonal cost S evaluations of f on dual numbers; a backward step costs S + d + P of them.
/// A hand-written <see cref="IDifferentiableCell{T}"/> is faster where that matters (the built-in GRU's diagonal costs O(S)).
/// The parameter values are copied when the cell is built.
/// </remarks>
public readonly struct ParameterizedCell<TFunction, T> : IDifferentiableCell<T>, IConstructedCell, IStructuredJacobian, IDeviceFormSource<T>
    where TFunction : IParameterizedRecurrence
    where T : unmanaged, IFloatingPointIeee754<T>
{
    bool IConstructedCell.IsDefault => _parameters is null;

    private readonly TFunction _f;
    private readonly int _stateSize;
    private readonly int _inputSize;
    private readonly T[] _parameters;
    private readonly Dual<T>[] _dualParameters;
    private readonly JacobianStructure? _structure;

    /// <summary>Wraps <paramref name="function"/> with its parameter values θ (copied).</summary>
    public ParameterizedCell(TFunction function, ReadOnlySpan<T> parameters)
    {
        if (function is null)
        {
            throw new ArgumentNullException(nameof(function));
        }

        Require.Length(parameters, function.ParameterCount, nameof(parameters), $"[{function.ParameterCount}] (the function's ParameterCount)");
        Require.Finite(parameters, nameof(parameters));
        _parameters = parameters.ToArray();
        _dualParameters = [.. _parameters.Select(Dual<T>.Constant)];
        _stateSize = function.StateSize;
        _inputSize = function.InputSize;
        if (_stateSize < 1)
        {
            throw new ArgumentException($"The recurrence's StateSize must be at least 1; it is {_stateSize}.", nameof(function));
        }

        if (_inputSize < 0)
        {
            throw new ArgumentException($"The recurrence's InputSize must not be negative; it is {_inputSize}.", nameof(function));
        }

        if (function is IStructuredJacobian { JacobianStructure: { } structure })
        {
            structure.Validate(_stateSize, nameof(function));
            _structure = structure;
        }

        _f = function;
    }

    /// <summary>
    /// The structure the function declares (<see cref="IStructuredJacobian"/>), or null. With one, the Jacobian's blocks
    /// and its diagonal cost K dual evaluations per step instead of S: direction c seeds row c of every block at once.
    /// </summary>
    public JacobianStructure? JacobianStructure => _structure;

    /// <summary>The wrapped recurrence.</summary>
    public TFunction Function => _f;

    /// <summary>The device form when the function is an <see cref="IDeviceRecurrence"/> (wrapped in <see cref="DeviceRecurrence{TFunction}"/>).</summary>
    DeviceCell<T>? IDeviceFormSource<T>.DeviceForm() =>
        _f is IDeviceFunction function ? DeviceCell<T>.Custom(function, _stateSize, _inputSize, _parameters) : null;

    /// <summary>The parameter values θ.</summary>
    public ReadOnlySpan<T> Parameters => _parameters;

    /// <inheritdoc/>
    public int StateSize => _stateSize;

    /// <inheritdoc/>
    public int InputSize => _inputSize;

    /// <inheritdoc/>
    public int OutputSize => _stateSize;

    /// <summary>The projection is the input itself: f sees x_t unchanged.</summary>
    public int ProjectionSize => _inputSize;

    /// <summary>Room for the dual state, input, output and parameters (two T each).</summary>
    public int WorkspaceSize => 2 * (2 * _stateSize + _inputSize + _parameters.Length);

    /// <inheritdoc/>
    public int BlockWorkspaceSize(int count) => WorkspaceSize;

    /// <inheritdoc/>
    public void ProjectInputs(ReadOnlySpan<T> inputs, Span<T> projections, int count) =>
        inputs[..(count * _inputSize)].CopyTo(projections);

    /// <inheritdoc/>
    public void EvaluateBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> next, Span<T> jacobians, JacobianMode mode,
        Span<T> workspace, int count)
    {
        int s = _stateSize, d = _inputSize;
        for (int i = 0; i < count; i++)
        {
            ReadOnlySpan<T> state = states.Slice(i * s, s), x = projections.Slice(i * d, d);
            Span<T> f = next.Slice(i * s, s);
            switch (mode)
            {
                case JacobianMode.Full:
                    EvaluateJacobian(state, x, f, jacobians.Slice(i * s * s, s * s), workspace);
                    break;
                case JacobianMode.Diagonal when _structure is { } structure:
                    EvaluateBlocks(state, x, f, jacobians.Slice(i * s, s), structure, diagonalOnly: true, workspace);
                    break;
                case JacobianMode.Diagonal:
                    Jacobian(state, x, f, jacobians.Slice(i * s, s), workspace, diagonal: true);
                    break;
                case JacobianMode.Block:
                    JacobianStructure blocks = _structure ?? throw new InvalidOperationException("JacobianMode.Block needs a declared JacobianStructure.");
                    EvaluateBlocks(state, x, f, jacobians.Slice(i * blocks.EntriesPerStep(s), blocks.EntriesPerStep(s)), blocks, diagonalOnly: false, workspace);
                    break;
                default:
                    _f.Apply(state, x, _parameters, f);
                    break;
            }
        }
    }

    /// <inheritdoc/>
    public void Evaluate(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> workspace) =>
        _f.Apply(state, projection, _parameters, next);

    /// <summary>The number of parameters θ; their gradient comes from AD.</summary>
    public int ParameterCount => _parameters.Length;

    /// <inheritdoc/>
    public int BackwardWorkspaceSize(int count) => WorkspaceSize + _stateSize * _stateSize + _stateSize;

    /// <summary>J_iᵀ v, (∂f/∂x_i)ᵀ v and (∂f/∂θ)ᵀ v by forward-mode AD: S + d + P dual-number evaluations of f per step.</summary>
    public void BackwardBlock(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, ReadOnlySpan<T> inputs, ReadOnlySpan<T> adjoints,
        Span<T> previousAdjoints, Span<T> inputAdjoints, Span<T> gradient, Span<T> workspace, int count)
    {
        int s = _stateSize, d = _inputSize;
        Span<T> jacobian = workspace.Slice(WorkspaceSize, s * s), next = workspace.Slice(WorkspaceSize + s * s, s);
        for (int k = 0; k < count; k++)
        {
            ReadOnlySpan<T> state = states.Slice(k * s, s), x = inputs.Slice(k * d, d), v = adjoints.Slice(k * s, s);
            EvaluateJacobian(state, x, next, jacobian, workspace);
            Span<T> previous = previousAdjoints.Slice(k * s, s);
            for (int j = 0; j < s; j++)
            {
                T sum = T.Zero;
                for (int i = 0; i < s; i++)
                {
                    sum += jacobian[i * s + j] * v[i];
                }

                previous[j] = sum;
            }

            Span<Dual<T>> ds = DualSpans(workspace, state, x, out Span<Dual<T>> dx, out Span<Dual<T>> dnext, out Span<Dual<T>> dp);
            var f = new DualFunction(_f, ds, dx, dp);
            ForwardMode.VectorJacobian(ref f, dx, x, dnext, v, inputAdjoints.Slice(k * d, d), accumulate: false);
            ForwardMode.VectorJacobian(ref f, dp, _parameters, dnext, v, gradient, accumulate: true);
        }
    }

    /// <summary>f and its full Jacobian at one state: S dual-number evaluations of f.</summary>
    private void EvaluateJacobian(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> jacobian, Span<T> workspace) =>
        Jacobian(state, projection, next, jacobian, workspace, diagonal: false);

    /// <summary>f and its Jacobian's diagonal (full, or only the diagonal) at one state: S dual-number evaluations of f.</summary>
    private void Jacobian(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> jacobian, Span<T> workspace, bool diagonal)
    {
        Span<Dual<T>> ds = DualSpans(workspace, state, projection, out Span<Dual<T>> dx, out Span<Dual<T>> dnext, out Span<Dual<T>> dp);
        var f = new DualFunction(_f, ds, dx, dp);
        ForwardMode.Jacobian(ref f, ds, state, dnext, next, jacobian, diagonal);
    }

    /// <summary>The user's function on dual numbers at (h, x; θ) as placed in the spans.</summary>
    private readonly ref struct DualFunction(TFunction function, Span<Dual<T>> state, Span<Dual<T>> input, Span<Dual<T>> parameters) : IDualFunction<T>
    {
        private readonly Span<Dual<T>> _state = state, _input = input, _parameters = parameters;

        public void Apply(Span<Dual<T>> output) => function.Apply<Dual<T>>(_state, _input, _parameters, output);
    }

    /// <summary>
    /// f and the declared blocks (or their diagonal) at one state: K dual evaluations, direction c seeding state index
    /// Index(b, c) of every block b. Exact when the declaration is true; a false one gives a wrong Jacobian, which Newton
    /// then shows as slow or failed convergence of the checked residual, never as a wrong answer.
    /// </summary>
    private void EvaluateBlocks(ReadOnlySpan<T> state, ReadOnlySpan<T> projection, Span<T> next, Span<T> output, JacobianStructure structure,
        bool diagonalOnly, Span<T> workspace)
    {
        int s = _stateSize, side = structure.Side, blocks = s / side, units = s / structure.Parts;
        Span<Dual<T>> ds = DualSpans(workspace, state, projection, out Span<Dual<T>> dx, out Span<Dual<T>> dnext, out Span<Dual<T>> dp);
        for (int c = 0; c < side; c++)
        {
            for (int b = 0; b < blocks; b++)
            {
                int j = structure.Index(b, c, units);
                ds[j] = Dual<T>.Variable(state[j]);
            }

            _f.Apply<Dual<T>>(ds, dx, dp, dnext);
            for (int b = 0; b < blocks; b++)
            {
                int j = structure.Index(b, c, units);
                ds[j] = Dual<T>.Constant(state[j]);
                if (diagonalOnly)
                {
                    output[j] = dnext[j].Derivative;
                    continue;
                }

                for (int r = 0; r < side; r++)
                {
                    output[(b * side + r) * side + c] = dnext[structure.Index(b, r, units)].Derivative;
                }
            }
        }

        for (int i = 0; i < s; i++)
        {
            next[i] = dnext[i].Value;
        }
    }

    /// <summary>Lays the dual state, input, output and parameters over the workspace, all constants.</summary>
    private Span<Dual<T>> DualSpans(Span<T> workspace, ReadOnlySpan<T> state, ReadOnlySpan<T> input, out Span<Dual<T>> dx, out Span<Dual<T>> dnext,
        out Span<Dual<T>> dp)
    {
        Span<Dual<T>> all = MemoryMarshal.Cast<T, Dual<T>>(workspace[..WorkspaceSize]);
        Span<Dual<T>> ds = all[.._stateSize];
        dx = all.Slice(_stateSize, _inputSize);
        dnext = all.Slice(_stateSize + _inputSize, _stateSize);
        dp = all.Slice(2 * _stateSize + _inputSize, _parameters.Length);
        _dualParameters.CopyTo(dp);
        for (int i = 0; i < _stateSize; i++)
        {
            ds[i] = Dual<T>.Constant(state[i]);
        }

        for (int i = 0; i < _inputSize; i++)
        {
            dx[i] = Dual<T>.Constant(input[i]);
        }

        return ds;
    }
}
