using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using DeerSharp.Cli.Bench;
using DeerSharp.IO;
using DeerSharp.Onnx;

namespace DeerSharp.Cli;

/// <summary>
/// `deer demo`: evaluates a random GRU with every method and prints, per method, the iterations, the largest
/// difference from the sequential loop, the checked residual and the wall time.
/// </summary>
internal static class DemoCommand
{
    private static readonly SolveMethod[] Methods = [SolveMethod.Sequential, SolveMethod.Deer, SolveMethod.QuasiDeer, SolveMethod.Picard];

    public static Command Create(TextWriter stdout)
    {
        var hidden = new Option<int>("--hidden") { Description = "Hidden size n of the GRU.", DefaultValueFactory = _ => 16 };
        var input = new Option<int>("--input") { Description = "Input size d.", DefaultValueFactory = _ => 4 };
        var length = new Option<int>("--length") { Description = "Sequence length T.", DefaultValueFactory = _ => 100_000 };
        var dtype = new Option<string>("--dtype") { Description = "Element type.", DefaultValueFactory = _ => "float32" };
        dtype.AcceptOnlyFromAmong("float32", "float64");
        var seed = new Option<int>("--seed") { Description = "Random seed for weights and inputs.", DefaultValueFactory = _ => 2024 };
        var onnx = new Option<string?>("--onnx") { Description = "Where to keep the demo's ONNX model (default: a temporary file, deleted after)." };
        var command = new Command("demo", "Evaluate a random GRU with every method and compare each with the sequential loop; then export it as ONNX and run the model back.")
        {
            hidden, input, length, dtype, seed, onnx,
        };
        command.SetAction(result =>
        {
            int n = result.GetValue(hidden), d = result.GetValue(input), t = result.GetValue(length), s = result.GetValue(seed);
            if (n < 1 || d < 1 || t < 1)
            {
                throw new UsageException($"demo: --hidden, --input and --length must be at least 1 (got {n}, {d}, {t}).");
            }

            string? keep = result.GetValue(onnx);
            if (keep is not null)
            {
                RunCommand.RequireDirectory(keep, "--onnx");
            }

            return result.GetValue(dtype) == "float64" ? Run<double>(stdout, n, d, t, s, keep) : Run<float>(stdout, n, d, t, s, keep);
        });
        return command;
    }

    private static int Run<T>(TextWriter stdout, int n, int d, int length, int seed, string? onnx)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(seed);
        var cell = GruCell<T>.Random(d, n, random);
        var x = new T[length, d];
        for (int t = 0; t < length; t++)
        {
            for (int i = 0; i < d; i++)
            {
                x[t, i] = T.CreateTruncating(random.NextDouble() * 2 - 1);
            }
        }

        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"GRU, hidden {n}, input {d}, T = {length:N0}, {typeof(T).Name}, {Environment.ProcessorCount} core(s), random weights (PyTorch init) and inputs in [-1, 1], seed {seed}."));

        // JIT every path on a short sequence first, so the timings below are of the solves alone.
        foreach (SolveMethod m in Methods)
        {
            Deer.Solve(cell, new T[Math.Min(length, 64), d], new SolveOptions { Method = m });
        }

        SolveResult<T>? reference = null;
        bool allAgree = true;
        stdout.WriteLine();
        stdout.WriteLine($"{"method",-11} {"iterations",10} {"converged",9} {"max |h - h_seq|",16} {"residual",10} {"time (ms)",10} {"vs sequential",13}");
        foreach (SolveMethod m in Methods)
        {
            var clock = Stopwatch.StartNew();
            SolveResult<T> r = Deer.Solve(cell, x, new SolveOptions { Method = m });
            clock.Stop();
            reference ??= r;
            double diff = BenchCommand.MaxDiff(r.States, reference.States);
            allAgree &= r.Converged && diff <= 1e-4;
            double speed = reference.Elapsed.TotalMilliseconds / r.Elapsed.TotalMilliseconds;
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{MethodNames.Name(m),-11} {r.Iterations,10} {(r.Converged ? "yes" : "NO"),9} {diff,16:0.00e+00} {r.MaxResidual,10:0.00e+00} {r.Elapsed.TotalMilliseconds,10:F1} {speed,12:F2}x"));
            if (!r.Converged)
            {
                stdout.WriteLine($"  {r.Message}");
            }
        }

        allAgree &= Onnx(stdout, cell, x, reference!, onnx);
        stdout.WriteLine();
        stdout.WriteLine(allAgree
            ? "Every method converged (residual checked on its final states) and agrees with the sequential loop to 1e-4, and so does the ONNX model."
            : "Some method did not converge or differs from the sequential loop by more than 1e-4: see the rows above.");
        stdout.WriteLine("Times are one wall-clock run each on this machine; for speed comparisons use the benchmarks.");
        return allAgree ? 0 : 1;
    }

    /// <summary>
    /// The same GRU written as an ONNX model (the graph torch.onnx.export writes for nn.GRU), loaded back and run on the
    /// same inputs: the path of a model trained in PyTorch and shipped as ONNX.
    /// </summary>
    private static bool Onnx<T>(TextWriter stdout, GruCell<T> cell, T[,] x, SolveResult<T> reference, string? keep)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        string path = keep ?? Path.Combine(Path.GetTempPath(), $"deer-demo-{Environment.ProcessId}.onnx");
        try
        {
            int length = x.GetLength(0), d = x.GetLength(1);
            OnnxExport.Write(path, RecurrentKind.Gru, [[cell.Weights]]);
            OnnxModel model = OnnxModel.Load(path);
            T[] flat = new T[length * d];
            Buffer.BlockCopy(x, 0, flat, 0, flat.Length * Unsafe.SizeOf<T>());
            OnnxRunResult run = model.Run(new Dictionary<string, TensorData> { ["input"] = TensorData.From(flat, 1, length, d) },
                new SolveOptions { Method = SolveMethod.Deer });
            double diff = BenchCommand.MaxDiff(run.Outputs["output"].ToArray<T>(), reference.States);
            stdout.WriteLine();
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"ONNX: wrote the GRU as {(keep ?? "a temporary .onnx file")} (opset 14, {model.RecurrentLayers.Count} GRU node), loaded it back and ran it with {MethodNames.Name(run.Solves[0].Method)} ({run.Solves[0].Iterations} iterations): {run.Elapsed.TotalMilliseconds:F1} ms, max |output - h_seq| {diff:0.00e+00}."));
            return run.Converged && diff <= 1e-4;
        }
        finally
        {
            if (keep is null)
            {
                File.Delete(path);
            }
        }
    }
}
