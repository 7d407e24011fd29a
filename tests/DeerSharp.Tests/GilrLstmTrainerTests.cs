using DeerSharp.Cells;
using DeerSharp.Training;

namespace DeerSharp.Tests;

/// <summary>
/// The chunked GILR-LSTM trainer against the general path: the same model evaluated by
/// <see cref="SequenceClassifier{TLayers, TCell, T}.Evaluate"/> in float64 (whose gradient the gradient tests check against
/// finite differences), and its own loss against central differences.
/// </summary>
public class GilrLstmTrainerTests
{
    /// <summary>
    /// Hidden sizes below, at and past a vector (padding), lengths shorter than a chunk, a whole number of chunks and a
    /// ragged last chunk, one to three layers, one and two cores.
    /// </summary>
    [Theory]
    [InlineData(5, 1, 2, 1)]
    [InlineData(5, 37, 2, 2)]
    [InlineData(16, 32, 2, 2)]
    [InlineData(20, 29, 3, 1)]
    [InlineData(8, 9, 1, 2)]
    public void Loss_and_gradient_equal_the_general_path(int hidden, int length, int layers, int cores) => Seeded.Run(rnd =>
    {
        const int batch = 3, dimension = 11;
        var model = new SequenceClassifier<GilrLstmLayers<float>, GilrLstmCell<float>, float>(dimension, hidden, layers, 3, rnd);
        var reference = new SequenceClassifier<GilrLstmLayers<double>, GilrLstmCell<double>, double>(dimension, hidden, layers, 3, new Random(0));
        for (int k = 0; k < model.Parameters.Names.Count; k++)
        {
            float[] from = model.Parameters.Arrays[k];
            double[] to = reference.Parameters.Arrays[k];
            for (int i = 0; i < from.Length; i++)
            {
                to[i] = from[i];
            }
        }

        OneHotSequences inputs = RandomInputs(rnd, batch, length, dimension);
        int[] labels = [.. Enumerable.Range(0, batch).Select(_ => rnd.Next(3))];
        var trainer = new GilrLstmTrainer(model, chunkSteps: 8);
        TrainingStepResult fast = trainer.Evaluate(inputs, labels, withGradient: true, new SolveOptions { MaxDegreeOfParallelism = cores });
        var slow = reference.Evaluate(inputs.ToDense<double>(), batch, length, labels, new SolveOptions { Method = SolveMethod.Scan },
            withGradient: true, new GradientOptions { Adjoint = AdjointMethod.Sequential });

        // float32 against float64 over sums of tens of terms: 2e-5 of the largest value of each array, and 2e-5 on the loss.
        Assert.InRange(Math.Abs(fast.Loss - slow.Loss), 0, 2e-5 * Math.Max(1, Math.Abs(slow.Loss)));
        Assert.Equal(slow.Accuracy, fast.Accuracy);
        for (int k = 0; k < model.Parameters.Names.Count; k++)
        {
            float[] got = fast.Gradients!.Arrays[k];
            double[] want = slow.Gradients!.Arrays[k];
            double scale = Math.Max(1e-3, want.Max(Math.Abs));
            for (int i = 0; i < got.Length; i++)
            {
                Assert.True(Math.Abs(got[i] - want[i]) <= 2e-5 * scale + 1e-7,
                    $"{model.Parameters.Names[k]}[{i}]: {got[i]} against {want[i]} (scale {scale})");
            }
        }

        // The same call again reuses the workspaces and must give the same numbers.
        TrainingStepResult again = trainer.Evaluate(inputs, labels, withGradient: true, new SolveOptions { MaxDegreeOfParallelism = cores });
        Assert.Equal(fast.Loss, again.Loss);
        Assert.Equal(fast.Gradients!.Arrays.SelectMany(a => a), again.Gradients!.Arrays.SelectMany(a => a));
    });

    /// <summary>Central differences of the trainer's own float32 loss, on parameters of every array of both layers.</summary>
    [Fact]
    public void Gradient_matches_central_differences() => Seeded.Run(rnd =>
    {
        const int batch = 2, dimension = 7, hidden = 6, length = 21;
        var model = new SequenceClassifier<GilrLstmLayers<float>, GilrLstmCell<float>, float>(dimension, hidden, 2, 2, rnd);
        OneHotSequences inputs = RandomInputs(rnd, batch, length, dimension);
        int[] labels = [0, 1];
        var trainer = new GilrLstmTrainer(model, chunkSteps: 4);
        ParameterSet<float> g = trainer.Evaluate(inputs, labels, withGradient: true).Gradients!;
        foreach (string name in model.Parameters.Names)
        {
            float[] p = model.Parameters[name];
            int i = rnd.Next(p.Length);
            float keep = p[i];
            const float h = 1e-2f;
            p[i] = keep + h;
            double up = trainer.Evaluate(inputs, labels, withGradient: false).Loss;
            p[i] = keep - h;
            double down = trainer.Evaluate(inputs, labels, withGradient: false).Loss;
            p[i] = keep;
            double fd = (up - down) / (2 * h);
            // Central differences in float32 with h = 1e-2: truncation O(h²) and rounding 1e-7/h; 2e-3 absolute.
            Assert.True(Math.Abs(fd - g[name][i]) <= 2e-3 + 2e-2 * Math.Abs(fd), $"{name}[{i}]: {g[name][i]} against central difference {fd}");
        }
    });

    [Fact]
    public void Bad_inputs_name_what_is_wrong()
    {
        var model = new SequenceClassifier<GilrLstmLayers<float>, GilrLstmCell<float>, float>(4, 3, 1, 2, new Random(1));
        var trainer = new GilrLstmTrainer(model);
        var wrongDimension = new OneHotSequences(1, 3, 5, new int[3], new float[3]);
        Assert.Contains("dimension 5", Assert.Throws<ArgumentException>(() => trainer.Evaluate(wrongDimension, [0], false)).Message);
        var inputs = new OneHotSequences(1, 3, 4, new int[3], new float[3]);
        Assert.Contains("labels", Assert.Throws<ArgumentException>(() => trainer.Evaluate(inputs, [2], false)).Message);
        Assert.Contains("symbols[0, 1] is 4", Assert.Throws<ArgumentException>(() => new OneHotSequences(1, 3, 4, [0, 4, 0], new float[3])).Message);
        Assert.Contains("MemoryBudgetBytes", Assert.Throws<InsufficientMemoryException>(
            () => trainer.Evaluate(inputs, [0], false, new SolveOptions { MemoryBudgetBytes = 1000 })).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new GilrLstmTrainer(model, chunkSteps: 6));
    }

    /// <summary>The sparse memorisation batch is the dense one's draws.</summary>
    [Fact]
    public void Sparse_memorisation_batch_equals_the_dense_one() => Seeded.Run(rnd =>
    {
        int seed = rnd.Next();
        var (dense, labels) = Memorisation.Batch<float>(new Random(seed), 3, 17);
        var (sparse, sparseLabels) = Memorisation.SparseBatch(new Random(seed), 3, 17);
        Assert.Equal(labels, sparseLabels);
        Assert.Equal(dense, sparse.ToDense<float>());
        Assert.Contains(dense, v => v == -1f || v == 1f);
        // Refilling another batch's arrays with the same draws gives the same batch.
        var (other, _) = Memorisation.SparseBatch(new Random(seed ^ 0x5bd1e995), 3, 17);
        Assert.NotEqual(dense, other.ToDense<float>());
        Assert.Equal(labels, Memorisation.Refill(new Random(seed), other));
        Assert.Equal(dense, other.ToDense<float>());
    });

    private static OneHotSequences RandomInputs(Random rnd, int batch, int length, int dimension)
    {
        int[] symbols = [.. Enumerable.Range(0, batch * length).Select(_ => rnd.Next(dimension))];
        float[] values = [.. Enumerable.Range(0, batch * length).Select(_ => (float)(rnd.NextDouble() * 2 - 1))];
        return new OneHotSequences(batch, length, dimension, symbols, values);
    }
}
