using System.Buffers.Binary;
using System.Text.Json;

namespace DeerSharp.IO;

/// <summary>
/// A safetensors file (Hugging Face's format: an 8-byte little-endian header length, a JSON header, then raw
/// little-endian data). Reads F32, F64, F16 and BF16 tensors (the half types widened to float32), writes F32 and F64.
/// </summary>
/// <remarks>
/// The header is validated whole when the file is opened: its length against the file, every entry's dtype and shape,
/// and every tensor's byte range against the data section and its dtype and shape, so no size in the file is trusted
/// before it is checked against the bytes present. Tensors of other dtypes may be present; asking for one is an error
/// that names its key and dtype.
/// </remarks>
public sealed class SafetensorsFile
{
    /// <summary>The largest JSON header accepted (100 MB, as the reference implementation).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private readonly string _name;
    private readonly byte[] _data;
    private readonly Dictionary<string, Entry> _entries;

    private readonly record struct Entry(string DType, int[] Shape, long Begin, long End);

    private SafetensorsFile(string name, byte[] data, Dictionary<string, Entry> entries, Dictionary<string, string> metadata)
    {
        _name = name;
        _data = data;
        _entries = entries;
        Metadata = metadata;
    }

    /// <summary>The tensor names, in header order.</summary>
    public IReadOnlyCollection<string> Keys => _entries.Keys;

    /// <summary>The header's __metadata__ strings.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Whether the file holds a tensor named <paramref name="key"/>.</summary>
    public bool Contains(string key) => _entries.ContainsKey(key);

    /// <summary>The dtype string (F32, BF16, I64, ...) and shape of <paramref name="key"/>.</summary>
    public (string DType, IReadOnlyList<int> Shape) Describe(string key)
    {
        Entry e = Find(key);
        return (e.DType, e.Shape);
    }

    /// <summary>Reads the safetensors file at <paramref name="path"/>.</summary>
    public static SafetensorsFile Read(string path) => TensorFiles.Read(path, Read);

    /// <summary>Reads a safetensors image from a seekable stream; <paramref name="name"/> names it in error messages.</summary>
    public static SafetensorsFile Read(Stream stream, string name)
    {
        long remaining = TensorFiles.Remaining(stream);
        if (remaining < 8)
        {
            throw Bad(name, $"it is {remaining} bytes long, shorter than the 8-byte header length");
        }

        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        if (lengthBytes[0] == (byte)'P' && lengthBytes[1] == (byte)'K' && lengthBytes[2] is 3 or 5 or 7)
        {
            throw Bad(name, "it is a zip archive: a PyTorch checkpoint written by torch.save (.pt, .pth), not safetensors. Write the module's state_dict "
                + "as safetensors with `python3 scripts/torch-to-safetensors.py MODEL.pt OUT.safetensors` (numpy and torch alone), or export it with torch.onnx.export and pass --model");
        }

        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > (ulong)MaxHeaderBytes || headerLength > (ulong)(remaining - 8))
        {
            throw Bad(name, $"its header claims {headerLength} bytes, but {remaining - 8} remain (at most {MaxHeaderBytes} accepted)");
        }

        var header = new byte[headerLength];
        stream.ReadExactly(header);
        long dataLength = remaining - 8 - (long)headerLength;
        if (dataLength > Array.MaxLength)
        {
            throw Bad(name, $"its data section of {dataLength} bytes is larger than this reader supports ({Array.MaxLength})");
        }

        (Dictionary<string, Entry> entries, Dictionary<string, string> metadata) = ParseHeader(header, dataLength, name);
        var data = new byte[dataLength];
        stream.ReadExactly(data);
        return new SafetensorsFile(name, data, entries, metadata);
    }

    /// <summary>Reads tensor <paramref name="key"/>, widening F16 and BF16 to float32.</summary>
    /// <exception cref="TensorFormatException">The key is missing or its dtype is not F32, F64, F16 or BF16.</exception>
    public TensorData Get(string key)
    {
        Entry e = Find(key);
        ReadOnlySpan<byte> bytes = _data.AsSpan((int)e.Begin, (int)(e.End - e.Begin));
        switch (e.DType)
        {
            case "F64":
            {
                var v = new double[bytes.Length / 8];
                for (int i = 0; i < v.Length; i++)
                {
                    v[i] = BinaryPrimitives.ReadDoubleLittleEndian(bytes.Slice(i * 8, 8));
                }

                return TensorData.Create(v, e.Shape, TensorElementType.Float64);
            }

            case "F32":
            {
                var v = new float[bytes.Length / 4];
                for (int i = 0; i < v.Length; i++)
                {
                    v[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.Slice(i * 4, 4));
                }

                return TensorData.Create(v, e.Shape, TensorElementType.Float32);
            }

            case "F16":
            {
                var v = new float[bytes.Length / 2];
                for (int i = 0; i < v.Length; i++)
                {
                    v[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(bytes.Slice(i * 2, 2));
                }

                return TensorData.Create(v, e.Shape, TensorElementType.Float16);
            }

            case "BF16":
            {
                // bfloat16 is the upper half of a float32.
                var v = new float[bytes.Length / 2];
                for (int i = 0; i < v.Length; i++)
                {
                    v[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(bytes.Slice(i * 2, 2)) << 16);
                }

                return TensorData.Create(v, e.Shape, TensorElementType.BFloat16);
            }

            default:
                throw new TensorFormatException(
                    $"{_name}: tensor '{key}' has dtype {e.DType}; expected a floating-point dtype (F32, F64, F16 or BF16).");
        }
    }

    /// <summary>Writes tensors (float32 as F32, float64 as F64) in key order to <paramref name="path"/>.</summary>
    public static void Write(string path, IReadOnlyDictionary<string, TensorData> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        using FileStream stream = File.Create(path);
        Write(stream, tensors, metadata);
    }

    /// <summary>Writes tensors as a safetensors image to <paramref name="stream"/>.</summary>
    public static void Write(Stream stream, IReadOnlyDictionary<string, TensorData> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(tensors);
        var ordered = tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        using var json = new MemoryStream();
        using (var w = new Utf8JsonWriter(json))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var kv in metadata)
                {
                    w.WriteString(kv.Key, kv.Value);
                }

                w.WriteEndObject();
            }

            long offset = 0;
            foreach (var (key, t) in ordered)
            {
                if (key == "__metadata__")
                {
                    throw new ArgumentException("'__metadata__' is reserved and cannot name a tensor.", nameof(tensors));
                }

                long size = (long)t.Count * (t.IsDouble ? 8 : 4);
                w.WriteStartObject(key);
                w.WriteString("dtype", t.IsDouble ? "F64" : "F32");
                w.WriteStartArray("shape");
                foreach (int d in t.Shape)
                {
                    w.WriteNumberValue(d);
                }

                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + size);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += size;
            }

            w.WriteEndObject();
        }

        // Pad the header with spaces to a multiple of 8 bytes, as the reference writer does.
        int padded = (int)((json.Length + 7) / 8 * 8);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
        stream.Write(length);
        stream.Write(json.GetBuffer().AsSpan(0, (int)json.Length));
        for (long i = json.Length; i < padded; i++)
        {
            stream.WriteByte((byte)' ');
        }

        foreach (var (_, t) in ordered)
        {
            Npy.WriteLittleEndian(stream, t);
        }
    }

    private Entry Find(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (!_entries.TryGetValue(key, out Entry e))
        {
            string known = string.Join(", ", _entries.Keys.Take(8).Select(k => $"'{k}'")) + (_entries.Count > 8 ? ", ..." : "");
            throw new TensorFormatException($"{_name}: no tensor '{key}' (the file holds {(_entries.Count == 0 ? "none" : known)}).");
        }

        return e;
    }

    private static int ElementSize(string dtype) => dtype switch
    {
        "F64" or "I64" or "U64" => 8,
        "F32" or "I32" or "U32" => 4,
        "F16" or "BF16" or "I16" or "U16" => 2,
        "I8" or "U8" or "BOOL" or "F8_E4M3" or "F8_E5M2" => 1,
        _ => 0,
    };

    private static (Dictionary<string, Entry>, Dictionary<string, string>) ParseHeader(byte[] header, long dataLength, string name)
    {
        if (!System.Text.Unicode.Utf8.IsValid(header))
        {
            throw Bad(name, "its header is not valid UTF-8");
        }

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw new TensorFormatException($"{name}: not a readable safetensors file: its header is not valid JSON ({e.Message}).", e);
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw Bad(name, "its header is not a JSON object");
            }

            var entries = new Dictionary<string, Entry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (JsonProperty p in doc.RootElement.EnumerateObject())
            {
                if (p.Name == "__metadata__")
                {
                    if (p.Value.ValueKind != JsonValueKind.Object)
                    {
                        throw Bad(name, "its __metadata__ is not an object");
                    }

                    foreach (JsonProperty m in p.Value.EnumerateObject())
                    {
                        metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                    }

                    continue;
                }

                if (entries.ContainsKey(p.Name))
                {
                    throw Bad(name, $"tensor '{p.Name}' appears twice in its header");
                }

                entries[p.Name] = ParseEntry(p, dataLength, name);
            }

            RequireDisjoint(entries, name);
            return (entries, metadata);
        }
    }

    /// <summary>
    /// Two tensors may not share bytes: overlapping data_offsets would make them read the same data silently. (Empty
    /// tensors occupy no bytes and overlap nothing.)
    /// </summary>
    private static void RequireDisjoint(Dictionary<string, Entry> entries, string name)
    {
        var spans = entries.Where(e => e.Value.End > e.Value.Begin).OrderBy(e => e.Value.Begin).ToList();
        for (int i = 1; i < spans.Count; i++)
        {
            var (before, after) = (spans[i - 1], spans[i]);
            if (after.Value.Begin < before.Value.End)
            {
                throw Bad(name,
                    $"tensors '{before.Key}' (data_offsets [{before.Value.Begin}, {before.Value.End}]) and '{after.Key}' ([{after.Value.Begin}, {after.Value.End}]) overlap");
            }
        }
    }

    private static Entry ParseEntry(JsonProperty p, long dataLength, string name)
    {
        string where = $"tensor '{p.Name}'";
        if (p.Value.ValueKind != JsonValueKind.Object
            || !p.Value.TryGetProperty("dtype", out JsonElement dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String
            || !p.Value.TryGetProperty("shape", out JsonElement shapeElement) || shapeElement.ValueKind != JsonValueKind.Array
            || !p.Value.TryGetProperty("data_offsets", out JsonElement offsetsElement) || offsetsElement.ValueKind != JsonValueKind.Array)
        {
            throw Bad(name, $"{where} lacks a string 'dtype', an array 'shape' or an array 'data_offsets'");
        }

        string dtype = dtypeElement.GetString()!;
        int size = ElementSize(dtype);
        if (size == 0)
        {
            throw Bad(name, $"{where} has unknown dtype '{dtype}'");
        }

        if (shapeElement.GetArrayLength() > 32)
        {
            throw Bad(name, $"{where} has more than 32 dimensions");
        }

        var shape = new int[shapeElement.GetArrayLength()];
        long count = 1;
        int k = 0;
        foreach (JsonElement d in shapeElement.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt32(out int dim) || dim < 0)
            {
                throw Bad(name, $"{where} has a dimension that is not a non-negative 32-bit integer");
            }

            shape[k++] = dim;
            if (dim != 0 && count > Array.MaxLength / dim)
            {
                throw Bad(name, $"{where} has shape [{string.Join(", ", shape.Take(k))}...] with more values than one array can hold");
            }

            count *= dim;
        }

        if (offsetsElement.GetArrayLength() != 2)
        {
            throw Bad(name, $"{where} must have data_offsets [begin, end]");
        }

        long[] o = [.. offsetsElement.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out long v) ? v : -1)];
        if (o[0] < 0 || o[1] < o[0] || o[1] > dataLength)
        {
            throw Bad(name, $"{where} has data_offsets [{o[0]}, {o[1]}] outside the {dataLength}-byte data section (truncated?)");
        }

        if (o[1] - o[0] != count * size)
        {
            throw Bad(name, $"{where} of dtype {dtype} and shape [{string.Join(", ", shape)}] needs {count * size} bytes, but its data_offsets span {o[1] - o[0]}");
        }

        return new Entry(dtype, shape, o[0], o[1]);
    }

    private static TensorFormatException Bad(string name, string problem) => new($"{name}: not a readable safetensors file: {problem}.");
}
