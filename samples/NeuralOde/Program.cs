// Fits a neural ODE to trajectories of the Lotka-Volterra predator-prey system, twice from the same initialisation:
// once with DEER (forward by Newton + scans, gradient by the adjoint scan) and once with Dopri5 (forward adaptive,
// gradient by reverse-mode through its steps). Prints both loss curves and wall times and writes an SVG of the true
// trajectories against both learned ones.
//
//   dotnet run -c Release --project samples/NeuralOde [-- --steps 200 --svg neural-ode.svg]
using System.Diagnostics;
using System.Globalization;
using System.Text;
using DeerSharp;
using DeerSharp.Ode;
using DeerSharp.Training;

var culture = CultureInfo.InvariantCulture;
int steps = 200, batch = 8, points = 200, hidden = 32, seed = 1;
double horizon = 3.0, learningRate = 2e-2;
string svgPath = "neural-ode.svg";
for (int i = 0; i + 1 < args.Length; i += 2)
{
    switch (args[i])
    {
        case "--steps": steps = int.Parse(args[i + 1], culture); break;
        case "--batch": batch = int.Parse(args[i + 1], culture); break;
        case "--points": points = int.Parse(args[i + 1], culture); break;
        case "--hidden": hidden = int.Parse(args[i + 1], culture); break;
        case "--seed": seed = int.Parse(args[i + 1], culture); break;
        case "--lr": learningRate = double.Parse(args[i + 1], culture); break;
        case "--svg": svgPath = args[i + 1]; break;
        default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
    }
}

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
for (int s = 0; s < steps; s += Math.Max(1, steps / 15))
{
    Console.WriteLine(string.Create(culture, $"{s,4}   {deerRun.Losses[s],12:E4}   {dopriRun.Losses[s],12:E4}"));
}

Console.WriteLine(string.Create(culture, $"{steps - 1,4}   {deerRun.Losses[^1],12:E4}   {dopriRun.Losses[^1],12:E4}"));
Console.WriteLine();
Console.WriteLine(string.Create(culture,
    $"wall time for {steps} steps: DEER {deerRun.Seconds:F2} s ({deerRun.Seconds / steps * 1000:F1} ms/step, mean {deerRun.Iterations / (double)steps:F1} Newton iterations, largest internal grid {deerRun.Grid}),"));
Console.WriteLine(string.Create(culture,
    $"                            Dopri5 {dopriRun.Seconds:F2} s ({dopriRun.Seconds / steps * 1000:F1} ms/step, largest step count {dopriRun.Grid - 1})."));
Console.WriteLine(string.Create(culture, $"measured speedup of DEER over Dopri5: {dopriRun.Seconds / deerRun.Seconds:F2}x on {Environment.ProcessorCount} cores."));

WriteSvg(svgPath, truth.States, deerRun.Prediction, dopriRun.Prediction);
Console.WriteLine($"wrote {svgPath}: true trajectories against both learned ones (first three initial states).");
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
        iterations += gradient.Solution.Iterations;
        grid = Math.Max(grid, gradient.Solution.InternalGridSize);
        // DEER starts each step from the previous step's trajectory (a warm start); Dopri5 has no use for one.
        warm = method == OdeMethod.Deer ? gradient.Solution.States : null;
        adam.Step([gradient.ParameterGradient]);
    }

    theta.CopyTo(field.Parameters);
    double[] prediction = Deer.SolveOde(field, y0, times, o).States;
    return (losses, clock.Elapsed.TotalSeconds, iterations, grid, prediction);
}

void WriteSvg(string path, double[] trueStates, double[] deerStates, double[] dopriStates)
{
    const int width = 900, height = 520, margin = 50;
    int shown = Math.Min(3, batch);
    double max = 0;
    foreach (double v in trueStates)
    {
        max = Math.Max(max, v);
    }

    max *= 1.1;
    var svg = new StringBuilder();
    svg.AppendLine(culture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">");
    svg.AppendLine("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    svg.AppendLine(culture, $"<text x=\"{margin}\" y=\"24\" font-size=\"15\">Neural ODE fitted to Lotka-Volterra: truth (solid), DEER-trained (dashed), Dopri5-trained (dotted)</text>");
    svg.AppendLine(culture, $"<line x1=\"{margin}\" y1=\"{height - margin}\" x2=\"{width - margin}\" y2=\"{height - margin}\" stroke=\"black\"/>");
    svg.AppendLine(culture, $"<line x1=\"{margin}\" y1=\"{margin}\" x2=\"{margin}\" y2=\"{height - margin}\" stroke=\"black\"/>");
    svg.AppendLine(culture, $"<text x=\"{width / 2}\" y=\"{height - 15}\">t (0 to {horizon})</text>");
    svg.AppendLine(culture, $"<text x=\"8\" y=\"{margin - 8}\">y (0 to {max:F1})</text>");
    string[] colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
    for (int b = 0; b < shown; b++)
    {
        for (int c = 0; c < 2; c++)
        {
            string colour = colours[(2 * b + c) % colours.Length];
            Path(trueStates, b, c, colour, "");
            Path(deerStates, b, c, colour, " stroke-dasharray=\"7 4\"");
            Path(dopriStates, b, c, colour, " stroke-dasharray=\"2 3\"");
        }
    }

    svg.AppendLine("</svg>");
    File.WriteAllText(path, svg.ToString());

    void Path(double[] states, int b, int c, string colour, string dash)
    {
        var d = new StringBuilder();
        for (int i = 0; i < points; i++)
        {
            double x = margin + (width - 2 * margin) * times[i] / horizon;
            double y = height - margin - (height - 2 * margin) * states[(b * points + i) * 2 + c] / max;
            d.Append(culture, $"{(i == 0 ? 'M' : 'L')}{x:F1},{y:F1} ");
        }

        svg.AppendLine(culture, $"<path d=\"{d}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"{dash}/>");
    }
}
