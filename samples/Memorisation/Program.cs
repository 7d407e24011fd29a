// The memorisation task (reference §10): one-hot inputs of dimension 128, the first +e1 or -e1, the answer that sign
// after the whole sequence. For each dependency length, trains a 2-layer GILR-LSTM (Martin & Cundy's linear-surrogate
// model) with GilrLstmTrainer (chunked, fused float32 forward and backward on one-hot inputs) and, as its peer, a
// 2-layer LSTM evaluated by the sequential loop on dense inputs, both with chrono-initialised gates, until 5
// consecutive minibatches are 100% correct. Prints progress (loss, accuracy, time per step, time left) and, with
// --checkpoint-dir, saves each run so that running the same command again resumes it.
//
//   dotnet run -c Release --project samples/Memorisation -- [--lengths 1024,8192] [--models gilr-lstm,lstm] [--batch 16] [--hidden 16]
//       [--max-steps 3000] [--max-minutes 20] [--checkpoint-dir DIR] [--save-every-minutes 5] [--seed 3] [--adam-epsilon 1e-16]
using System.CommandLine;
using System.Globalization;
using DeerSharp;
using DeerSharp.Cells;
using DeerSharp.Samples.Memorisation;
using DeerSharp.Samples;
using DeerSharp.Training;

var lengthsOption = new Option<string>("--lengths") { Description = "Dependency lengths, comma-separated (each at least 2)", DefaultValueFactory = _ => "1024,8192" };
lengthsOption.Validators.Add(r =>
{
    if (!TryLengths(r.GetValueOrDefault<string>() ?? "", out _))
    {
        r.AddError($"--lengths must be integers of at least 2 separated by commas; it is '{r.GetValueOrDefault<string>()}'.");
    }
});
Option<int> batchOption = SampleCommand.Int("--batch", "Sequences per minibatch", 16, 1);
Option<int> hiddenOption = SampleCommand.Int("--hidden", "Hidden size of each layer", 16, 1);
Option<int> maxStepsOption = SampleCommand.Int("--max-steps", "Most training steps per run", 3000, 1);
Option<double> maxMinutesOption = SampleCommand.Positive("--max-minutes", "Most minutes per run (a resumed run counts its earlier time)", 20);
Option<double> saveOption = SampleCommand.Positive("--save-every-minutes", "Minutes between checkpoints", 5);
Option<int> seedOption = SampleCommand.Int("--seed", "Seed of the minibatches", 3, 0);
Option<double> epsilonOption = SampleCommand.Positive("--adam-epsilon", "Adam's epsilon (the gradients that carry a long dependency are far smaller than the usual 1e-8)", 1e-16);
var checkpointOption = new Option<string?>("--checkpoint-dir") { Description = "Where to save each run's checkpoint (and resume it from)" };
var modelsOption = new Option<string>("--models") { Description = "Which models, comma-separated: gilr-lstm, lstm", DefaultValueFactory = _ => "gilr-lstm,lstm" };
modelsOption.Validators.Add(r =>
{
    string[] given = (r.GetValueOrDefault<string>() ?? "").Split(',');
    if (given.Length == 0 || given.Any(m => m is not ("gilr-lstm" or "lstm")))
    {
        r.AddError($"--models must list gilr-lstm and/or lstm, separated by commas; it is '{r.GetValueOrDefault<string>()}'.");
    }
});
if (SampleCommand.Parse("memorisation", "Trains a GILR-LSTM (scans) and an LSTM (sequential) on the memorisation task until they solve it.", args,
        [lengthsOption, modelsOption, batchOption, hiddenOption, maxStepsOption, maxMinutesOption, checkpointOption, saveOption, seedOption, epsilonOption], out ParseResult parsed) is int exit)
{
    return exit;
}

TryLengths(parsed.GetValue(lengthsOption)!, out int[] lengths);
int batch = parsed.GetValue(batchOption), hidden = parsed.GetValue(hiddenOption), maxSteps = parsed.GetValue(maxStepsOption);
double maxMinutes = parsed.GetValue(maxMinutesOption), saveEvery = parsed.GetValue(saveOption) * 60;
int seed = parsed.GetValue(seedOption);
double adamEpsilon = parsed.GetValue(epsilonOption);
string? checkpoints = parsed.GetValue(checkpointOption);
string[] models = parsed.GetValue(modelsOption)!.Split(',');

Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"Memorisation task: batch {batch}, 2 layers of hidden {hidden}, float32, Adam lr 0.01 epsilon {adamEpsilon:G3}, clip 1, chrono-initialised gates; {Environment.ProcessorCount} cores."));
Console.WriteLine($"Converged: {Memorisation.PerfectBatchesToConverge} consecutive minibatches at 100% accuracy. Limits per run: {maxSteps} steps or {maxMinutes} minutes.");
Console.WriteLine(checkpoints is null ? "No checkpoints (--checkpoint-dir to save and resume)." : $"Checkpoints in {checkpoints}, every {saveEvery / 60} minutes; the same command resumes.");
var results = new List<string>();
foreach (int length in lengths)
{
    if (models.Contains("gilr-lstm"))
    {
        results.Add(TrainGilrLstm(length));
    }

    if (models.Contains("lstm"))
    {
        results.Add(TrainLstm(length));
    }
}

Console.WriteLine();
Console.WriteLine($"{"model",-20} {"T",9} {"result",-14} {"steps",6} {"wall time (s)",14} {"s/step",8}");
results.ForEach(Console.WriteLine);
return 0;

SequenceClassifier<TLayers, TCell, float> Model<TLayers, TCell>(int length)
    where TLayers : struct, ILayerKind<TCell, float>
    where TCell : IDifferentiableCell<float>
{
    var model = new SequenceClassifier<TLayers, TCell, float>(Memorisation.Dimension, hidden, 2, 2, new Random(1));
    model.ChronoInitialize(length, new Random(2));
    return model;
}

TrainingLoop Loop(string name, string file, int length, ParameterSet<float> parameters)
{
    Console.WriteLine();
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name}, T = {length:N0}"));
    string? path = checkpoints is null ? null : Path.Combine(checkpoints, string.Create(CultureInfo.InvariantCulture, $"{file}-T{length}-B{batch}-H{hidden}-S{seed}.safetensors"));
    return new TrainingLoop(name, length, parameters, path, saveEvery, adamEpsilon);
}

string TrainGilrLstm(int length)
{
    var model = Model<GilrLstmLayers<float>, GilrLstmCell<float>>(length);
    var trainer = new GilrLstmTrainer(model);
    var (x, _) = Memorisation.SparseBatch(new Random(0), batch, length);
    return Loop("GILR-LSTM (trainer)", "gilr-lstm", length, model.Parameters).Run(data =>
    {
        int[] labels = Memorisation.Refill(data, x);
        TrainingStepResult r = trainer.Evaluate(x, labels, withGradient: true);
        return new StepOutcome(r.Loss, r.Accuracy, r.Gradients!.Arrays);
    }, maxSteps, maxMinutes, seed);
}

string TrainLstm(int length)
{
    // The dense batch is 512 bytes a step and sequence; past a quarter of the memory the runtime offers, say so and skip.
    long dense = (long)batch * length * Memorisation.Dimension * sizeof(float), offered = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
    if (dense > offered / 4)
    {
        Console.WriteLine();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"LSTM (sequential), T = {length:N0}: skipped; its dense batch needs {dense / 1e9:F1} GB, over a quarter of the {offered / 1e9:F1} GB available."));
        return string.Create(CultureInfo.InvariantCulture, $"{"LSTM (sequential)",-20} {length,9} {"skipped",-14}");
    }

    var model = Model<LstmLayers<float>, LstmCell<float>>(length);
    var options = new SolveOptions { Method = SolveMethod.Sequential };
    var gradient = new GradientOptions { Adjoint = AdjointMethod.Sequential };
    return Loop("LSTM (sequential)", "lstm", length, model.Parameters).Run(data =>
    {
        var (x, labels) = Memorisation.Batch<float>(data, batch, length);
        BatchResult<float> r = model.Evaluate(x, batch, length, labels, options, withGradient: true, gradient);
        return new StepOutcome(r.Loss, r.Accuracy, r.Gradients!.Arrays);
    }, maxSteps, maxMinutes, seed);
}

static bool TryLengths(string text, out int[] lengths)
{
    lengths = [.. text.Split(',').Select(v => int.TryParse(v, CultureInfo.InvariantCulture, out int l) ? l : -1)];
    return lengths.Length > 0 && lengths.All(l => l >= 2);
}
