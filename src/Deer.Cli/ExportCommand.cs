using System.CommandLine;
using System.Globalization;
using DeerSharp.IO;
using DeerSharp.Onnx;

namespace DeerSharp.Cli;

/// <summary>
/// `deer export --cell gru|lstm|rnn --weights w.safetensors --out m.onnx`: a PyTorch module's state_dict (every layer,
/// both directions of a bidirectional one) as the ONNX model torch.onnx.export would write, for ONNX Runtime or any
/// other ONNX server (<see cref="OnnxExport"/>).
/// </summary>
internal static class ExportCommand
{
    public static Command Create(TextWriter stdout)
    {
        var cell = new Option<string>("--cell") { Description = "The module type.", Required = true };
        cell.AcceptOnlyFromAmong("rnn", "gru", "lstm");
        var weights = new Option<string>("--weights") { Description = "The module's state_dict as safetensors (weight_ih_l{k}, ..., and the _reverse keys of a bidirectional module).", Required = true };
        var output = new Option<string>("--out") { Description = "The .onnx file to write.", Required = true };
        var prefix = new Option<string>("--prefix") { Description = "Key prefix of the module inside a larger state_dict.", DefaultValueFactory = _ => "" };
        var dtype = new Option<string?>("--dtype") { Description = "float32 or float64; defaults to the weights' type." };
        dtype.AcceptOnlyFromAmong("float32", "float64");
        var timeMajor = new Option<bool>("--time-major") { Description = "Input [T, B, d] and output [T, B, D·n] (batch_first=False); default [B, T, ·]." };
        var initial = new Option<bool>("--initial-states") { Description = "Make h0 (and c0) inputs of the model, [L·D, B, n]; without it every sequence starts from zeros." };
        var command = new Command("export", "Write a PyTorch RNN/GRU/LSTM state_dict as an ONNX model (all layers, both directions).")
        {
            cell, weights, output, prefix, dtype, timeMajor, initial,
        };
        command.SetAction(r =>
        {
            string path = r.GetValue(weights)!, destination = r.GetValue(output)!;
            RunCommand.RequireDirectory(destination, "--out");
            SafetensorsFile file = RunCommand.Wrap(path, "--weights", () => SafetensorsFile.Read(path));
            RecurrentKind kind = RunCommand.Kind(r.GetValue(cell)!);
            string key = $"{r.GetValue(prefix)}weight_ih_l0";
            bool dbl = r.GetValue(dtype) is { } t ? t == "float64" : file.Contains(key) && file.Describe(key).DType == "F64";
            (int layers, int directions, int n) = dbl
                ? Write<double>(file, kind, r.GetValue(prefix) ?? "", path, destination, !r.GetValue(timeMajor), r.GetValue(initial))
                : Write<float>(file, kind, r.GetValue(prefix) ?? "", path, destination, !r.GetValue(timeMajor), r.GetValue(initial));
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"wrote {destination}: {r.GetValue(cell)}, {layers} layer(s){(directions == 2 ? ", bidirectional" : "")}, n = {n}, {(dbl ? "float64" : "float32")}, opset 14."));
            return 0;
        });
        return command;
    }

    private static (int Layers, int Directions, int Hidden) Write<T>(SafetensorsFile file, RecurrentKind kind, string prefix, string path, string destination,
        bool batchFirst, bool initialStates)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        RecurrentWeights<T>[][] layers = RunCommand.Wrap(path, "--weights", () => TorchRecurrentWeights.LoadDirections<T>(file, kind, prefix));
        OnnxExport.Write(destination, kind, layers, batchFirst, initialStates);
        return (layers.Length, layers[0].Length, layers[0][0].HiddenSize);
    }
}
