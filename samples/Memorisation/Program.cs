// The memorisation task (reference §10): one-hot inputs of dimension 128, the first +e1 or -e1, the answer that sign
// after the whole sequence. For each dependency length, trains a 2-layer GILR-LSTM (Martin & Cundy's linear-surrogate
// model: its forward pass is its scans, SolveMethod.Scan) and, as its peer, a 2-layer LSTM evaluated by the sequential
// loop, both with chrono-initialised gates, until 5 consecutive minibatches are 100% correct. Reports the training
// steps and wall time each needed, with progress while it runs.
//
//   dotnet run -c Release --project samples/Memorisation -- [--lengths 1024,8192] [--batch 16] [--hidden 16] [--max-steps 3000] [--max-minutes 20]
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using DeerSharp;
using DeerSharp.Cells;
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
Option<double> maxMinutesOption = SampleCommand.Positive("--max-minutes", "Most minutes per run", 20);
if (SampleCommand.Parse("memorisation", "Trains a GILR-LSTM (scans) and an LSTM (sequential) on the memorisation task until they solve it.", args,
        [lengthsOption, batchOption, hiddenOption, maxStepsOption, maxMinutesOption], out ParseResult parsed) is int exit)
{
    return exit;
}

TryLengths(parsed.GetValue(lengthsOption)!, out int[] lengths);
int batch = parsed.GetValue(batchOption), hidden = parsed.GetValue(hiddenOption), maxSteps = parsed.GetValue(maxStepsOption);
double maxMinutes = parsed.GetValue(maxMinutesOption);

Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"Memorisation task: batch {batch}, 2 layers of hidden {hidden}, float32, Adam lr 0.01, clip 1, chrono-initialised gates; {Environment.ProcessorCount} cores."));
Console.WriteLine($"Converged: {Memorisation.PerfectBatchesToConverge} consecutive minibatches at 100% accuracy. Limits per run: {maxSteps} steps or {maxMinutes} minutes.");
var results = new List<string>();
foreach (int length in lengths)
{
    results.Add(Train<GilrLstmLayers<float>, GilrLstmCell<float>>("GILR-LSTM (scan)", length, SolveMethod.Scan));
    results.Add(Train<LstmLayers<float>, LstmCell<float>>("LSTM (sequential)", length, SolveMethod.Sequential));
}

Console.WriteLine();
Console.WriteLine($"{"model",-20} {"T",8} {"result",-14} {"steps",6} {"wall time (s)",14} {"s/step",8}");
results.ForEach(Console.WriteLine);
return 0;

string Train<TLayers, TCell>(string name, int length, SolveMethod method)
    where TLayers : struct, ILayerKind<TCell, float>
    where TCell : IDifferentiableCell<float>
{
    var model = new SequenceClassifier<TLayers, TCell, float>(Memorisation.Dimension, hidden, 2, 2, new Random(1));
    model.ChronoInitialize(length, new Random(2));
    var adam = new Adam<float>(model.Parameters.Arrays, learningRate: 0.01);
    var data = new Random(3);
    var options = new SolveOptions { Method = method };
    var gradient = new GradientOptions { Adjoint = AdjointMethod.Sequential };
    var clock = Stopwatch.StartNew();
    int streak = 0, step = 0;
    Console.WriteLine();
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name}, T = {length:N0}"));
    for (; step < maxSteps && streak < Memorisation.PerfectBatchesToConverge && clock.Elapsed.TotalMinutes < maxMinutes; step++)
    {
        var (x, labels) = Memorisation.Batch<float>(data, batch, length);
        BatchResult<float> r = model.Evaluate(x, batch, length, labels, options, withGradient: true, gradient);
        GradientClipping.ClipByGlobalNorm(r.Gradients!.Arrays, 1.0);
        adam.Step(r.Gradients.Arrays);
        streak = r.Accuracy == 1 ? streak + 1 : 0;
        if (step % 10 == 0 || streak >= Memorisation.PerfectBatchesToConverge)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  step {step,5}  loss {r.Loss,7:F4}  accuracy {r.Accuracy,5:P0}  perfect in a row {streak}  {clock.Elapsed.TotalSeconds,7:F1} s"));
        }
    }

    bool solved = streak >= Memorisation.PerfectBatchesToConverge;
    double seconds = clock.Elapsed.TotalSeconds;
    return string.Create(CultureInfo.InvariantCulture,
        $"{name,-20} {length,8} {(solved ? "converged" : "not converged"),-14} {step,6} {seconds,14:F1} {seconds / Math.Max(1, step),8:F3}");
}

static bool TryLengths(string text, out int[] lengths)
{
    lengths = [.. text.Split(',').Select(v => int.TryParse(v, CultureInfo.InvariantCulture, out int l) ? l : -1)];
    return lengths.Length > 0 && lengths.All(l => l >= 2);
}
