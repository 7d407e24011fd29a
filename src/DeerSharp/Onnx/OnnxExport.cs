using System.Globalization;
using DeerSharp.IO;
using Google.Protobuf;
using Onnx;

namespace DeerSharp.Onnx;

/// <summary>
/// Writes a PyTorch-style recurrent module (nn.RNN with tanh, nn.GRU, nn.LSTM: layers bottom first, one or two
/// directions each) as an ONNX model, the graph <c>torch.onnx.export</c> writes (opset 14): input "input" ([B, T, d]
/// batch-first, or [T, B, d]), optional inputs "h0" (and "c0") [L·D, B, n], outputs "output" ([B, T, D·n] or
/// [T, B, D·n]), "h_n" (and "c_n") [L·D, B, n]. One ONNX node per layer, gates reordered to ONNX's order, GRU with
/// linear_before_reset = 1 (PyTorch's GRU). ONNX Runtime and <see cref="OnnxModel"/> run it.
/// </summary>
public static class OnnxExport
{
    /// <summary>Writes the model to <paramref name="path"/> (a temporary file first, then renamed: never half-written).</summary>
    /// <param name="path">The .onnx file.</param>
    /// <param name="kind">The module type.</param>
    /// <param name="layers">Each layer's directions, bottom first: [layer][0] forward, [layer][1] reverse if bidirectional.</param>
    /// <param name="batchFirst">Inputs and outputs [B, T, ·] (PyTorch's batch_first=True), else [T, B, ·].</param>
    /// <param name="initialStates">Whether h0 (and c0) are graph inputs; otherwise every sequence starts from zeros.</param>
    public static void Write<T>(string path, RecurrentKind kind, IReadOnlyList<IReadOnlyList<RecurrentWeights<T>>> layers, bool batchFirst = true,
        bool initialStates = false)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(path);
        ModelProto model = Build(kind, layers, batchFirst, initialStates);
        string temporary = path + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            using (FileStream stream = File.Create(temporary))
            {
                model.WriteTo(stream);
            }

            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    /// <summary>The model, built in memory.</summary>
    internal static ModelProto Build<T>(RecurrentKind kind, IReadOnlyList<IReadOnlyList<RecurrentWeights<T>>> layers, bool batchFirst, bool initialStates)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(layers);
        if (layers.Count == 0 || layers.Any(l => l is null || l.Count is < 1 or > 2 || l.Count != layers[0].Count))
        {
            throw new ArgumentException("A module needs at least one layer, each with the same number of directions (1, or 2 when bidirectional).", nameof(layers));
        }

        int gates = TorchRecurrentWeights.Gates(kind), directions = layers[0].Count, n = layers[0][0].HiddenSize, count = layers.Count;
        for (int k = 0; k < count; k++)
        {
            int expected = k == 0 ? layers[0][0].InputSize : directions * n;
            foreach (RecurrentWeights<T> w in layers[k])
            {
                if (w.Gates != gates || w.HiddenSize != n || w.InputSize != expected || w.HasBias != layers[0][0].HasBias)
                {
                    throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                        $"Layer {k}: a {kind} layer of hidden size {n} reading {expected} inputs{(layers[0][0].HasBias ? " with" : " without")} biases was expected; these weights have {w.Gates} gate block(s), hidden size {w.HiddenSize}, {w.InputSize} inputs."),
                        nameof(layers));
                }
            }
        }

        var element = typeof(T) == typeof(float) ? TensorProto.Types.DataType.Float : TensorProto.Types.DataType.Double;
        string op = kind switch { RecurrentKind.TanhRnn => "RNN", RecurrentKind.Gru => "GRU", _ => "LSTM" };
        bool lstm = kind == RecurrentKind.Lstm;
        var graph = new GraphProto { Name = $"deer_{op.ToLowerInvariant()}" };
        graph.Input.Add(Value("input", element, batchFirst ? ["B", "T", layers[0][0].InputSize] : ["T", "B", layers[0][0].InputSize]));
        if (initialStates)
        {
            graph.Input.Add(Value("h0", element, [count * directions, "B", n]));
            if (lstm)
            {
                graph.Input.Add(Value("c0", element, [count * directions, "B", n]));
            }
        }

        string x = "input";
        if (batchFirst)
        {
            graph.Node.Add(Node("Transpose", "to_time_major", ["input"], ["x_time_major"], Ints("perm", 1, 0, 2)));
            x = "x_time_major";
        }

        int[] order = kind switch { RecurrentKind.Gru => [1, 0, 2], RecurrentKind.Lstm => [0, 3, 1, 2], _ => [0] };
        var hidden = new List<string>();
        var cells = new List<string>();
        for (int k = 0; k < count; k++)
        {
            IReadOnlyList<RecurrentWeights<T>> w = layers[k];
            string L(string name) => string.Create(CultureInfo.InvariantCulture, $"{name}_l{k}");
            graph.Initializer.Add(Tensor(L("W"), [directions, gates * n, w[0].InputSize], w.Select(d => Reordered(d.WeightIH, order, n, d.InputSize))));
            graph.Initializer.Add(Tensor(L("R"), [directions, gates * n, n], w.Select(d => Reordered(d.WeightHH, order, n, n))));
            if (w[0].HasBias)
            {
                graph.Initializer.Add(Tensor(L("B"), [directions, 2 * gates * n],
                    w.Select(d => Reordered(d.BiasIH, order, n, 1).Concat(Reordered(d.BiasHH, order, n, 1)))));
            }

            var inputs = new List<string> { x, L("W"), L("R"), w[0].HasBias ? L("B") : "", "" };
            if (initialStates)
            {
                graph.Initializer.Add(Int64s(L("starts"), k * directions));
                graph.Initializer.Add(Int64s(L("ends"), (k + 1) * directions));
                graph.Initializer.Add(Int64s(L("axes"), 0));
                graph.Node.Add(Node("Slice", L("h0_slice"), ["h0", L("starts"), L("ends"), L("axes")], [L("h0")]));
                inputs.Add(L("h0"));
                if (lstm)
                {
                    graph.Node.Add(Node("Slice", L("c0_slice"), ["c0", L("starts"), L("ends"), L("axes")], [L("c0")]));
                    inputs.Add(L("c0"));
                }
            }

            var attributes = new List<AttributeProto>
            {
                new() { Name = "hidden_size", Type = AttributeProto.Types.AttributeType.Int, I = n },
                new() { Name = "direction", Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(directions == 2 ? "bidirectional" : "forward") },
            };
            if (kind == RecurrentKind.Gru)
            {
                attributes.Add(new AttributeProto { Name = "linear_before_reset", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
            }

            string[] outputs = lstm ? [L("Y"), L("Y_h"), L("Y_c")] : [L("Y"), L("Y_h")];
            graph.Node.Add(Node(op, L(op), [.. inputs], outputs, [.. attributes]));
            hidden.Add(L("Y_h"));
            cells.Add(L("Y_c"));

            // Y [T, D, B, n] → [T, B, D·n], the next layer's input and the module's output.
            graph.Node.Add(Node("Transpose", L("directions_last"), [L("Y")], [L("Y_t")], Ints("perm", 0, 2, 1, 3)));
            graph.Initializer.Add(Int64s(L("joined_shape"), 0, 0, -1));
            graph.Node.Add(Node("Reshape", L("join_directions"), [L("Y_t"), L("joined_shape")], [L("out")]));
            x = L("out");
        }

        graph.Node.Add(batchFirst
            ? Node("Transpose", "to_batch_first", [x], ["output"], Ints("perm", 1, 0, 2))
            : Node("Identity", "output", [x], ["output"]));
        graph.Node.Add(Node("Concat", "h_n", [.. hidden], ["h_n"], new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 0 }));
        graph.Output.Add(Value("output", element, batchFirst ? ["B", "T", directions * n] : ["T", "B", directions * n]));
        graph.Output.Add(Value("h_n", element, [count * directions, "B", n]));
        if (lstm)
        {
            graph.Node.Add(Node("Concat", "c_n", [.. cells], ["c_n"], new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 0 }));
            graph.Output.Add(Value("c_n", element, [count * directions, "B", n]));
        }

        var model = new ModelProto { IrVersion = 8, ProducerName = "DeerSharp", ProducerVersion = typeof(OnnxExport).Assembly.GetName().Version?.ToString() ?? "", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 14 });
        return model;
    }

    /// <summary>A [G·n, width] block of rows in PyTorch's gate order, its gates in ONNX's order (PyTorch gate order[k] at ONNX gate k).</summary>
    private static IEnumerable<T> Reordered<T>(T[] rows, int[] order, int n, int width)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        order.SelectMany(g => rows.Skip(g * n * width).Take(n * width));

    private static TensorProto Tensor<T>(string name, long[] dims, IEnumerable<IEnumerable<T>> parts)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T[] values = [.. parts.SelectMany(p => p)];
        var t = new TensorProto { Name = name, DataType = (int)(typeof(T) == typeof(float) ? TensorProto.Types.DataType.Float : TensorProto.Types.DataType.Double) };
        t.Dims.AddRange(dims);
        if (values is float[] f)
        {
            t.FloatData.AddRange(f);
        }
        else
        {
            t.DoubleData.AddRange((double[])(object)values);
        }

        return t;
    }

    private static TensorProto Int64s(string name, params long[] values)
    {
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
        t.Dims.Add(values.Length);
        t.Int64Data.AddRange(values);
        return t;
    }

    private static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    private static NodeProto Node(string op, string name, string[] inputs, string[] outputs, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = name };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        node.Attribute.AddRange(attributes);
        return node;
    }

    /// <summary>A tensor value: dimensions are numbers, or names for the symbolic batch and time axes.</summary>
    private static ValueInfoProto Value(string name, TensorProto.Types.DataType element, object[] dims)
    {
        var tensor = new TypeProto.Types.Tensor { ElemType = (int)element, Shape = new TensorShapeProto() };
        foreach (object d in dims)
        {
            tensor.Shape.Dim.Add(d is string symbol
                ? new TensorShapeProto.Types.Dimension { DimParam = symbol }
                : new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(d, CultureInfo.InvariantCulture) });
        }

        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensor } };
    }
}
