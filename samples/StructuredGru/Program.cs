// Trains a diagonal GRU (DiagonalGruCell: W_hh in k×k blocks, k = 1 by default) and a dense GRU (GruCell) of the same
// hidden size on the same task, from the same seed, both with DEER forward passes and the adjoint scan. The diagonal
// GRU's Newton step is exact at the cost of a diagonal (or k×k block) scan; the dense GRU's costs O(n³) per step.
// Prints both loss curves, the Newton iterations of every step, the time per step, and held-out accuracy.
//
//   dotnet run -c Release --project samples/StructuredGru -- [--length 4000] [--steps 40] [--batch 8] [--hidden 16] [--block 1]
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using DeerSharp;
using DeerSharp.Cells;
using DeerSharp.Samples;
using DeerSharp.Training;

Option<int> lengthOption = SampleCommand.Int("--length", "Sequence length T", 4000, 2);
Option<int> stepsOption = SampleCommand.Int("--steps", "Adam steps", 40, 2);
Option<int> batchOption = SampleCommand.Int("--batch", "Sequences per step", 8, 1);
Option<int> hiddenOption = SampleCommand.Int("--hidden", "Hidden size of both GRUs", 16, 1);
Option<int> blockOption = SampleCommand.Int("--block", "Block size k of the diagonal GRU's W_hh; divides --hidden", 1, 1);
if (SampleCommand.Parse("structured-gru", "Trains a diagonal GRU and a dense GRU with DEER on the same task and compares them.", args,
        [lengthOption, stepsOption, batchOption, hiddenOption, blockOption], out ParseResult parsed) is int exit)
{
    return exit;
}

int length = parsed.GetValue(lengthOption), steps = parsed.GetValue(stepsOption), batch = parsed.GetValue(batchOption), hidden = parsed.GetValue(hiddenOption);
int block = parsed.GetValue(blockOption);
if (hidden % block != 0)
{
    Console.Error.WriteLine($"structured-gru: --block {block} must divide --hidden {hidden} (see --help).");
    return 2;
}
const int Seed = 2024, Classes = FrequencyBands.Classes;
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"Diagonal GRU (k = {block}) against dense GRU, hidden {hidden}, {Classes} frequency bands, T = {length:N0}, batch {batch}, {steps} Adam steps, float64, {Environment.ProcessorCount} cores, seed {Seed}."));
Console.WriteLine("Both: DEER forward (exact Newton; block scan for the diagonal GRU, dense scan for the GRU), adjoint scan, warm-started per sample.");
Console.WriteLine();

var diagonal = new SequenceClassifier<DiagonalGruLayers<double>, DiagonalGruCell<double>, double>(new DiagonalGruLayers<double>(block), 1, hidden, 1, Classes, new Random(Seed));
var dense = new GruClassifier<double>(1, hidden, Classes, new Random(Seed));
var diagonalAdam = new Adam<double>(diagonal.Parameters.Arrays, learningRate: 0.04);
var denseAdam = new Adam<double>(dense.Parameters.Arrays, learningRate: 0.04);
WarmStarts<double> diagonalWarm = new(), denseWarm = new();
double diagonalSeconds = 0, denseSeconds = 0;
int diagonalIterations = 0, denseIterations = 0;
Console.WriteLine($"{"step",4} {"loss (diagonal)",16} {"loss (dense)",13} {"iterations",11} {"iterations",11} {"diagonal ms",12} {"dense ms",9}");
for (int step = 0; step < steps; step++)
{
    // A fixed pool of 4 batches, cycled, so warm starts have a previous trajectory to start from.
    int pool = step % 4;
    var (x, labels) = FrequencyBands.Batch(new Random(Seed + 100 + pool), batch, length);
    int[] ids = [.. Enumerable.Range(pool * batch, batch)];
    (BatchResult<double> d, double dms) = Train(diagonal, diagonalAdam, diagonalWarm, x, labels, ids);
    (BatchResult<double> g, double gms) = Train(dense, denseAdam, denseWarm, x, labels, ids);

    // The first step carries JIT compilation on both sides: it is shown but not timed.
    if (step > 0)
    {
        diagonalSeconds += dms / 1000;
        denseSeconds += gms / 1000;
    }

    diagonalIterations += d.Forward.Iterations;
    denseIterations += g.Forward.Iterations;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{step,4} {d.Loss,16:F6} {g.Loss,13:F6} {d.Forward.Iterations,11} {g.Forward.Iterations,11} {dms,12:F0} {gms,9:F0}"));
}

var (testX, testLabels) = FrequencyBands.Batch(new Random(Seed + 999), 4 * batch, length);
var loop = new SolveOptions { Method = SolveMethod.Sequential };
double diagonalAccuracy = diagonal.Evaluate(testX, 4 * batch, length, testLabels, loop, withGradient: false).Accuracy;
double denseAccuracy = dense.Evaluate(testX, 4 * batch, length, testLabels, loop, withGradient: false).Accuracy;
int timed = Math.Max(1, steps - 1);
Console.WriteLine();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"Held-out accuracy on {4 * batch} fresh signals (chance {1.0 / Classes:P0}): diagonal GRU {diagonalAccuracy:P0}, dense GRU {denseAccuracy:P0}."));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"Newton iterations per step on average: diagonal {(double)diagonalIterations / steps:F1}, dense {(double)denseIterations / steps:F1}."));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"Wall time per step (steps 1-{steps - 1}): diagonal {diagonalSeconds / timed * 1000:F0} ms, dense {denseSeconds / timed * 1000:F0} ms ({denseSeconds / Math.Max(1e-9, diagonalSeconds):F2}x)."));
return 0;

static (BatchResult<double> Result, double Milliseconds) Train<TLayers, TCell>(SequenceClassifier<TLayers, TCell, double> model, Adam<double> adam,
    WarmStarts<double> warm, double[] x, int[] labels, int[] ids)
    where TLayers : struct, ILayerKind<TCell, double>
    where TCell : IDifferentiableCell<double>
{
    int length = x.Length / labels.Length;
    long start = Stopwatch.GetTimestamp();
    BatchResult<double> r = model.Evaluate(x, labels.Length, length, labels, new SolveOptions { Method = SolveMethod.Deer, AbsoluteTolerance = 1e-10, RelativeTolerance = 1e-10 },
        withGradient: true, new GradientOptions { Adjoint = AdjointMethod.Scan }, warm.Batch(ids, model.TrajectoryLength(length)));
    GradientClipping.ClipByGlobalNorm(r.Gradients!.Arrays, 1.0);
    adam.Step(r.Gradients.Arrays);
    warm.Store(ids, SequenceClassifier<TLayers, TCell, double>.Trajectories(r.Forward, labels.Length));
    return (r, Stopwatch.GetElapsedTime(start).TotalMilliseconds);
}

