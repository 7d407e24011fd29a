using DeerSharp.IO;
using DeerSharp.Onnx;
using DeerSharp.Tests;
using Google.Protobuf;
using Onnx;

namespace DeerSharp.Cli.Tests;

/// <summary>
/// The glue operators, chained so that each reads the previous one's strided view (Transpose, a Slice with a negative
/// step, Squeeze and Unsqueeze), then Reshape, Concat and Gather, which gather a view into an array. ONNX Runtime runs
/// the same model on the same random input; Deer must give exactly its values (they only move numbers).
/// </summary>
public sealed class OnnxGlueTests
{
    [Theory]
    [InlineData(13)]
    [InlineData(9)]
    public void Chained_views_give_what_OnnxRuntime_gives(int opset) => Seeded.Run(random =>
    {
        int b = random.Next(1, 4), t = random.Next(3, 9), d = random.Next(1, 5);
        var graph = new GraphProto { Name = "glue" };
        graph.Input.Add(OnnxNodeTests.NodeSpec.Value("X", TensorProto.Types.DataType.Float, [b, t, d]));
        void Add(string op, string[] inputs, string output, params AttributeProto[] attributes)
        {
            var node = new NodeProto { OpType = op, Name = output };
            node.Input.AddRange(inputs);
            node.Output.Add(output);
            node.Attribute.AddRange(attributes);
            graph.Node.Add(node);
        }

        AttributeProto Ints(string name, params long[] values) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Ints, Ints = { values } };
        void Constant(string name, params long[] values) =>
            Add("Constant", [], name, new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = new TensorProto { DataType = (int)TensorProto.Types.DataType.Int64, Dims = { values.Length }, Int64Data = { values } } });

        // [B, T, d] → [T, B, d] → every second step from the last, backwards (opset 9: steps 1 to T − 1) → [T', 1, B, d] → [T', B, d].
        Add("Transpose", ["X"], "tm", Ints("perm", 1, 0, 2));
        if (opset >= 13)
        {
            Constant("starts", -1);
            Constant("ends", -t - 1);
            Constant("axes", 0);
            Constant("steps", -2);
            Add("Slice", ["tm", "starts", "ends", "axes", "steps"], "back");
            Constant("one", 1);
            Add("Unsqueeze", ["back", "one"], "u");
            Add("Squeeze", ["u", "one"], "s");
        }
        else
        {
            Add("Slice", ["tm"], "back", Ints("starts", 1), Ints("ends", t), Ints("axes", 0));   // opset 9: attributes, no steps
            Add("Unsqueeze", ["back"], "u", Ints("axes", 1));
            Add("Squeeze", ["u"], "s", Ints("axes", 1));
        }

        // A Transpose of that view ([d, T', B]), then Reshape to [d, T'·B]: the view is gathered here.
        Add("Transpose", ["s"], "dtb", Ints("perm", 2, 0, 1));
        Constant("flat", d, -1);
        Add("Reshape", ["dtb", "flat"], "cols");
        Add("Concat", ["cols", "cols"], "both", new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
        Constant("pick", d - 1, 0);
        Add("Gather", ["both", "pick"], "Y", new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 0 });
        graph.Output.Add(new ValueInfoProto { Name = "Y", Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float } } });
        var model = new ModelProto { IrVersion = opset >= 13 ? 8 : 4, Graph = graph, ProducerName = "deer tests" };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });

        using var dir = new TempDir();
        string path = dir.File("glue.onnx");
        File.WriteAllBytes(path, model.ToByteArray());
        float[] x = [.. Enumerable.Range(0, b * t * d).Select(_ => (float)random.NextDouble())];
        var inputs = new Dictionary<string, TensorData> { ["X"] = TensorData.FromSingle(x, b, t, d) };
        TensorData deer = OnnxModel.Load(path).Run(inputs).Outputs["Y"];
        TensorData ort = OnnxTorchTests.OnnxRuntimeRun(path, inputs)["Y"];
        Assert.Equal(ort.Shape, deer.Shape);
        Assert.Equal(ort.ToArray<float>(), deer.ToArray<float>());   // moved, never computed: exact
    });
}
