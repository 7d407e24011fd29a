
namespace DeerSharp;

/// <summary>
/// Gradients of a loss L through a solve, given ∂L/∂output at every step: with respect to every parameter, every input
/// and the initial state. The same numbers PyTorch's autograd gives for output.backward(cotangent).
/// </summary>
public sealed class GradientResult<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    internal GradientResult(SolveResult<T> forward, IReadOnlyList<T[]> parameters, T[] inputs, T[] initialStates, AdjointMethod adjoint,
        int adjointWindows = 1, ComputeDevice adjointDevice = ComputeDevice.Cpu)
    {
        AdjointDevice = adjointDevice;
        AdjointWindows = adjointWindows;
        Forward = forward;
        LayerParameterGradients = parameters;
        InputGradient = inputs;
        InitialStateGradient = initialStates;
        Adjoint = adjoint;
    }

    /// <summary>The forward solve (its states, method and status).</summary>
    public SolveResult<T> Forward { get; }

    /// <summary>∂L/∂θ of the (bottom, or only) cell, in its flat layout (PyTorch cells: [weight_ih, weight_hh, bias_ih, bias_hh]).</summary>
    public T[] ParameterGradient => LayerParameterGradients[0];

    /// <summary>∂L/∂θ per layer, bottom first (one entry for a single cell).</summary>
    public IReadOnlyList<T[]> LayerParameterGradients { get; }

    /// <summary>∂L/∂x, [B, T, d].</summary>
    public T[] InputGradient { get; }

    /// <summary>∂L/∂h0, [B, S] for a cell or [layers, B, S] for a stack (an LSTM's S covers [h0; c0]).</summary>
    public T[] InitialStateGradient { get; }

    /// <summary>How the adjoint recurrence was solved.</summary>
    public AdjointMethod Adjoint { get; }

    /// <summary>
    /// Where the adjoint ran: on the device that solved the forward pass (<see cref="ComputeDevice.Gpu"/>,
    /// <see cref="ComputeDevice.Emulated"/>) for the dense cells it has adjoint kernels for, else <see cref="ComputeDevice.Cpu"/>;
    /// <see cref="ComputeDevice.Auto"/> for a stack whose layers' adjoints ran on different devices.
    /// </summary>
    public ComputeDevice AdjointDevice { get; }

    /// <summary>
    /// How many time windows the adjoint was split into to keep within <see cref="SolveOptions.MemoryBudgetBytes"/> (1: none;
    /// the most over the batch and the layers). Backpropagation through time by blocks (the tanh RNN, GRU and LSTM, and cells that declare Jacobian
    /// blocks) also runs in windows of at most 2,048 steps, so its buffers stay in cache. Windows give the same gradient.
    /// </summary>
    public int AdjointWindows { get; }

    /// <inheritdoc/>
    public override string ToString() => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"Gradient by the {Adjoint} adjoint on {AdjointDevice}{(AdjointWindows > 1 ? $" in {AdjointWindows} windows" : "")}: |∂L/∂θ|max {MaxAbs(LayerParameterGradients.SelectMany(g => g))} over {LayerParameterGradients.Sum(g => g.Length)} parameter(s), |∂L/∂x|max {MaxAbs(InputGradient)}, |∂L/∂h0|max {MaxAbs(InitialStateGradient)}. Forward: {Forward}");

    private static string MaxAbs(IEnumerable<T> values)
    {
        double max = 0;
        foreach (T v in values)
        {
            max = Math.Max(max, Math.Abs(double.CreateTruncating(v)));
        }

        return max.ToString("G3", System.Globalization.CultureInfo.InvariantCulture);
    }
}
