using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using DeerSharp.IO;
using DeerSharp.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace DeerSharp.Peers.Ort;

/// <summary>ONNX Runtime against Deer on one model, warm, in one process, interleaved rounds.</summary>
internal static class Race
{

    public static int Run(string[] args)
    {
        string? model = null, inputs = null;
        int repeats = 9, threads = Environment.ProcessorCount, settle = 30;
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            bool ok = args[i] switch
            {
                "--model" => (model = args[i + 1]) is not null,
                "--inputs" => (inputs = args[i + 1]) is not null,
                "--repeats" => int.TryParse(args[i + 1], CultureInfo.InvariantCulture, out repeats) && repeats >= 1,
                "--threads" => int.TryParse(args[i + 1], CultureInfo.InvariantCulture, out threads) && threads >= 1,
                "--settle-ms" => int.TryParse(args[i + 1], CultureInfo.InvariantCulture, out settle) && settle >= 0,
                _ => false,
            };
            if (!ok)
            {
                Console.Error.WriteLine($"ort-peer --race: bad option '{args[i]} {args[i + 1]}'. Usage: ort-peer --race --model m.onnx --inputs x.npy [--repeats N] [--threads K] [--settle-ms MS]");
                return 2;
            }
        }

        if (model is null || inputs is null || args.Length % 2 != 0)
        {
            Console.Error.WriteLine("ort-peer --race: --model and --inputs are required.");
            return 2;
        }

        TensorData x = Npy.Read(inputs);
        float[] xs = x.ToArray<float>();
        using var options = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1 };
        using var session = new InferenceSession(model, options);
        string inputName = session.InputMetadata.Keys.First();
        var feed = new List<NamedOnnxValue> { NamedOnnxValue.CreateFromTensor(inputName, new DenseTensor<float>(xs, [.. x.Shape])) };
        OnnxModel deer = OnnxModel.Load(model);
        var deerInputs = new Dictionary<string, TensorData> { [deer.Inputs[0].Name] = x };
        var solve = new SolveOptions { Method = SolveMethod.Auto };

        float[] ortOut = [], deerOut = [];
        string method = "?";
        // Each timed call starts after a short pause, so that neither engine's worker threads (ONNX Runtime's spin after a
        // Run by default) are still busy on the other core when the other engine starts.
        double Ort()
        {
            Thread.Sleep(settle);
            long start = Stopwatch.GetTimestamp();
            using IDisposableReadOnlyCollection<DisposableNamedOnnxValue> results = session.Run(feed);
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            ortOut = [.. results[0].AsTensor<float>()];
            return seconds;
        }

        double Deer()
        {
            Thread.Sleep(settle);
            long start = Stopwatch.GetTimestamp();
            using OnnxRunResult run = deer.Run(deerInputs, solve);   // disposed as ONNX Runtime's results are: its arrays go back to the model
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            deerOut = run.Outputs[deer.Outputs[0].Name].ToArray<float>();
            method = run.Solves[0].Method.ToString();
            return seconds;
        }

        Ort();
        Deer();
        var ort = new List<double>();
        var ours = new List<double>();
        for (int r = 0; r < repeats; r++)
        {
            if (r % 2 == 0)
            {
                ort.Add(Ort());
                ours.Add(Deer());
            }
            else
            {
                ours.Add(Deer());
                ort.Add(Ort());
            }
        }

        double diff = ortOut.Length == deerOut.Length ? ortOut.Zip(deerOut, (a, b) => Math.Abs((double)a - b)).DefaultIfEmpty(0).Max() : double.PositiveInfinity;
        ort.Sort();
        ours.Sort();
        string version = typeof(InferenceSession).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "?";
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{{\"ort_median_seconds\": {ort[repeats / 2]:R}, \"ort_min_seconds\": {ort[0]:R}, \"deer_median_seconds\": {ours[repeats / 2]:R}, \"deer_min_seconds\": {ours[0]:R}, \"ort_over_deer\": {ort[repeats / 2] / ours[repeats / 2]:R}, \"max_abs_diff\": {diff:R}, \"deer_method\": \"{method}\", \"ort_threads\": {threads}, \"ort\": \"{version}\"}}"));
        return 0;
    }
}
