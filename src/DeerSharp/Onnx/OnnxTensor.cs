using System.Buffers.Binary;
using DeerSharp.IO;
using Onnx;

namespace DeerSharp.Onnx;

/// <summary>The element types the graph's values take: the recurrent data (float, double) and shapes and indices (int64).</summary>
internal enum OnnxElement
{
    Float,
    Double,
    Int64,
}

/// <summary>
/// A value of the graph: a dense row-major tensor, immutable once made. Values are held in their own type, float[],
/// double[] or long[], so that the glue operators move a float32 sequence without converting it, and a tensor that only
/// changes shape (Reshape, Squeeze, Unsqueeze, Identity, a Transpose that moves unit axes) shares its input's array. A
/// user's input and the graph's outputs share their arrays with <see cref="TensorData"/> in the same way.
/// </summary>
internal sealed class OnnxTensor
{
    private OnnxTensor(OnnxElement type, long[] shape, Array values)
    {
        Type = type;
        Shape = shape;
        Values = values;
    }

    public OnnxElement Type { get; }

    public long[] Shape { get; }

    /// <summary>The values: float[], double[] or long[] as <see cref="Type"/> is. Never written after construction.</summary>
    public Array Values { get; }

    /// <summary>The values of an integer tensor; null for a real one.</summary>
    public long[]? Integers => Values as long[];

    public int Rank => Shape.Length;

    public long Count => Elements(Shape);

    public string ShapeText => $"[{string.Join(", ", Shape)}]";

    /// <summary>A real tensor of <paramref name="type"/> from double values (rounded to float for Float).</summary>
    public static OnnxTensor Real(OnnxElement type, long[] shape, double[] values) =>
        type == OnnxElement.Float ? new(type, shape, Array.ConvertAll(values, v => (float)v)) : new(OnnxElement.Double, shape, values);

    public static OnnxTensor Ints(long[] shape, long[] values) => new(OnnxElement.Int64, shape, values);

    /// <summary>A tensor of the same type with other values, an array of the same kind as <see cref="Values"/>.</summary>
    public OnnxTensor With(long[] shape, Array values) => new(Type, shape, values);

    /// <summary>A new array of <paramref name="count"/> elements of this tensor's kind.</summary>
    public Array NewValues(long count) => Values switch
    {
        float[] => new float[count],
        double[] => new double[count],
        _ => new long[count],
    };

    public static long Elements(long[] shape)
    {
        long count = 1;
        foreach (long d in shape)
        {
            count *= d;
        }

        return count;
    }

    /// <summary>The integers of a shape, index or axes tensor; <paramref name="what"/> names it in the error otherwise.</summary>
    public long[] AsIntegers(string what) =>
        Integers ?? throw new OnnxModelException($"{what} must be an integer tensor; it is {Type}.");

    /// <summary>The values as doubles (a copy; for the small tensors that attributes and fills are).</summary>
    public double[] AsDoubles() => Values switch
    {
        float[] f => Array.ConvertAll(f, v => (double)v),
        double[] d => (double[])d.Clone(),
        long[] l => Array.ConvertAll(l, v => (double)v),
        _ => throw new InvalidOperationException("unreachable"),
    };

    /// <summary>
    /// The values of a real tensor as <typeparamref name="T"/>: this tensor's own array when it holds <typeparamref name="T"/>
    /// (the caller must not write to it), otherwise a converted copy.
    /// </summary>
    public T[] Read<T>()
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        return Values switch
        {
            T[] same => same,
            float[] f => Array.ConvertAll(f, T.CreateTruncating),
            double[] d => Array.ConvertAll(d, T.CreateTruncating),
            _ => throw new OnnxModelException($"expected real values, found an {Type} tensor of shape {ShapeText}."),
        };
    }

    /// <summary>A real tensor that takes <paramref name="values"/> as its own (no copy).</summary>
    public static OnnxTensor Of<T>(T[] values, long[] shape)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        new(typeof(T) == typeof(float) ? OnnxElement.Float : OnnxElement.Double, shape, values);

    /// <summary>A user's tensor as <paramref name="type"/> (the graph input's declared type): shared when the types match.</summary>
    public static OnnxTensor From(TensorData data, OnnxElement type)
    {
        long[] shape = [.. data.Shape.Select(d => (long)d)];
        return type switch
        {
            OnnxElement.Float => new(type, shape, data.Storage as float[] ?? data.ToArray<float>()),
            OnnxElement.Double => new(type, shape, data.Storage as double[] ?? data.ToArray<double>()),
            _ => Ints(shape, [.. data.ToArray<double>().Select(v => (long)v)]),
        };
    }

    /// <summary>This tensor as a <see cref="TensorData"/> sharing its values: float32 or float64 as its type is (integers as float64).</summary>
    public TensorData ToTensorData()
    {
        int[] shape = [.. Shape.Select(d => checked((int)d))];
        return Values switch
        {
            float[] f => TensorData.FromSingle(f, shape),
            double[] d => TensorData.FromDouble(d, shape),
            _ => TensorData.FromDouble(AsDoubles(), shape),
        };
    }

    /// <summary>
    /// An initializer or Constant's tensor: raw little-endian bytes or the typed fields, float, double, int32 or int64.
    /// Tensors kept in external files are refused by name.
    /// </summary>
    public static OnnxTensor FromProto(TensorProto t, string what)
    {
        long[] shape = [.. t.Dims];
        if (shape.Any(d => d < 0))
        {
            throw new OnnxModelException($"{what}: its shape [{string.Join(", ", shape)}] has a negative dimension.");
        }

        if (t.DataLocation == TensorProto.Types.DataLocation.External)
        {
            throw new OnnxModelException($"{what} is stored in an external file (data_location = EXTERNAL), which Deer does not read; save the model with its tensors inside (onnx.save(model, path, save_as_external_data=False)).");
        }

        long count = Elements(shape);
        byte[] raw = t.RawData.ToByteArray();
        var type = (TensorProto.Types.DataType)t.DataType;
        switch (type)
        {
            case TensorProto.Types.DataType.Float:
                return Of(raw.Length > 0 ? Decode(raw, 4, count, what, BinaryPrimitives.ReadSingleLittleEndian) : Typed(t.FloatData.ToArray(), count, what), shape);
            case TensorProto.Types.DataType.Double:
                return Of(raw.Length > 0 ? Decode(raw, 8, count, what, BinaryPrimitives.ReadDoubleLittleEndian) : Typed(t.DoubleData.ToArray(), count, what), shape);
            case TensorProto.Types.DataType.Int64:
                return Ints(shape, raw.Length > 0 ? Decode(raw, 8, count, what, BinaryPrimitives.ReadInt64LittleEndian)
                    : Typed(t.Int64Data.ToArray(), count, what));
            case TensorProto.Types.DataType.Int32:
                return Ints(shape, raw.Length > 0 ? Decode(raw, 4, count, what, b => (long)BinaryPrimitives.ReadInt32LittleEndian(b))
                    : Typed(t.Int32Data.Select(v => (long)v).ToArray(), count, what));
            default:
                throw new OnnxModelException($"{what} has element type {type}; Deer reads float, double, int32 and int64 tensors.");
        }
    }

    private static TValue[] Decode<TValue>(byte[] raw, int size, long count, string what, ReadValue<TValue> read)
    {
        if (raw.LongLength != count * size)
        {
            throw new OnnxModelException($"{what}: its raw_data holds {raw.Length} bytes, but its shape needs {count * size}.");
        }

        var values = new TValue[count];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = read(raw.AsSpan(i * size, size));
        }

        return values;
    }

    private delegate TValue ReadValue<out TValue>(ReadOnlySpan<byte> bytes);

    private static TValue[] Typed<TValue>(TValue[] values, long count, string what) =>
        values.LongLength == count ? values : throw new OnnxModelException($"{what}: it holds {values.Length} values, but its shape needs {count}.");
}
