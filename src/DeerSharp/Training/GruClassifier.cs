using System.Numerics;
using DeerSharp.Cells;

namespace DeerSharp.Training;

/// <summary>What one evaluation of a batch gave: loss, accuracy, gradients, and what the forward solve did.</summary>
public sealed record BatchResult<T>(double Loss, double Accuracy, ParameterSet<T>? Gradients, SolveResult<T> Forward, AdjointMethod? Adjoint)
    where T : unmanaged, IFloatingPointIeee754<T>;

/// <summary>
/// A sequence classifier: a one-layer GRU (PyTorch's equations) over the whole sequence, then a linear head on the
/// last hidden state, trained with softmax cross-entropy. The forward pass is any <see cref="SolveMethod"/>; the
/// gradient is the exact adjoint (reference §7), so DEER and BPTT training follow the same loss curve.
/// </summary>
public sealed class GruClassifier<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly int _d, _n, _classes;

    /// <summary>Creates the model with PyTorch-style random initialisation from <paramref name="random"/> (seed it for reproducible runs).</summary>
    public GruClassifier(int inputSize, int hiddenSize, int classes, Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 2);
        _d = inputSize;
        _n = hiddenSize;
        _classes = classes;
        RecurrentWeights<T> w = RecurrentWeights<T>.Random(3, hiddenSize, inputSize, random);
        Parameters.Add("weight_ih_l0", w.WeightIH, 3 * hiddenSize, inputSize);
        Parameters.Add("weight_hh_l0", w.WeightHH, 3 * hiddenSize, hiddenSize);
        Parameters.Add("bias_ih_l0", w.BiasIH, 3 * hiddenSize);
        Parameters.Add("bias_hh_l0", w.BiasHH, 3 * hiddenSize);
        double bound = 1 / Math.Sqrt(hiddenSize);
        T[] Draw(int count) => [.. Enumerable.Range(0, count).Select(_ => T.CreateTruncating((random.NextDouble() * 2 - 1) * bound))];
        Parameters.Add("head.weight", Draw(classes * hiddenSize), classes, hiddenSize);
        Parameters.Add("head.bias", Draw(classes), classes);
    }

    /// <summary>The parameters, in PyTorch's naming (weight_ih_l0 … head.bias).</summary>
    public ParameterSet<T> Parameters { get; } = new();

    /// <summary>The GRU cell with the current parameters (a fresh snapshot: build after each update).</summary>
    public GruCell<T> Cell() => new(new RecurrentWeights<T>(3, _n, _d, Parameters["weight_ih_l0"], Parameters["weight_hh_l0"],
        Parameters["bias_ih_l0"], Parameters["bias_hh_l0"]));

    /// <summary>
    /// Loss and accuracy of a batch <paramref name="inputs"/> [B, T, d] with <paramref name="labels"/> [B], and, when
    /// <paramref name="withGradient"/>, ∂loss/∂parameters. <paramref name="warmStart"/> ([B, T, n], or empty) starts an
    /// iterative forward pass.
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

        GruCell<T> cell = Cell();
        SolveResult<T> forward = Solvers.Solver.Solve(cell, inputs, batchSize, length, default, warmStart, options);
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
            ReadOnlySpan<T> h = forward.State(b, length - 1);
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

        // ∂loss/∂h_T = Wᵀ ∂logits at the last step, zero elsewhere; the head's own gradient is ∂logits ⊗ h_T.
        ParameterSet<T> grads = Parameters.ZerosLike();
        var cotangent = new T[batchSize * length * _n];
        T[] gw = grads["head.weight"], gb = grads["head.bias"];
        for (int b = 0; b < batchSize; b++)
        {
            ReadOnlySpan<T> h = forward.State(b, length - 1);
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

        var adjoint = Solvers.Adjoint.Gradient(cell, inputs, batchSize, length, cotangent, default, options, gradient, solved: forward);
        var (gih, ghh, gbi, gbh) = cell.Weights.SplitGradient(adjoint.Parameters);
        gih.CopyTo(grads["weight_ih_l0"], 0);
        ghh.CopyTo(grads["weight_hh_l0"], 0);
        gbi.CopyTo(grads["bias_ih_l0"], 0);
        gbh.CopyTo(grads["bias_hh_l0"], 0);
        return new BatchResult<T>(loss, (double)correct / batchSize, grads, forward, adjoint.Method);
    }
}
