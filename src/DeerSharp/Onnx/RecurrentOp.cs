using System.Globalization;

namespace DeerSharp.Onnx;

/// <summary>
/// One ONNX RNN, GRU or LSTM node, its attributes read and checked once (docs/onnx.md lists each with its status): the
/// gate count, the hidden size, the direction(s), the layout, GRU's linear_before_reset. What Deer does not implement
/// (clip, activations other than the defaults, LSTM peepholes and input_forget) is refused with the node and attribute
/// named.
/// </summary>
internal sealed class RecurrentOp
{
    private static readonly string[] Directions = ["forward", "reverse", "bidirectional"];

    public RecurrentOp(OnnxNode node)
    {
        Node = node;
        Gates = node.Op switch { "RNN" => 1, "GRU" => 3, "LSTM" => 4, _ => throw node.Error("not a recurrent operator.") };
        long hidden = node.Int("hidden_size", 0);
        HiddenSize = hidden is > 0 and <= int.MaxValue ? (int)hidden : throw node.Error($"must be a positive integer; it is {hidden}.", "hidden_size");
        Direction = node.String("direction", "forward");
        if (!Directions.Contains(Direction))
        {
            throw node.Error($"'{Direction}' is not one of forward, reverse, bidirectional.", "direction");
        }

        Layout = node.Int("layout", 0) switch
        {
            0 => 0,
            1 => 1,
            var l => throw node.Error($"must be 0 ([T, B, ·]) or 1 ([B, T, ·]); it is {l}.", "layout"),
        };
        LinearBeforeReset = node.Op == "GRU" && node.Int("linear_before_reset", 0) != 0;
        if (node.Attribute("clip") is not null)
        {
            throw node.Error("clipping the activations' inputs is not implemented; export the model without clip.", "clip");
        }

        if (node.Op == "LSTM" && node.Int("input_forget", 0) != 0)
        {
            throw node.Error("coupled input and forget gates (input_forget = 1) are not implemented.", "input_forget");
        }

        string[] defaults = node.Op switch { "RNN" => ["Tanh"], "GRU" => ["Sigmoid", "Tanh"], _ => ["Sigmoid", "Tanh", "Tanh"] };
        if (node.Strings("activations") is { } activations
            && !activations.SequenceEqual([.. Enumerable.Repeat(defaults, DirectionCount).SelectMany(a => a)], StringComparer.OrdinalIgnoreCase)
            && !activations.SequenceEqual(defaults, StringComparer.OrdinalIgnoreCase))
        {
            throw node.Error($"[{string.Join(", ", activations)}] is not supported: Deer runs the default activations [{string.Join(", ", defaults)}] per direction.",
                "activations");
        }

        foreach (string unsupported in new[] { "activation_alpha", "activation_beta" })
        {
            if (node.Attribute(unsupported) is not null)
            {
                throw node.Error("only the default activations are supported, which take no parameters.", unsupported);
            }
        }
    }

    public OnnxNode Node { get; }

    /// <summary>G: 1 (RNN), 3 (GRU), 4 (LSTM).</summary>
    public int Gates { get; }

    /// <summary>H.</summary>
    public int HiddenSize { get; }

    /// <summary>forward, reverse or bidirectional.</summary>
    public string Direction { get; }

    /// <summary>D: 2 when bidirectional, else 1.</summary>
    public int DirectionCount => Direction == "bidirectional" ? 2 : 1;

    /// <summary>0: X [T, B, I], Y [T, D, B, H], states [D, B, H]; 1: X [B, T, I], Y [B, T, D, H], states [B, D, H].</summary>
    public int Layout { get; }

    /// <summary>GRU only: r multiplies (h R_hᵀ + Rb_h) (PyTorch's GRU, 1) or h before the product (ONNX's default, 0).</summary>
    public bool LinearBeforeReset { get; }

    public bool IsLstm => Gates == 4;

    /// <summary>Whether direction index <paramref name="d"/> reads the sequence backwards.</summary>
    public bool Reversed(int d) => Direction == "reverse" || (Direction == "bidirectional" && d == 1);

    /// <summary>
    /// Direction <paramref name="d"/>'s weights in PyTorch's layout and gate order (what Deer's cells take): ONNX stores GRU
    /// gates z, r, h and LSTM gates i, o, f, c; PyTorch r, z, n and i, f, g, o. <paramref name="w"/> is [D, G·H, I],
    /// <paramref name="r"/> [D, G·H, H], <paramref name="b"/> [D, 2·G·H] or null.
    /// </summary>
    public RecurrentWeights<T> Weights<T>(OnnxTensor w, OnnxTensor r, OnnxTensor? b, int d)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int g = Gates, h = HiddenSize;
        CheckShape(w, "W", 3, [DirectionCount, g * h, -1]);
        int inputSize = (int)w.Shape[2];
        CheckShape(r, "R", 3, [DirectionCount, g * h, h]);
        if (b is not null)
        {
            CheckShape(b, "B", 2, [DirectionCount, 2 * g * h]);
        }

        int[] order = Gates switch { 3 => [1, 0, 2], 4 => [0, 2, 3, 1], _ => [0] };
        T[] Rows(OnnxTensor t, long start, int width)
        {
            T[] all = t.Read<T>();
            var rows = new T[g * h * width];
            for (int k = 0; k < g; k++)
            {
                Array.Copy(all, start + ((long)order[k] * h * width), rows, (long)k * h * width, (long)h * width);
            }

            return rows;
        }

        long wStride = (long)g * h * inputSize, rStride = (long)g * h * h, bStride = 2L * g * h;
        return new RecurrentWeights<T>(g, h, inputSize, Rows(w, d * wStride, inputSize), Rows(r, d * rStride, h),
            b is null ? null : Rows(b, d * bStride, 1), b is null ? null : Rows(b, (d * bStride) + ((long)g * h), 1));
    }

    /// <summary>
    /// Direction <paramref name="d"/>'s cell (a boxed <see cref="TanhRnnCell{T}"/>, <see cref="GruCell{T}"/>,
    /// <see cref="ResetBeforeGruCell{T}"/> or <see cref="LstmCell{T}"/>), built once for as long as the same weight tensors
    /// come back: a model's initializers are the same objects at every run, and tensors are immutable, so the cell (its
    /// transposed weights and the fused loop's packed copy) is reused from run to run instead of rebuilt (0.3 ms a run for
    /// the n = 128 GRU). Other tensors (W computed by a node, or given as an input) make a new cell when they change.
    /// </summary>
    public object Cell<T>(OnnxTensor w, OnnxTensor r, OnnxTensor? b, int d)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_cells)
        {
            if (_cells[d] is { } c && ReferenceEquals(c.W, w) && ReferenceEquals(c.R, r) && ReferenceEquals(c.B, b) && c.Cell is IRecurrentCell<T>)
            {
                return c.Cell;
            }
        }

        RecurrentWeights<T> weights = Weights<T>(w, r, b, d);
        object cell = Gates switch
        {
            1 => new TanhRnnCell<T>(weights),
            3 when LinearBeforeReset => new GruCell<T>(weights),
            3 => new ResetBeforeGruCell<T>(weights),
            _ => new LstmCell<T>(weights),
        };
        lock (_cells)
        {
            _cells[d] = new CachedCell(w, r, b, cell);
        }

        return cell;
    }

    private readonly CachedCell?[] _cells = new CachedCell?[2];

    private sealed record CachedCell(OnnxTensor W, OnnxTensor R, OnnxTensor? B, object Cell);

    /// <summary>Throws unless <paramref name="t"/> has the rank and the dimensions expected (-1: any).</summary>
    public void CheckShape(OnnxTensor t, string input, int rank, long[] expected)
    {
        bool ok = t.Rank == rank && expected.Select((e, i) => e < 0 || t.Shape[i] == e).All(x => x);
        if (!ok)
        {
            string want = string.Join(", ", expected.Select(e => e < 0 ? "·" : e.ToString(CultureInfo.InvariantCulture)));
            throw Node.Error($"input {input} must have shape [{want}]; it has {t.ShapeText}.");
        }
    }
}
