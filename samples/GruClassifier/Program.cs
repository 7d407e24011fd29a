// Trains the same GRU sequence classifier twice from the same seed: once with DEER (parallel Newton forward pass and the
// adjoint scan) and once with the sequential loop and backpropagation through time. The task is generated here: noisy
// sums of two sines, 10,000 steps long, classified by the frequency band of the dominant one. Prints both loss curves
// (they agree step by step up to the forward solve's rounding: the gradient is exact either way), the wall time per
// step of each, and the speedup.
//
//   dotnet run -c Release --project samples/GruClassifier -- [--length 10000] [--steps 60] [--batch 8] [--hidden 16] [--method deer|quasi-deer]
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using DeerSharp;
using DeerSharp.Samples;
using DeerSharp.Training;

Option<int> lengthOption = SampleCommand.Int("--length", "Sequence length T", 10_000, 2);
Option<int> stepsOption = SampleCommand.Int("--steps", "Adam steps", 60, 2);
Option<int> batchOption = SampleCommand.Int("--batch", "Sequences per step", 8, 1);
Option<int> hiddenOption = SampleCommand.Int("--hidden", "GRU hidden size", 16, 1);
var methodOption = new Option<string>("--method") { Description = "The DEER side's forward method", DefaultValueFactory = _ => "deer" };
methodOption.AcceptOnlyFromAmong("deer", "quasi-deer");
if (SampleCommand.Parse("gru-classifier", "Trains a GRU classifier with DEER and with BPTT from the same seed and compares them.", args,
        [lengthOption, stepsOption, batchOption, hiddenOption, methodOption], out ParseResult parsed) is int exit)
{
    return exit;
}

int length = parsed.GetValue(lengthOption), steps = parsed.GetValue(stepsOption), batch = parsed.GetValue(batchOption), hidden = parsed.GetValue(hiddenOption);
SolveMethod method = parsed.GetValue(methodOption) == "quasi-deer" ? SolveMethod.QuasiDeer : SolveMethod.Deer;
const int Classes = FrequencyBands.Classes, Seed = 2024;
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"GRU classifier, hidden {hidden}, {Classes} frequency bands, T = {length:N0}, batch {batch}, {steps} Adam steps, float64, {Environment.ProcessorCount} cores, seed {Seed}."));
Console.WriteLine($"DEER side: forward {method}, adjoint scan, warm-started per sample. Reference side: sequential loop, BPTT.");
Console.WriteLine();

var deerModel = new GruClassifier<double>(1, hidden, Classes, new Random(Seed));
var bpttModel = new GruClassifier<double>(1, hidden, Classes, new Random(Seed));
var deerAdam = new Adam<double>(deerModel.Parameters.Arrays, learningRate: 0.04);
var bpttAdam = new Adam<double>(bpttModel.Parameters.Arrays, learningRate: 0.04);
var deerOptions = new SolveOptions { Method = method, AbsoluteTolerance = 1e-11, RelativeTolerance = 1e-11 };
var bpttOptions = new SolveOptions { Method = SolveMethod.Sequential };
var warm = new WarmStarts<double>();
var data = new Random(Seed + 1);
double deerSeconds = 0, bpttSeconds = 0, worst = 0;
int iterations = 0;
Console.WriteLine($"{"step",4} {"loss (DEER)",12} {"loss (BPTT)",12} {"|difference|",12} {"DEER ms",9} {"BPTT ms",9} {"DEER iterations",16}");
for (int step = 0; step < steps; step++)
{
    // A fixed pool of 4 batches, cycled, so warm starts have a previous trajectory to start from.
    int pool = step % 4;
    var (x, labels) = FrequencyBands.Batch(new Random(Seed + 100 + pool), batch, length);
    int[] ids = [.. Enumerable.Range(pool * batch, batch)];

    long t0 = Stopwatch.GetTimestamp();
    BatchResult<double> d = deerModel.Evaluate(x, batch, length, labels, deerOptions, withGradient: true,
        new GradientOptions { Adjoint = AdjointMethod.Scan }, warm.Batch(ids, length * hidden));
    GradientClipping.ClipByGlobalNorm(d.Gradients!.Arrays, 1.0);
    deerAdam.Step(d.Gradients.Arrays);
    warm.Store(ids, d.Forward.States);
    double deerMs = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;

    t0 = Stopwatch.GetTimestamp();
    BatchResult<double> b = bpttModel.Evaluate(x, batch, length, labels, bpttOptions, withGradient: true,
        new GradientOptions { Adjoint = AdjointMethod.Sequential });
    GradientClipping.ClipByGlobalNorm(b.Gradients!.Arrays, 1.0);
    bpttAdam.Step(b.Gradients.Arrays);
    double bpttMs = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;

    // The first step carries JIT compilation on both sides: it is shown but not timed.
    if (step > 0)
    {
        deerSeconds += deerMs / 1000;
        bpttSeconds += bpttMs / 1000;
    }

    worst = Math.Max(worst, Math.Abs(d.Loss - b.Loss));
    iterations += d.Forward.Iterations;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{step,4} {d.Loss,12:F6} {b.Loss,12:F6} {Math.Abs(d.Loss - b.Loss),12:0.0e+00} {deerMs,9:F0} {bpttMs,9:F0} {d.Forward.Iterations,16}"));
}

var (testX, testLabels) = FrequencyBands.Batch(new Random(Seed + 999), 4 * batch, length);
double accuracy = bpttModel.Evaluate(testX, 4 * batch, length, testLabels, bpttOptions, withGradient: false).Accuracy;
double deerPerStep = deerSeconds / Math.Max(1, steps - 1), bpttPerStep = bpttSeconds / Math.Max(1, steps - 1);
Console.WriteLine();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"Largest loss difference between the two runs: {worst:0.0e+00}. Both compute the exact gradient; they differ by the forward solve's rounding (residual tolerance 1e-11), which Adam carries from step to step."));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Held-out accuracy after training: {accuracy:P0} on {4 * batch} fresh signals (chance: {1.0 / Classes:P0})."));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"Wall time per step (steps 1-{steps - 1}): DEER {deerPerStep * 1000:F0} ms ({(double)iterations / steps:F1} Newton iterations on average), BPTT {bpttPerStep * 1000:F0} ms."));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"Speedup of DEER over BPTT on this machine: {bpttPerStep / deerPerStep:F2}x{(bpttPerStep < deerPerStep ? " (below 1: on few cores the sequential loop wins; see docs/benchmarks.md)" : "")}."));
return 0;

