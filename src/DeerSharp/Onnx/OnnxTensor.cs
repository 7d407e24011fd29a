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
/// A value of the graph: a dense row-major tensor. Real values are held as double whatever their type (the glue
/// operators only move them, so float32 data round-trips exactly); integer values as long.
/// </summary>
internal sealed class OnnxTensor
{
    private OnnxTensor(OnnxElement type, long[] shape, double[]? reals, long[]? integers)
    {
        Type = type;
        Shape = shape;
        Reals = reals;
        Integers = integers;
    }

    public OnnxElement Type { get; }

    public long[] Shape { get; }

    public double[]? Reals { get; }

    public long[]? Integers { get; }

    public int Rank => Shape.Length;

    public long Count => Elements(Shape);

    public string ShapeText => $"[{string.Join(", ", Shape)}]";

    public static OnnxTensor Real(OnnxElement type, long[] shape, double[] values) => new(type, shape, values, null);

    public static OnnxTensor Ints(long[] shape, long[] values) => new(OnnxElement.Int64, shape, null, values);

    /// <summary>A tensor of the same type with other values (integers or reals, as this one holds).</summary>
    public OnnxTensor With(long[] shape, Array values) => Type == OnnxElement.Int64 ? Ints(shape, (long[])values) : Real(Type, shape, (double[])values);

    /// <summary>The values as an array of this tensor's kind (double[] or long[]).</summary>
    public Array Values => (Array?)Reals ?? Integers!;

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

    /// <summary>The values of a real tensor as <typeparamref name="T"/>.</summary>
    public T[] ToArray<T>()
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        double[] reals = Reals ?? throw new OnnxModelException($"expected real values, found an {Type} tensor of shape {ShapeText}.");
        var values = new T[reals.Length];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = T.CreateTruncating(reals[i]);
        }

        return values;
    }

    /// <summary>A real tensor from values of <typeparamref name="T"/>.</summary>
    public static OnnxTensor From<T>(T[] values, long[] shape)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var reals = new double[values.Length];
        for (int i = 0; i < reals.Length; i++)
        {
            reals[i] = double.CreateTruncating(values[i]);
        }

        return Real(typeof(T) == typeof(float) ? OnnxElement.Float : OnnxElement.Double, shape, reals);
    }

    /// <summary>A user's tensor, converted to <paramref name="type"/> (the graph input's declared type).</summary>
    public static OnnxTensor From(TensorData data, OnnxElement type)
    {
        long[] shape = [.. data.Shape.Select(d => (long)d)];
        return type switch
        {
            OnnxElement.Float => From(data.ToArray<float>(), shape),
            OnnxElement.Double => From(data.ToArray<double>(), shape),
            _ => Ints(shape, [.. data.ToArray<double>().Select(v => (long)v)]),
        };
    }

    /// <summary>This tensor as a <see cref="TensorData"/>: float32 or float64 as its type is (integers as float64).</summary>
    public TensorData ToTensorData()
    {
        int[] shape = [.. Shape.Select(d => checked((int)d))];
        return Type == OnnxElement.Float ? TensorData.FromSingle(ToArray<float>(), shape)
            : Integers is not null ? TensorData.FromDouble([.. Integers.Select(v => (double)v)], shape)
            : TensorData.FromDouble(ToArray<double>(), shape);
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
                return Real(OnnxElement.Float, shape, raw.Length > 0 ? Decode(raw, 4, count, what, b => (double)BinaryPrimitives.ReadSingleLittleEndian(b))
                    : Typed(t.FloatData.Select(v => (double)v).ToArray(), count, what));
            case TensorProto.Types.DataType.Double:
                return Real(OnnxElement.Double, shape, raw.Length > 0 ? Decode(raw, 8, count, what, BinaryPrimitives.ReadDoubleLittleEndian)
                    : Typed(t.DoubleData.ToArray(), count, what));
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
