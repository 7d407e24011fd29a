namespace DeerSharp.Training;

/// <summary>What one training evaluation gave: the batch's mean loss, its accuracy, and ∂loss/∂parameters when asked.</summary>
public sealed record TrainingStepResult(double Loss, double Accuracy, ParameterSet<float>? Gradients);

/// <summary>
/// Trains a GILR-LSTM <see cref="SequenceClassifier{TLayers, TCell, T}"/> on one-hot inputs at the machine's speed:
/// float32, the sequence walked in chunks of <see cref="ChunkSteps"/> steps, forward and backward fused per chunk, the
/// first layer's projection a gather, the samples of a batch spread across cores (one workspace each, reused).
/// </summary>
/// <remarks>
/// <para>Memory: a GILR-LSTM at a million steps cannot keep its activations (2 layers × 13 rows of the padded hidden size
/// per step: 18 GB at batch 16, hidden 16). The forward pass keeps only each layer's h~ and c at every chunk's start
/// (2·np floats per layer and chunk); the backward pass walks the chunks from the last, recomputes one chunk's forward
/// from its checkpoint, and walks it back. That costs one more forward pass and keeps the working rows in L2.</para>
/// <para>The gradient is the same as <see cref="SequenceClassifier{TLayers, TCell, T}.Evaluate"/>'s (the exact adjoint of
/// the same equations, in a different summation order); the tests compare the two, and both against finite differences.</para>
/// </remarks>
public sealed class GilrLstmTrainer
{
    private readonly SequenceClassifier<GilrLstmLayers<float>, GilrLstmCell<float>, float> _model;
    private readonly GilrLstmPacked[] _layers;
    private readonly int _lanes;
    private GilrLstmWorker[] _workers = [];
    private float[] _checkpoints = [];

    /// <summary>Trains <paramref name="model"/> (its parameters are read at every call, so updates between calls count).</summary>
    /// <param name="model">The classifier; its first layer reads the one-hot inputs.</param>
    /// <param name="chunkSteps">Steps per chunk: a multiple of 4, at least 4 (default 256: about 200 KB of rows per layer at hidden 16).</param>
    public GilrLstmTrainer(SequenceClassifier<GilrLstmLayers<float>, GilrLstmCell<float>, float> model, int chunkSteps = 256)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (chunkSteps < 4 || chunkSteps % 4 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(chunkSteps), chunkSteps, "chunkSteps must be a positive multiple of 4.");
        }

        _model = model;
        ChunkSteps = chunkSteps;
        _lanes = Simd512.IsAccelerated ? Simd512.Count : Simd256.Count;
        _layers = [.. Enumerable.Range(0, model.LayerCount).Select(k =>
            new GilrLstmPacked(k == 0 ? model.InputSize : model.HiddenSize, model.HiddenSize, _lanes, oneHot: k == 0))];
    }

    /// <summary>Steps per chunk.</summary>
    public int ChunkSteps { get; }

    /// <summary>The bytes a call on <paramref name="batchSize"/> sequences of <paramref name="length"/> steps allocates with <paramref name="cores"/> workers.</summary>
    public long WorkingBytes(int batchSize, int length, int cores)
    {
        long np = _layers[0].Np, chunks = (length + ChunkSteps - 1) / ChunkSteps;
        long perLayerRows = ((long)ChunkSteps * 16 + 2) * np;
        long gradients = _layers.Sum(l => (long)l.InputT.Length + l.HiddenT.Length + l.Bias.Length);
        return 4 * ((long)batchSize * chunks * _layers.Length * 2 * np + cores * (_layers.Length * perLayerRows + gradients));
    }

    /// <summary>
    /// The loss (mean softmax cross-entropy of the head on the top layer's last output), the accuracy and, when
    /// <paramref name="withGradient"/>, the gradient of every parameter of the model.
    /// </summary>
    /// <param name="inputs">The batch; its dimension must be the model's input size.</param>
    /// <param name="labels">One class per sequence.</param>
    /// <param name="withGradient">Whether to run the backward pass.</param>
    /// <param name="options">Reads <see cref="SolveOptions.MaxDegreeOfParallelism"/> and <see cref="SolveOptions.MemoryBudgetBytes"/> (default, as for a solve: half the memory the runtime reports as available).</param>
    /// <param name="cancellationToken">Checked at every chunk.</param>
    /// <exception cref="ArgumentException">The inputs or labels do not fit the model.</exception>
    /// <exception cref="InsufficientMemoryException">The checkpoints and workspaces need more than the memory budget.</exception>
    public TrainingStepResult Evaluate(OneHotSequences inputs, IReadOnlyList<int> labels, bool withGradient, SolveOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(labels);
        options ??= new SolveOptions();
        options.Validate();
        int batch = inputs.BatchSize, length = inputs.Length, classes = _model.ClassCount;
        if (inputs.Dimension != _model.InputSize)
        {
            throw new ArgumentException($"inputs has dimension {inputs.Dimension}; the model's input size is {_model.InputSize}.", nameof(inputs));
        }

        if (labels.Count != batch || labels.Any(l => l < 0 || l >= classes))
        {
            throw new ArgumentException($"labels must hold {batch} classes in [0, {classes}).", nameof(labels));
        }

        int cores = Math.Max(1, Math.Min(batch, Engines.SolverSettings<float>.Cores(options)));
        long bytes = WorkingBytes(batch, length, cores), budget = Engines.SolverSettings<float>.MemoryBudget(options);
        if (bytes > budget)
        {
            throw new InsufficientMemoryException(
                $"Training on [{batch}, {length}] needs {bytes:N0} bytes of checkpoints and workspaces; MemoryBudgetBytes is {budget:N0}. Use larger chunks or a smaller batch.");
        }

        for (int k = 0; k < _layers.Length; k++)
        {
            _layers[k].Load(_model.Parameters, k);
        }

        Prepare(batch, length, cores);
        float[] w = _model.Parameters["head.weight"], bias = _model.Parameters["head.bias"];
        var head = new Head(w, bias, _model.HiddenSize, classes, batch);
        Parallel.For(0, cores, new ParallelOptions { MaxDegreeOfParallelism = cores, CancellationToken = cancellationToken }, worker =>
        {
            GilrLstmWorker work = _workers[worker];
            work.ClearGradients();
            for (int b = worker; b < batch; b += cores)
            {
                work.Run(inputs, b, labels[b], head, withGradient, _checkpoints, cancellationToken);
            }
        });

        if (!double.IsFinite(head.Loss))
        {
            throw new ArithmeticException($"The loss is {head.Loss}: the forward pass overflowed (check the learning rate and the inputs' values).");
        }

        if (!withGradient)
        {
            return new TrainingStepResult(head.Loss, head.Accuracy, null);
        }

        ParameterSet<float> grads = _model.Parameters.ZerosLike();
        foreach (GilrLstmWorker work in _workers.Take(cores))
        {
            work.Scatter(grads);
        }

        head.Scatter(grads);
        return new TrainingStepResult(head.Loss, head.Accuracy, grads);
    }

    private void Prepare(int batch, int length, int cores)
    {
        if (_workers.Length < cores)
        {
            _workers = [.. _workers, .. Enumerable.Range(0, cores - _workers.Length).Select(_ => new GilrLstmWorker(_layers, ChunkSteps, _lanes))];
        }

        long need = (long)batch * ((length + ChunkSteps - 1) / ChunkSteps) * _layers.Length * 2 * _layers[0].Np;
        if (_checkpoints.LongLength != need)
        {
            _checkpoints = new float[need];
        }
    }
}
