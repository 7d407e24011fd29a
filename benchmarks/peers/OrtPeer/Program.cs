// ONNX Runtime peer for `deer bench`: runs an ONNX model with Microsoft.ML.OnnxRuntime on the CPU, as a .NET service
// would, and reports how long it took.
//
//   ort-peer --model m.onnx --inputs x.npy --out y.npy [--repeats N]
//   ort-peer --race --model m.onnx --inputs x.npy [--repeats N] [--threads K]
//
// The second form is the warm race (`deer bench --only ort`): ONNX Runtime and Deer (OnnxModel.Run, Method = Auto) on
// the same file and inputs in this one process, one warm-up each, then N interleaved rounds (which side goes first
// alternates). It prints one JSON line with both medians, their ratio and the largest difference between the outputs.
//
// Prints one JSON line: {"session_seconds": creating the InferenceSession (reading and optimising the graph),
// "first_run_seconds": the first Run, "median_seconds"/"min_seconds": N further runs (absent when N = 0),
// "processors": the logical processors it could use (ONNX Runtime's default intra-op pool is one thread per physical
// core), "ort": the package version}.
// The first graph input gets --inputs; the first output is written to --out for the bench's agreement check.
using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using DeerSharp.Peers.Ort;
using DeerSharp.IO;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

if (args.Length > 0 && args[0] == "--race")
{
    return Race.Run(args[1..]);
}

string? model = null, inputs = null, output = null;
int repeats = 0;
for (int i = 0; i + 1 < args.Length; i += 2)
{
    switch (args[i])
    {
        case "--model": model = args[i + 1]; break;
        case "--inputs": inputs = args[i + 1]; break;
        case "--out": output = args[i + 1]; break;
        case "--repeats" when int.TryParse(args[i + 1], CultureInfo.InvariantCulture, out repeats) && repeats >= 0: break;
        default:
            Console.Error.WriteLine($"ort-peer: bad option '{args[i]} {args[i + 1]}'. Usage: ort-peer --model m.onnx --inputs x.npy --out y.npy [--repeats N]");
            return 2;
    }
}

if (model is null || inputs is null || output is null || args.Length % 2 != 0)
{
    Console.Error.WriteLine("ort-peer: --model, --inputs and --out are required. Usage: ort-peer --model m.onnx --inputs x.npy --out y.npy [--repeats N]");
    return 2;
}

TensorData x = Npy.Read(inputs);
long start = Stopwatch.GetTimestamp();
using var session = new InferenceSession(model);
double sessionSeconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
string inputName = session.InputMetadata.Keys.First();
var feed = new List<NamedOnnxValue> { NamedOnnxValue.CreateFromTensor(inputName, new DenseTensor<float>(x.ToArray<float>(), [.. x.Shape])) };

start = Stopwatch.GetTimestamp();
float[] y;
int[] shape;
using (IDisposableReadOnlyCollection<DisposableNamedOnnxValue> first = session.Run(feed))
{
    Tensor<float> t = first[0].AsTensor<float>();
    y = [.. t];
    shape = [.. t.Dimensions];
}

double firstSeconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
var times = new List<double>();
for (int r = 0; r < repeats; r++)
{
    start = Stopwatch.GetTimestamp();
    using IDisposableReadOnlyCollection<DisposableNamedOnnxValue> results = session.Run(feed);
    times.Add(Stopwatch.GetElapsedTime(start).TotalSeconds);
}

Npy.Write(output, TensorData.FromSingle(y, shape));
times.Sort();
string version = typeof(InferenceSession).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "?";
var c = CultureInfo.InvariantCulture;
string warm = times.Count == 0 ? "" : string.Create(c, $", \"median_seconds\": {times[times.Count / 2]:R}, \"min_seconds\": {times[0]:R}");
int threads = Environment.ProcessorCount;
Console.WriteLine(string.Create(c, $"{{\"session_seconds\": {sessionSeconds:R}, \"first_run_seconds\": {firstSeconds:R}{warm}, \"processors\": {threads}, \"ort\": \"{version}\"}}"));
return 0;
