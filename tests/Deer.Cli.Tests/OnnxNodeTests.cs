using DeerSharp.IO;
using DeerSharp.Tests;
using DeerSharp.Onnx;
using Google.Protobuf;
using Onnx;

namespace DeerSharp.Cli.Tests;

/// <summary>
/// Single RNN, GRU and LSTM nodes built here, for the attributes PyTorch never writes: reverse and bidirectional
/// directions, GRU's linear_before_reset = 0 (ONNX's default), sequence_lens, initial_h and initial_c, zero peepholes,
/// absent biases and unnamed outputs. Fresh random weights and inputs (seed printed), float32, against ONNX Runtime on
/// the same file (1e-4). Layout 1, which ONNX Runtime refuses, is checked against the same node in layout 0.
/// </summary>
public class OnnxNodeTests
{
    public static TheoryData<string, string, bool, bool> Cases()
    {
        var data = new TheoryData<string, string, bool, bool>();
        foreach (string op in new[] { "RNN", "GRU", "LSTM" })
        {
            foreach (string direction in new[] { "forward", "reverse", "bidirectional" })
            {
                data.Add(op, direction, true, true);
                data.Add(op, direction, false, false);
            }
        }

        data.Add("GRU", "forward", true, false);
        data.Add("GRU", "bidirectional", false, true);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_node_runs_as_OnnxRuntime_runs_it(string op, string direction, bool linearBeforeReset, bool ragged) => Seeded.Run(random =>
    {
        var spec = NodeSpec.Random(op, direction, linearBeforeReset, ragged, random);
        using var dir = new TempDir();
        string path = dir.File("node.onnx");
        File.WriteAllBytes(path, spec.Model(layout: 0).ToByteArray());
        Dictionary<string, TensorData> inputs = spec.Inputs(layout: 0);
        OnnxRunResult deer = OnnxModel.Load(path).Run(inputs, new SolveOptions { Method = SolveMethod.Deer, Fallback = FallbackPolicy.None, MaxIterations = 200 });
        Assert.True(deer.Converged, string.Join("; ", deer.Solves.Select(s => s.Message)));
        Dictionary<string, TensorData> ort = OnnxTorchTests.OnnxRuntimeRun(path, inputs);
        var failures = new List<string>();
        foreach (string output in spec.OutputNames)
        {
            OnnxTorchTests.Compare(failures, $"{spec} {output}", deer.Outputs[output], ort[output], 1e-4);
        }

        // Layout 1 ([B, T, ·]), which ONNX Runtime refuses: the same node's outputs, transposed.
        File.WriteAllBytes(dir.File("batch.onnx"), spec.Model(layout: 1).ToByteArray());
        OnnxRunResult batchFirst = OnnxModel.Load(dir.File("batch.onnx")).Run(spec.Inputs(layout: 1));
        foreach (string output in spec.OutputNames)
        {
            OnnxTorchTests.Compare(failures, $"{spec} {output}, layout 1", batchFirst.Outputs[output], spec.ToLayout1(output, ort[output]), 1e-4);
        }

        Assert.True(failures.Count == 0, string.Join('\n', failures));
    });

    /// <summary>
    /// A model keeps each node's cell from run to run while its weight tensors are the same (initializers); R given as a
    /// graph input instead must be read again at every run. Three runs with R₁, R₂, R₁, each against ONNX Runtime (1e-4):
    /// a cell kept from the run before would give the second run R₁'s numbers.
    /// </summary>
    [Theory]
    [InlineData("GRU")]
    [InlineData("LSTM")]
    public void A_weight_given_as_an_input_is_read_at_every_run(string op) => Seeded.Run(random =>
    {
        var spec = NodeSpec.Random(op, "forward", linearBeforeReset: true, ragged: false, random);
        ModelProto model = spec.Model(layout: 0);
        TensorProto r = model.Graph.Initializer.Single(t => t.Name == "R");
        model.Graph.Initializer.Remove(r);
        model.Graph.Input.Add(NodeSpec.Value("R", TensorProto.Types.DataType.Float, [.. r.Dims]));
        using var dir = new TempDir();
        string path = dir.File("r-input.onnx");
        File.WriteAllBytes(path, model.ToByteArray());
        OnnxModel deer = OnnxModel.Load(path);
        float[] other = [.. spec.R.Select(v => -0.5f * v + 0.1f)];
        var failures = new List<string>();
        foreach ((string name, float[] values) in new[] { ("R1", spec.R), ("R2", other), ("R1 again", spec.R) })
        {
            Dictionary<string, TensorData> inputs = spec.Inputs(layout: 0);
            inputs["R"] = TensorData.FromSingle(values, [.. r.Dims.Select(d => (int)d)]);
            using OnnxRunResult run = deer.Run(inputs, new SolveOptions { Method = SolveMethod.Sequential });
            Dictionary<string, TensorData> ort = OnnxTorchTests.OnnxRuntimeRun(path, inputs);
            OnnxTorchTests.Compare(failures, $"{spec} with {name}: Y", run.Outputs["Y"], ort["Y"], 1e-4);
        }

        Assert.True(failures.Count == 0, string.Join('\n', failures));
    });

    /// <summary>One random node and its inputs: sizes, weights, lengths, initial states.</summary>
    internal sealed class NodeSpec
    {
        public required string Op { get; init; }

        public required string Direction { get; init; }

        public bool LinearBeforeReset { get; init; }

        public int Gates => Op switch { "RNN" => 1, "GRU" => 3, _ => 4 };

        public int Directions => Direction == "bidirectional" ? 2 : 1;

        public int T { get; init; }

        public int B { get; init; }

        public int I { get; init; }

        public int H { get; init; }

        public required float[] W { get; init; }

        public required float[] R { get; init; }

        public float[]? Bias { get; init; }

        public int[]? Lengths { get; init; }

        public required float[] X { get; init; }

        public float[]? InitialH { get; init; }

        public float[]? InitialC { get; init; }

        public bool ZeroPeepholes { get; init; }

        public string[] OutputNames => Op == "LSTM" ? ["Y", "Y_h", "Y_c"] : ["Y", "Y_h"];

        public override string ToString() => $"{Op} {Direction} lbr={LinearBeforeReset} T={T} B={B} I={I} H={H} lengths=[{string.Join(",", Lengths ?? [])}]";

        public static NodeSpec Random(string op, string direction, bool linearBeforeReset, bool ragged, Random random)
        {
            int g = op switch { "RNN" => 1, "GRU" => 3, _ => 4 }, d = direction == "bidirectional" ? 2 : 1;
            int t = random.Next(5, 40), b = random.Next(ragged ? 3 : 1, 4), i = random.Next(1, 5), h = random.Next(1, 6);
            float[] U(int n, double scale) => [.. Enumerable.Range(0, n).Select(_ => (float)(((random.NextDouble() * 2) - 1) * scale))];
            double bound = 1 / Math.Sqrt(h);
            return new NodeSpec
            {
                Op = op, Direction = direction, LinearBeforeReset = linearBeforeReset, T = t, B = b, I = i, H = h,
                W = U(d * g * h * i, bound), R = U(d * g * h * h, bound * 1.5), Bias = ragged ? U(d * 2 * g * h, bound) : null,
                Lengths = ragged ? [.. Enumerable.Range(0, b).Select(k => k switch { 0 => t, 1 => 0, _ => random.Next(1, t + 1) })] : null, // full, empty, ragged
                X = U(t * b * i, 2), InitialH = ragged ? U(d * b * h, 1) : null, InitialC = ragged && op == "LSTM" ? U(d * b * h, 1) : null,
                ZeroPeepholes = ragged && op == "LSTM",
            };
        }

        /// <summary>The node as a model: inputs X (and sequence_lens, initial_h, initial_c) as graph inputs, weights as initializers.</summary>
        public ModelProto Model(int layout)
        {
            var graph = new GraphProto { Name = "node" };
            int g = Gates, d = Directions;
            graph.Initializer.Add(Tensor("W", W, d, g * H, I));
            graph.Initializer.Add(Tensor("R", R, d, g * H, H));
            if (Bias is not null)
            {
                graph.Initializer.Add(Tensor("B", Bias, d, 2 * g * H));
            }

            if (ZeroPeepholes)
            {
                graph.Initializer.Add(Tensor("P", new float[d * 3 * H], d, 3 * H));
            }

            graph.Input.Add(Value("X", TensorProto.Types.DataType.Float, layout == 0 ? [T, B, I] : [B, T, I]));
            if (Lengths is not null)
            {
                graph.Input.Add(Value("sequence_lens", TensorProto.Types.DataType.Int32, [B]));
            }

            long[] stateShape = layout == 0 ? [d, B, H] : [B, d, H];
            if (InitialH is not null)
            {
                graph.Input.Add(Value("initial_h", TensorProto.Types.DataType.Float, stateShape));
            }

            if (InitialC is not null)
            {
                graph.Input.Add(Value("initial_c", TensorProto.Types.DataType.Float, stateShape));
            }

            var node = new NodeProto { OpType = Op, Name = $"the {Op}" };
            node.Input.AddRange(["X", "W", "R", Bias is null ? "" : "B", Lengths is null ? "" : "sequence_lens", InitialH is null ? "" : "initial_h"]);
            if (Op == "LSTM")
            {
                node.Input.AddRange([InitialC is null ? "" : "initial_c", ZeroPeepholes ? "P" : ""]);
            }

            node.Output.AddRange(OutputNames);
            node.Attribute.Add(new AttributeProto { Name = "hidden_size", Type = AttributeProto.Types.AttributeType.Int, I = H });
            node.Attribute.Add(new AttributeProto { Name = "direction", Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(Direction) });
            if (layout != 0)
            {
                node.Attribute.Add(new AttributeProto { Name = "layout", Type = AttributeProto.Types.AttributeType.Int, I = layout });
            }

            if (Op == "GRU")
            {
                node.Attribute.Add(new AttributeProto { Name = "linear_before_reset", Type = AttributeProto.Types.AttributeType.Int, I = LinearBeforeReset ? 1 : 0 });
            }

            graph.Node.Add(node);
            long[] yShape = layout == 0 ? [T, d, B, H] : [B, T, d, H];
            graph.Output.Add(Value("Y", TensorProto.Types.DataType.Float, yShape));
            foreach (string name in OutputNames.Skip(1))
            {
                graph.Output.Add(Value(name, TensorProto.Types.DataType.Float, stateShape));
            }

            var model = new ModelProto { IrVersion = 8, Graph = graph, ProducerName = "deer tests" };
            model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 14 });
            return model;
        }

        public Dictionary<string, TensorData> Inputs(int layout)
        {
            var inputs = new Dictionary<string, TensorData> { ["X"] = TensorData.FromSingle(layout == 0 ? X : Swap(X, T, B, I), layout == 0 ? [T, B, I] : [B, T, I]) };
            if (Lengths is not null)
            {
                inputs["sequence_lens"] = TensorData.FromSingle([.. Lengths.Select(v => (float)v)], B);
            }

            int[] stateShape = layout == 0 ? [Directions, B, H] : [B, Directions, H];
            if (InitialH is not null)
            {
                inputs["initial_h"] = TensorData.FromSingle(layout == 0 ? InitialH : Swap(InitialH, Directions, B, H), stateShape);
            }

            if (InitialC is not null)
            {
                inputs["initial_c"] = TensorData.FromSingle(layout == 0 ? InitialC : Swap(InitialC, Directions, B, H), stateShape);
            }

            return inputs;
        }

        /// <summary>A layout-0 output in layout 1: Y [T, D, B, H] → [B, T, D, H]; Y_h and Y_c [D, B, H] → [B, D, H].</summary>
        public TensorData ToLayout1(string output, TensorData layout0)
        {
            float[] v = layout0.ToArray<float>();
            if (output != "Y")
            {
                return TensorData.FromSingle(Swap(v, Directions, B, H), B, Directions, H);
            }

            var y = new float[v.Length];
            for (int t = 0; t < T; t++)
            {
                for (int d = 0; d < Directions; d++)
                {
                    for (int b = 0; b < B; b++)
                    {
                        Array.Copy(v, (((t * Directions) + d) * B + b) * H, y, (((b * T) + t) * Directions + d) * H, H);
                    }
                }
            }

            return TensorData.FromSingle(y, B, T, Directions, H);
        }

        /// <summary>[p, q, r] → [q, p, r].</summary>
        private static float[] Swap(float[] v, int p, int q, int r)
        {
            var swapped = new float[v.Length];
            for (int i = 0; i < p; i++)
            {
                for (int j = 0; j < q; j++)
                {
                    Array.Copy(v, ((i * q) + j) * r, swapped, ((j * p) + i) * r, r);
                }
            }

            return swapped;
        }

        internal static TensorProto Tensor(string name, float[] values, params long[] dims)
        {
            var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
            t.Dims.AddRange(dims);
            t.FloatData.AddRange(values);
            return t;
        }

        internal static ValueInfoProto Value(string name, TensorProto.Types.DataType type, long[] shape)
        {
            var tensor = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = new TensorShapeProto() };
            foreach (long d in shape)
            {
                tensor.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
            }

            return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensor } };
        }
    }
}
