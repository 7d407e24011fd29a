using DeerSharp.Driver;

namespace DeerSharp.Training;

/// <summary>What one evaluation of a batch gave: loss, accuracy, gradients, and what the forward solve did.</summary>
public sealed record BatchResult<T>(double Loss, double Accuracy, ParameterSet<T>? Gradients, SolveResult<T> Forward, AdjointMethod? Adjoint)
    where T : unmanaged, IFloatingPointIeee754<T>;

/// <summary>
/// A sequence classifier: a stack of recurrent layers over the whole sequence, then a linear head on the top layer's
/// last output, trained with softmax cross-entropy. The forward pass is any <see cref="SolveMethod"/>; the gradient is
/// the exact adjoint (reference §7), so DEER and BPTT training compute the same gradient.
/// </summary>
/// <typeparam name="TLayers">How layers are made, e.g. <see cref="GruLayers{T}"/> or <see cref="GilrLstmLayers{T}"/>.</typeparam>
/// <typeparam name="TCell">The layers' cell type.</typeparam>
/// <typeparam name="T">The element type.</typeparam>
public class SequenceClassifier<TLayers, TCell, T>
    where TLayers : struct, ILayerKind<TCell, T>
    where TCell : IDifferentiableCell<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly int _d, _n, _layers, _classes;
    private readonly TLayers _kind;

    /// <summary>Creates the model, initialised from <paramref name="random"/> (seed it for reproducible runs).</summary>
    public SequenceClassifier(int inputSize, int hiddenSize, int layers, int classes, Random random)
        : this(default, inputSize, hiddenSize, layers, classes, random)
    {
    }

    /// <summary>
    /// Creates the model with layers of <paramref name="kind"/> (for a kind with settings, such as
    /// <see cref="DiagonalGruLayers{T}"/>'s block size), initialised from <paramref name="random"/>.
    /// </summary>
    public SequenceClassifier(TLayers kind, int inputSize, int hiddenSize, int layers, int classes, Random random)
    {
        _kind = kind;
        ArgumentNullException.ThrowIfNull(random);
        ArgumentOutOfRangeException.ThrowIfLessThan(layers, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 2);
        (_d, _n, _layers, _classes) = (inputSize, hiddenSize, layers, classes);
        for (int k = 0; k < layers; k++)
        {
            _kind.Add(Parameters, k, k == 0 ? inputSize : hiddenSize, hiddenSize, random);
        }

        double bound = 1 / Math.Sqrt(hiddenSize);
        T[] Draw(int count) => [.. Enumerable.Range(0, count).Select(_ => T.CreateTruncating((random.NextDouble() * 2 - 1) * bound))];
        Parameters.Add("head.weight", Draw(classes * hiddenSize), classes, hiddenSize);
        Parameters.Add("head.bias", Draw(classes), classes);
    }

    /// <summary>Applies chrono initialisation to every layer (see <see cref="ILayerKind{TCell, T}.Chrono"/>).</summary>
    public void ChronoInitialize(double maxTimescale, Random random)
    {
        for (int k = 0; k < _layers; k++)
        {
            _kind.Chrono(Parameters, k, _n, maxTimescale, random);
        }
    }

    /// <summary>d, the size of each step's input.</summary>
    public int InputSize => _d;

    /// <summary>n, each layer's hidden size.</summary>
    public int HiddenSize => _n;

    /// <summary>The number of recurrent layers.</summary>
    public int LayerCount => _layers;

    /// <summary>The number of classes the head scores.</summary>
    public int ClassCount => _classes;

    /// <summary>The parameters: each layer's (named as in PyTorch, suffixed _l{k}), then head.weight and head.bias.</summary>
    public ParameterSet<T> Parameters { get; } = new();

    /// <summary>The layers with the current parameters (fresh snapshots: build after each update).</summary>
    public StackedCells<TCell, T> Stack() =>
        new([.. Enumerable.Range(0, _layers).Select(k => _kind.Build(Parameters, k, k == 0 ? _d : _n, _n))]);

    /// <summary>
    /// Loss and accuracy of a batch <paramref name="inputs"/> [B, T, d] with <paramref name="labels"/> [B], and, when
    /// <paramref name="withGradient"/>, ∂loss/∂parameters. <paramref name="warmStart"/> (every layer's states, one after
    /// another, per sample: what <see cref="BatchResult{T}.Forward"/>'s layers hold) starts an iterative forward pass.
    /// </summary>
    public BatchResult<T> Evaluate(ReadOnlySpan<T> inputs, int batchSize, int length, IReadOnlyList<int> labels, SolveOptions options,
        bool withGradient, GradientOptions? gradient = null, ReadOnlySpan<T> warmStart = default)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        if (labels.Count != batchSize || labels.Any(l => l < 0 || l >= _classes))
        {
            throw new ArgumentException($"labels must hold {batchSize} classes in [0, {_classes}).", nameof(labels));
        }

        StackedCells<TCell, T> stack = Stack();
        SolveResult<T> forward = stack.Solve(inputs, batchSize, length, null, options, SplitWarmStart(stack, warmStart, batchSize, length));
        if (!forward.Converged)
        {
            throw new InvalidOperationException($"The forward solve did not converge: {forward.Message}");
        }

        T[] w = Parameters["head.weight"], bias = Parameters["head.bias"];
        var dLogits = new double[batchSize * _classes];
        double loss = 0;
        int correct = 0;
        for (int b = 0; b < batchSize; b++)
        {
            ReadOnlySpan<T> h = forward.Output(b, length - 1);
            var logits = new double[_classes];
            for (int k = 0; k < _classes; k++)
            {
                double z = double.CreateTruncating(bias[k]);
                for (int j = 0; j < _n; j++)
                {
                    z += double.CreateTruncating(w[k * _n + j]) * double.CreateTruncating(h[j]);
                }

                logits[k] = z;
            }

            double max = logits.Max(), sum = logits.Sum(z => Math.Exp(z - max));
            loss += -(logits[labels[b]] - max - Math.Log(sum)) / batchSize;
            correct += Array.IndexOf(logits, max) == labels[b] ? 1 : 0;
            for (int k = 0; k < _classes; k++)
            {
                dLogits[b * _classes + k] = (Math.Exp(logits[k] - max) / sum - (k == labels[b] ? 1 : 0)) / batchSize;
            }
        }

        if (!withGradient)
        {
            return new BatchResult<T>(loss, (double)correct / batchSize, null, forward, null);
        }

        // ∂loss/∂output: Wᵀ ∂logits at the last step, zero elsewhere; the head's own gradient is ∂logits ⊗ h_T.
        ParameterSet<T> grads = Parameters.ZerosLike();
        var cotangent = new T[batchSize * length * _n];
        T[] gw = grads["head.weight"], gb = grads["head.bias"];
        for (int b = 0; b < batchSize; b++)
        {
            ReadOnlySpan<T> h = forward.Output(b, length - 1);
            for (int k = 0; k < _classes; k++)
            {
                T dz = T.CreateTruncating(dLogits[b * _classes + k]);
                gb[k] += dz;
                for (int j = 0; j < _n; j++)
                {
                    gw[k * _n + j] += dz * h[j];
                    cotangent[((b * length) + length - 1) * _n + j] += dz * w[k * _n + j];
                }
            }
        }

        GradientResult<T> g = stack.Gradient(inputs, batchSize, length, cotangent, null, options, gradient, forward);
        for (int k = 0; k < _layers; k++)
        {
            _kind.Scatter(g.LayerParameterGradients[k], grads, k);
        }

        return new BatchResult<T>(loss, (double)correct / batchSize, grads, forward, g.Adjoint);
    }

    /// <summary>Each sample's states for every layer, one after another: what a <see cref="WarmStarts{T}"/> should store.</summary>
    public static T[] Trajectories(SolveResult<T> forward, int batchSize)
    {
        ArgumentNullException.ThrowIfNull(forward);
        IReadOnlyList<SolveResult<T>> layers = forward.Layers ?? [forward];
        int length = forward.Length, per = layers.Sum(l => length * l.StateSize);
        var all = new T[batchSize * per];
        for (int b = 0; b < batchSize; b++)
        {
            int offset = b * per;
            foreach (SolveResult<T> l in layers)
            {
                l.States.AsSpan(b * length * l.StateSize, length * l.StateSize).CopyTo(all.AsSpan(offset));
                offset += length * l.StateSize;
            }
        }

        return all;
    }

    /// <summary>The per-sample, all-layer trajectory length <see cref="Trajectories"/> writes.</summary>
    public int TrajectoryLength(int length) => Stack().Layers.Sum(l => length * l.StateSize);

    private static T[][]? SplitWarmStart(StackedCells<TCell, T> stack, ReadOnlySpan<T> warm, int batchSize, int length)
    {
        if (warm.IsEmpty)
        {
            return null;
        }

        int per = stack.Layers.Sum(l => length * l.StateSize);
        Require.Length(warm, (long)batchSize * per, "warmStart", $"[{batchSize}, {per}]");
        var split = new T[stack.Layers.Count][];
        int offset = 0;
        for (int k = 0; k < split.Length; k++)
        {
            int size = length * stack.Layers[k].StateSize;
            split[k] = new T[batchSize * size];
            for (int b = 0; b < batchSize; b++)
            {
                warm.Slice(b * per + offset, size).CopyTo(split[k].AsSpan(b * size));
            }

            offset += size;
        }

        return split;
    }
}

/// <summary>A one-layer GRU classifier: <see cref="SequenceClassifier{TLayers, TCell, T}"/> with <see cref="GruLayers{T}"/>.</summary>
public sealed class GruClassifier<T> : SequenceClassifier<GruLayers<T>, GruCell<T>, T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Creates the model with PyTorch-style random initialisation from <paramref name="random"/>.</summary>
    public GruClassifier(int inputSize, int hiddenSize, int classes, Random random)
        : base(inputSize, hiddenSize, 1, classes, random)
    {
    }
}
