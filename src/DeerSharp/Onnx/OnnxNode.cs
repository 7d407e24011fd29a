using System.Globalization;
using Onnx;

namespace DeerSharp.Onnx;

/// <summary>A node of the graph with the name errors use ("node 'name' (Op)") and typed, checked attribute reads.</summary>
internal sealed class OnnxNode(NodeProto proto, int index)
{
    public NodeProto Proto { get; } = proto;

    public string Op => Proto.OpType;

    /// <summary>How errors name the node: its name if it has one, else its position, with its operator.</summary>
    public string Label => string.IsNullOrEmpty(Proto.Name)
        ? string.Create(CultureInfo.InvariantCulture, $"node #{index} ({Proto.OpType})")
        : $"node '{Proto.Name}' ({Proto.OpType})";

    public IReadOnlyList<string> Inputs => Proto.Input;

    public IReadOnlyList<string> Outputs => Proto.Output;

    /// <summary>Input <paramref name="k"/>'s name, or null when absent (beyond the list, or the empty name of an omitted optional input).</summary>
    public string? Input(int k) => k < Proto.Input.Count && Proto.Input[k].Length > 0 ? Proto.Input[k] : null;

    public AttributeProto? Attribute(string name) => Proto.Attribute.FirstOrDefault(a => a.Name == name);

    public long Int(string name, long fallback) => Attribute(name) is { } a ? Expect(a, AttributeProto.Types.AttributeType.Int).I : fallback;

    public float Float(string name, float fallback) => Attribute(name) is { } a ? Expect(a, AttributeProto.Types.AttributeType.Float).F : fallback;

    public string String(string name, string fallback) =>
        Attribute(name) is { } a ? Expect(a, AttributeProto.Types.AttributeType.String).S.ToStringUtf8() : fallback;

    public long[]? Ints(string name) => Attribute(name) is { } a ? [.. Expect(a, AttributeProto.Types.AttributeType.Ints).Ints] : null;

    public string[]? Strings(string name) =>
        Attribute(name) is { } a ? [.. Expect(a, AttributeProto.Types.AttributeType.Strings).Strings.Select(s => s.ToStringUtf8())] : null;

    /// <summary>An error about this node (and, when given, one of its attributes).</summary>
    public OnnxModelException Error(string message, string? attribute = null) =>
        new($"{Label}{(attribute is null ? "" : $", attribute '{attribute}'")}: {message}");

    private AttributeProto Expect(AttributeProto a, AttributeProto.Types.AttributeType type) =>
        a.Type == type ? a : throw Error($"expected {type}, found {a.Type}.", a.Name);
}
