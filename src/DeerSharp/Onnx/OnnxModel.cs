using System.Diagnostics;
using DeerSharp.IO;
using Google.Protobuf;
using Onnx;

namespace DeerSharp.Onnx;

/// <summary>A graph input or output: its name, element type and dimensions (null where symbolic, e.g. a batch axis).</summary>
/// <param name="Name">The name.</param>
/// <param name="ElementType">float32 or float64 (int64 inputs, such as sequence lengths, read as float64 tensors).</param>
/// <param name="Shape">The declared dimensions; null for a symbolic one.</param>
public sealed record OnnxValueInfo(string Name, TensorElementType ElementType, IReadOnlyList<int?> Shape);

/// <summary>One recurrent node of a model, as Deer runs it.</summary>
/// <param name="Name">The node's name (or its position).</param>
/// <param name="Operator">RNN, GRU or LSTM.</param>
/// <param name="HiddenSize">H.</param>
/// <param name="Direction">forward, reverse or bidirectional.</param>
/// <param name="Layout">0 ([T, B, ·]) or 1 ([B, T, ·]).</param>
/// <param name="LinearBeforeReset">GRU: PyTorch's variant (true) or ONNX's default (false, <see cref="ResetBeforeGruCell{T}"/>).</param>
public sealed record OnnxRecurrentLayer(string Name, string Operator, int HiddenSize, string Direction, int Layout, bool LinearBeforeReset);

/// <summary>What <see cref="OnnxModel.Run"/> returns: the graph's outputs by name, and every solve the recurrent nodes made.</summary>
/// <param name="Outputs">Each graph output in the graph's own shape and layout.</param>
/// <param name="Solves">The solves, node by node, direction by direction.</param>
/// <param name="Elapsed">The run's wall time.</param>
/// <remarks>
/// Disposing a result gives its large arrays back to the model, for the next run to write into (as ONNX Runtime's
/// results return to its arena): after <see cref="Dispose"/>, its <see cref="Outputs"/> may change under the next run,
/// so copy what you keep first. A result that is never disposed keeps its outputs, and nothing is reused.
/// </remarks>
public sealed record OnnxRunResult(IReadOnlyDictionary<string, TensorData> Outputs, IReadOnlyList<SolveSummary> Solves, TimeSpan Elapsed) : IDisposable
{
    /// <summary>Whether every solve converged (with the default fallback, always: the loop evaluates what a method fails on).</summary>
    public bool Converged => Solves.All(s => s.Status == SolveStatus.Converged);

    internal RunBuffers? Buffers { get; init; }

    /// <summary>Gives the run's large arrays back to its model; the outputs must not be read after this.</summary>
    public void Dispose() => Buffers?.Return();
}

/// <summary>
/// An ONNX model holding RNN, GRU or LSTM nodes, as <c>torch.onnx.export</c> writes nn.RNN, nn.GRU and nn.LSTM or as
/// built by hand, loaded for Deer: every recurrent node is solved by <see cref="Deer"/>.Solve (the method, tolerances and
/// device from <see cref="SolveOptions"/>), the operators around them (Transpose, Reshape, Slice, Concat, ...) run as the
/// ONNX specification defines them. docs/onnx.md lists every operator and attribute with its status; anything else is
/// refused when the model is loaded, naming the node and the attribute.
/// </summary>
/// <example>
/// <code>
/// OnnxModel model = OnnxModel.Load("gru.onnx");                       // torch.onnx.export(nn.GRU(...), ...)
/// OnnxRunResult r = model.Run(new Dictionary&lt;string, TensorData&gt; { ["x"] = Npy.Read("x.npy") });
/// TensorData y = r.Outputs[model.Outputs[0].Name];
/// </code>
/// </example>
public sealed class OnnxModel
{
    private readonly GraphProto _graph;
    private readonly OnnxNode[] _nodes;
    private readonly Dictionary<string, OnnxTensor> _initializers;
    private readonly Dictionary<OnnxNode, RecurrentOp> _recurrent = [];
    private readonly BufferPool _pool = new();
    private readonly int _opset;

    private OnnxModel(ModelProto model, string name)
    {
        _graph = model.Graph ?? throw new OnnxModelException($"{name} holds no graph.");
        _opset = (int)(model.OpsetImport.FirstOrDefault(o => o.Domain is "" or "ai.onnx")?.Version ?? 0);
        if (_opset is < 7 or > 23)
        {
            throw new OnnxModelException($"{name} uses ONNX opset {_opset}; Deer reads opsets 7 to 23.");
        }

        _initializers = _graph.Initializer.ToDictionary(t => t.Name, t => OnnxTensor.FromProto(t, $"{name}: initializer '{t.Name}'"));
        _nodes = [.. _graph.Node.Select((n, i) => new OnnxNode(n, i))];
        var unsupported = new List<string>();
        foreach (OnnxNode node in _nodes)
        {
            if (node.Proto.Domain is not ("" or "ai.onnx"))
            {
                unsupported.Add($"{node.Label} in domain '{node.Proto.Domain}'");
            }
            else if (node.Op is "RNN" or "GRU" or "LSTM")
            {
                _recurrent[node] = new RecurrentOp(node);
            }
            else if (!GlueOps.Names.Contains(node.Op))
            {
                unsupported.Add(node.Label);
            }
        }

        if (unsupported.Count > 0)
        {
            throw new OnnxModelException(
                $"{name}: Deer runs RNN, GRU and LSTM nodes and the operators PyTorch's exporter puts around them ({string.Join(", ", GlueOps.Names)}); it does not run {string.Join("; ", unsupported)}.");
        }

        Inputs = [.. _graph.Input.Where(i => !_initializers.ContainsKey(i.Name)).Select(Info)];
        Outputs = [.. _graph.Output.Select(Info)];
        RecurrentLayers = [.. _recurrent.Values.Select(r => new OnnxRecurrentLayer(r.Node.Proto.Name, r.Node.Op, r.HiddenSize, r.Direction, r.Layout, r.LinearBeforeReset))];
        if (Outputs.Count == 0)
        {
            throw new OnnxModelException($"{name}: the graph has no outputs.");
        }
    }

    /// <summary>The inputs a run must be given (initializers aside), in the graph's order.</summary>
    public IReadOnlyList<OnnxValueInfo> Inputs { get; }

    /// <summary>The outputs a run returns, in the graph's order.</summary>
    public IReadOnlyList<OnnxValueInfo> Outputs { get; }

    /// <summary>The recurrent nodes, in the graph's order.</summary>
    public IReadOnlyList<OnnxRecurrentLayer> RecurrentLayers { get; }

    /// <summary>Loads the ONNX model at <paramref name="path"/>.</summary>
    /// <exception cref="OnnxModelException">The file is not an ONNX model, or holds something Deer does not run.</exception>
    public static OnnxModel Load(string path) => TensorFiles.Read(path, Load);

    /// <summary>Loads an ONNX model from <paramref name="stream"/>; <paramref name="name"/> names it in errors.</summary>
    public static OnnxModel Load(Stream stream, string name)
    {
        long length = TensorFiles.Remaining(stream);
        long start = stream.Position;
        Span<byte> magic = stackalloc byte[2];
        if (stream.Read(magic) == 2 && magic[0] == (byte)'P' && magic[1] == (byte)'K')
        {
            throw new OnnxModelException(
                $"{name} is a zip archive: a PyTorch checkpoint (torch.save, .pt/.pth), not an ONNX model. Export the module with torch.onnx.export, or write its weights as safetensors (scripts/torch-to-safetensors.py).");
        }

        stream.Position = start;
        ModelProto model;
        try
        {
            model = ModelProto.Parser.ParseFrom(stream);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new OnnxModelException($"{name} is not an ONNX model (a protobuf ModelProto): {e.Message}", e);
        }

        if (model.Graph is null || model.IrVersion == 0 || (model.Graph.Node.Count == 0 && model.Graph.Output.Count == 0))
        {
            throw new OnnxModelException($"{name} is not an ONNX model: it holds no graph ({length} bytes read).");
        }

        return new OnnxModel(model, name);
    }

    /// <summary>A model built in memory (<see cref="OnnxExport"/>).</summary>
    internal static OnnxModel FromProto(ModelProto model, string name) => new(model, name);

    /// <summary>
    /// Runs the graph on <paramref name="inputs"/> (by graph input name; each converted to the input's declared type),
    /// solving every recurrent node with <paramref name="options"/> (default: <see cref="SolveMethod.Auto"/>, which
    /// returns the loop's answer on every device). Returns every graph output in the graph's own shape.
    /// </summary>
    /// <exception cref="OnnxModelException">An input is missing or mis-shaped; the message names it and the node that read it.</exception>
    public OnnxRunResult Run(IReadOnlyDictionary<string, TensorData> inputs, SolveOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        options ??= new SolveOptions { Method = SolveMethod.Auto };
        var clock = Stopwatch.StartNew();
        var values = new Dictionary<string, OnnxTensor>(_initializers);
        foreach (OnnxValueInfo input in Inputs)
        {
            if (!inputs.TryGetValue(input.Name, out TensorData? data))
            {
                throw new OnnxModelException($"the model's input '{input.Name}' ({Describe(input)}) was not given.");
            }

            CheckShape(input, data);
            values[input.Name] = OnnxTensor.From(data, Element(input.ElementType, _graph.Input.First(i => i.Name == input.Name)));
        }

        foreach (string extra in inputs.Keys.Where(k => Inputs.All(i => i.Name != k)))
        {
            throw new OnnxModelException($"'{extra}' is not an input of the model; its inputs are {string.Join(", ", Inputs.Select(i => $"'{i.Name}'"))}.");
        }

        var solves = new List<SolveSummary>();
        var buffers = new RunBuffers(_pool);
        foreach (OnnxNode node in _nodes)
        {
            options.CancellationToken.ThrowIfCancellationRequested();
            OnnxTensor? Input(int k) => node.Input(k) is { } name
                ? values.TryGetValue(name, out OnnxTensor? v) ? v : throw node.Error($"its input '{name}' is not computed by any earlier node, initializer or graph input.")
                : null;
            if (_recurrent.TryGetValue(node, out RecurrentOp? op))
            {
                RecurrentRun.Outputs result = RecurrentRun.Run(op, Input, options, buffers);
                solves.AddRange(result.Solves);
                Bind(values, node, 0, result.Y);
                Bind(values, node, 1, result.Hidden);
                if (result.Cell is not null)
                {
                    Bind(values, node, 2, result.Cell);
                }
            }
            else
            {
                Bind(values, node, 0, GlueOps.Run(node, Input, _opset));
            }
        }

        var outputs = new Dictionary<string, TensorData>();
        foreach (OnnxValueInfo output in Outputs)
        {
            outputs[output.Name] = values.TryGetValue(output.Name, out OnnxTensor? v) ? v.ToTensorData()
                : throw new OnnxModelException($"the graph's output '{output.Name}' is not computed by any node.");
        }

        clock.Stop();
        return new OnnxRunResult(outputs, solves, clock.Elapsed) { Buffers = buffers };
    }

    private static void Bind(Dictionary<string, OnnxTensor> values, OnnxNode node, int k, OnnxTensor value)
    {
        if (k < node.Outputs.Count && node.Outputs[k].Length > 0)
        {
            values[node.Outputs[k]] = value;
        }
    }

    private static OnnxValueInfo Info(ValueInfoProto v)
    {
        TypeProto.Types.Tensor? tensor = v.Type?.TensorType;
        var type = (TensorProto.Types.DataType)(tensor?.ElemType ?? 0);
        TensorElementType element = type == TensorProto.Types.DataType.Float ? TensorElementType.Float32 : TensorElementType.Float64;
        IReadOnlyList<int?> shape = tensor?.Shape is { } s
            ? [.. s.Dim.Select(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? (int?)d.DimValue : null)]
            : [];
        return new OnnxValueInfo(v.Name, element, shape);
    }

    private static OnnxElement Element(TensorElementType element, ValueInfoProto proto) =>
        (TensorProto.Types.DataType)(proto.Type?.TensorType?.ElemType ?? 0) switch
        {
            TensorProto.Types.DataType.Int64 or TensorProto.Types.DataType.Int32 => OnnxElement.Int64,
            _ => element == TensorElementType.Float32 ? OnnxElement.Float : OnnxElement.Double,
        };

    private static void CheckShape(OnnxValueInfo input, TensorData data)
    {
        bool fits = input.Shape.Count == 0
            || (input.Shape.Count == data.Rank && input.Shape.Select((d, i) => d is null || d == data.Shape[i]).All(x => x));
        if (!fits)
        {
            throw new OnnxModelException($"the model's input '{input.Name}' must have shape {Describe(input)}; it has {data.ShapeText}.");
        }
    }

    private static string Describe(OnnxValueInfo v) => $"[{string.Join(", ", v.Shape.Select(d => d?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "·"))}]";
}
