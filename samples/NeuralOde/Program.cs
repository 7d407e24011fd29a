// Fits a neural ODE to trajectories of the Lotka-Volterra predator-prey system, twice from the same initialisation:
// once with DEER (forward by Newton + scans, gradient by the adjoint scan) and once with Dopri5 (forward adaptive,
// gradient by reverse-mode through its steps). Prints both loss curves and wall times and writes a figure (ScottPlot, PNG or SVG) of the true
// trajectories against both learned ones.
//
//   dotnet run -c Release --project samples/NeuralOde [-- --steps 200 --plot neural-ode.png|.svg]
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using DeerSharp;
using DeerSharp.Ode;
using DeerSharp.Samples;
using DeerSharp.Training;

var culture = CultureInfo.InvariantCulture;
Option<int> stepsOption = SampleCommand.Int("--steps", "Adam steps", 200, 1);
Option<int> batchOption = SampleCommand.Int("--batch", "Trajectories", 8, 1);
Option<int> pointsOption = SampleCommand.Int("--points", "Sample times per trajectory", 200, 2);
Option<int> hiddenOption = SampleCommand.Int("--hidden", "Width of the MLP's two hidden layers", 32, 1);
var seedOption = new Option<int>("--seed") { Description = "Random seed for the data and the initial weights", DefaultValueFactory = _ => 1 };
Option<double> lrOption = SampleCommand.Positive("--lr", "Adam's learning rate", 2e-2);
var plotOption = new Option<string>("--plot") { Description = "The figure to write (.png or .svg)", DefaultValueFactory = _ => "neural-ode.png" };
plotOption.Validators.Add(r =>
{
    string path = r.GetValueOrDefault<string>() ?? "";
    if (!path.EndsWith(".png", StringComparison.OrdinalIgnoreCase) && !path.EndsWith(".svg", StringComparison.OrdinalIgnoreCase))
    {
        r.AddError($"--plot must end in .png or .svg; it is '{path}'.");
    }
});
if (SampleCommand.Parse("neural-ode", "Fits a neural ODE to Lotka-Volterra with DEER and with Dopri5 from the same initialisation.", args,
        [stepsOption, batchOption, pointsOption, hiddenOption, seedOption, lrOption, plotOption], out ParseResult parsed) is int exit)
{
    return exit;
}

int steps = parsed.GetValue(stepsOption), batch = parsed.GetValue(batchOption), points = parsed.GetValue(pointsOption), hidden = parsed.GetValue(hiddenOption);
int seed = parsed.GetValue(seedOption);
double horizon = 3.0, learningRate = parsed.GetValue(lrOption);
string plotPath = parsed.GetValue(plotOption)!;

// Data: B trajectories of the true system from initial states around its equilibrium (3, 1.5), sampled at `points` times.
var random = new Random(seed);
double[] times = [.. Enumerable.Range(0, points).Select(i => horizon * i / (points - 1))];
double[] y0 = new double[batch * 2];
for (int b = 0; b < batch; b++)
{
    y0[2 * b] = 3.0 + (random.NextDouble() * 2 - 1) * 1.2;
    y0[2 * b + 1] = 1.5 + (random.NextDouble() * 2 - 1) * 0.8;
}

var truth = Deer.SolveOde(OdeSystems.Field<LotkaVolterra, double>(), y0, times,
    new OdeOptions { Method = OdeMethod.Dopri5, AbsoluteTolerance = 1e-10, RelativeTolerance = 1e-10 });
Console.WriteLine($"Lotka-Volterra data: {batch} trajectories × {points} times on [0, {horizon}] (Dopri5 at 1e-10).");
Console.WriteLine($"Model: MLP 2 → {hidden} → {hidden} → 2, softplus; Adam lr {learningRate}; full batch; loss = mean squared error over all points.");

var initial = MlpField<double>.Random([2, hidden, hidden, 2], 0, MlpActivation.Softplus, new Random(seed + 1));
var options = new OdeOptions { AbsoluteTolerance = 1e-7, RelativeTolerance = 1e-6, Fallback = FallbackPolicy.None };
var deerRun = Train(OdeMethod.Deer, initial, options);
var dopriRun = Train(OdeMethod.Dopri5, initial, options);

Console.WriteLine();
Console.WriteLine("step   loss (DEER)    loss (Dopri5)");
// About 15 rows, the last step always among them and never twice.
int stride = Math.Max(1, steps / 15);
foreach (int s in Enumerable.Range(0, steps).Where(s => s % stride == 0 || s == steps - 1))
{
    Console.WriteLine(string.Create(culture, $"{s,4}   {deerRun.Losses[s],12:E4}   {dopriRun.Losses[s],12:E4}"));
}

Console.WriteLine();
Console.WriteLine(string.Create(culture,
    $"wall time for {steps} steps: DEER {deerRun.Seconds:F2} s ({deerRun.Seconds / steps * 1000:F1} ms/step, mean {deerRun.Iterations / (double)steps:F1} Newton iterations, largest internal grid {deerRun.Grid}),"));
Console.WriteLine(string.Create(culture,
    $"                            Dopri5 {dopriRun.Seconds:F2} s ({dopriRun.Seconds / steps * 1000:F1} ms/step, largest step count {dopriRun.Grid - 1})."));
Console.WriteLine(string.Create(culture, $"measured speedup of DEER over Dopri5: {dopriRun.Seconds / deerRun.Seconds:F2}x on {Environment.ProcessorCount} cores."));

WritePlot(plotPath, truth.States, deerRun.Prediction, dopriRun.Prediction);
Console.WriteLine($"wrote {plotPath}: true trajectories against both learned ones (first three initial states).");
return 0;

(List<double> Losses, double Seconds, int Iterations, int Grid, double[] Prediction) Train(OdeMethod method, MlpField<double> start, OdeOptions baseOptions)
{
    var field = new MlpField<double>(start.Widths, 0, start.Activation, start.Parameters);
    double[] theta = field.Parameters.ToArray();
    var adam = new Adam<double>([theta], learningRate);
    var losses = new List<double>();
    double[] cotangent = new double[truth.States.Length];
    double[]? warm = null;
    int iterations = 0, grid = 0;
    var clock = Stopwatch.StartNew();
    var o = baseOptions with { Method = method };
    for (int step = 0; step < steps; step++)
    {
        theta.CopyTo(field.Parameters);
        double loss = 0;
        // One forward solve per step: the loss's cotangent is computed from the solution OdeGradient passes in.
        var gradient = Deer.OdeGradient(field, y0, times, solution =>
        {
            if (!solution.Converged)
            {
                throw new InvalidOperationException($"{method} failed at step {step}: {solution.Message}");
            }

            for (int i = 0; i < cotangent.Length; i++)
            {
                double d = solution.States[i] - truth.States[i];
                loss += d * d;
                cotangent[i] = 2 * d / cotangent.Length;
            }

            return cotangent;
        }, o, default, warm);
        losses.Add(loss / cotangent.Length);
        iterations += gradient.Forward.Iterations;
        grid = Math.Max(grid, gradient.Forward.InternalGridSize);
        // DEER starts each step from the previous step's trajectory (a warm start); Dopri5 has no use for one.
        warm = method == OdeMethod.Deer ? gradient.Forward.States : null;
        adam.Step([gradient.ParameterGradient]);
    }

    theta.CopyTo(field.Parameters);
    double[] prediction = Deer.SolveOde(field, y0, times, o).States;
    return (losses, clock.Elapsed.TotalSeconds, iterations, grid, prediction);
}

void WritePlot(string path, double[] trueStates, double[] deerStates, double[] dopriStates)
{
    // ScottPlot: one colour per species (prey, predator), one line pattern per model (truth solid, the DEER-trained model
    // dashed, the Dopri5-trained one dotted), for the first three initial states. The legend lists both colours and all
    // three patterns.
    var plot = new ScottPlot.Plot();
    ScottPlot.Color[] colours = [ScottPlot.Palette.Default.GetColor(0), ScottPlot.Palette.Default.GetColor(1)];
    int shown = Math.Min(3, batch);
    for (int b = 0; b < shown; b++)
    {
        for (int c = 0; c < 2; c++)
        {
            Line(trueStates, b, c, colours[c], ScottPlot.LinePattern.Solid);
            Line(deerStates, b, c, colours[c], ScottPlot.LinePattern.Dashed);
            Line(dopriStates, b, c, colours[c], ScottPlot.LinePattern.Dotted);
        }
    }

    string[] labels = ["prey", "predator", "truth (solid)", "DEER-trained (dashed)", "Dopri5-trained (dotted)"];
    ScottPlot.LinePattern[] patterns = [ScottPlot.LinePattern.Solid, ScottPlot.LinePattern.Solid, ScottPlot.LinePattern.Solid, ScottPlot.LinePattern.Dashed, ScottPlot.LinePattern.Dotted];
    for (int k = 0; k < labels.Length; k++)
    {
        plot.Legend.ManualItems.Add(new ScottPlot.LegendItem
        {
            LabelText = labels[k], LineColor = k < 2 ? colours[k] : ScottPlot.Colors.Black, LinePattern = patterns[k], LineWidth = 1.5f,
        });
    }

    plot.Title($"Neural ODE fitted to Lotka-Volterra ({shown} initial states)");
    plot.XLabel("t");
    plot.YLabel("y");
    plot.ShowLegend(ScottPlot.Alignment.UpperRight);
    if (path.EndsWith(".svg", StringComparison.OrdinalIgnoreCase))
    {
        plot.SaveSvg(path, 900, 520);
    }
    else
    {
        plot.SavePng(path, 900, 520);
    }

    void Line(double[] states, int b, int c, ScottPlot.Color colour, ScottPlot.LinePattern pattern)
    {
        double[] ys = [.. Enumerable.Range(0, points).Select(i => states[((b * points) + i) * 2 + c])];
        var line = plot.Add.ScatterLine(times, ys, colour);
        line.LinePattern = pattern;
        line.LineWidth = 1.5f;
    }
}
