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
/// A value of the graph: a row-major tensor, immutable once made. Values are held in their own type, float[], double[] or
/// long[], so that the glue operators move a float32 sequence without converting it. A tensor may be a strided view of
/// another's storage: Transpose, Squeeze, Unsqueeze and Slice make views and copy nothing, Reshape and Identity share a
/// contiguous array, and <see cref="Values"/> gathers a view into a contiguous array only when an operator needs one.
/// A user's input and the graph's outputs share their arrays with <see cref="TensorData"/> where they can.
/// </summary>
internal sealed class OnnxTensor
{
    private Array? _values;

    private OnnxTensor(OnnxElement type, long[] shape, Array storage, long[]? strides = null, long offset = 0)
    {
        Type = type;
        Shape = shape;
        Storage = storage;
        Strides = strides ?? RowMajorStrides(shape);
        Offset = offset;
    }

    public OnnxElement Type { get; }

    public long[] Shape { get; }

    /// <summary>The array the values live in: float[], double[] or long[] as <see cref="Type"/> is. Never written after construction.</summary>
    public Array Storage { get; }

    /// <summary>Element strides of each axis in <see cref="Storage"/>.</summary>
    public long[] Strides { get; }

    /// <summary>Where element [0, ..., 0] is in <see cref="Storage"/>.</summary>
    public long Offset { get; }

    /// <summary>Whether <see cref="Storage"/> holds exactly these values in row-major order.</summary>
    public bool IsContiguous => Offset == 0 && Storage.LongLength == Count && HasStrides(RowMajorStrides(Shape));

    /// <summary>The values, contiguous and row-major: the storage itself, or (once, for a view) a gathered copy. Never write to it.</summary>
    public Array Values => _values ??= IsContiguous ? Storage : Gathered(Storage, Shape, Strides, Offset);

    /// <summary>The values of an integer tensor; null for a real one.</summary>
    public long[]? Integers => Type == OnnxElement.Int64 ? (long[])Values : null;

    public int Rank => Shape.Length;

    public long Count => Elements(Shape);

    public string ShapeText => $"[{string.Join(", ", Shape)}]";

    /// <summary>A view of this tensor's storage with another shape, strides and offset (no copy).</summary>
    public OnnxTensor View(long[] shape, long[] strides, long offset) => new(Type, shape, Storage, strides, offset);

    /// <summary>A real tensor viewing <paramref name="storage"/> (no copy).</summary>
    public static OnnxTensor View<T>(T[] storage, long[] shape, long[] strides)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        new(typeof(T) == typeof(float) ? OnnxElement.Float : OnnxElement.Double, shape, storage, strides);

    /// <summary>
    /// Whether every axis longer than 1 has the stride given (axes of length 1 are never stepped along, so theirs do not
    /// matter).
    /// </summary>
    public bool HasStrides(long[] strides) => Enumerable.Range(0, Rank).All(i => Shape[i] == 1 || Strides[i] == strides[i]);

    /// <summary>
    /// The strides under which this tensor's storage, read with <paramref name="shape"/>, gives the same values in the same
    /// row-major order (a Reshape without a copy), or null when no strides do. Axes of length 1 are dropped; then each run
    /// of old axes that becomes a run of new axes must be contiguous within itself (stride[i] = stride[i+1]·shape[i+1]),
    /// as NumPy's reshape decides.
    /// </summary>
    public long[]? ReshapeStrides(long[] shape)
    {
        if (Count == 0 || Elements(shape) != Count)
        {
            return null;
        }

        int[] axes = [.. Enumerable.Range(0, Rank).Where(i => Shape[i] != 1)];
        long[] oldShape = [.. axes.Select(i => Shape[i])], oldStrides = [.. axes.Select(i => Strides[i])];
        var strides = new long[shape.Length];
        int ni = 0, oi = 0;
        while (ni < shape.Length && oi < oldShape.Length)
        {
            int nj = ni + 1, oj = oi + 1;
            long np = shape[ni], op = oldShape[oi];
            while (np != op)
            {
                if (np < op)
                {
                    np *= shape[nj++];
                }
                else
                {
                    op *= oldShape[oj++];
                }
            }

            for (int k = oi; k < oj - 1; k++)
            {
                if (oldStrides[k] != oldShape[k + 1] * oldStrides[k + 1])
                {
                    return null;
                }
            }

            strides[nj - 1] = oldStrides[oj - 1];
            for (int k = nj - 1; k > ni; k--)
            {
                strides[k - 1] = strides[k] * shape[k];
            }

            (ni, oi) = (nj, oj);
        }

        for (; ni < shape.Length; ni++)
        {
            strides[ni] = 1;                // trailing axes of length 1
        }

        return strides;
    }

    public static long[] RowMajorStrides(long[] shape)
    {
        var strides = new long[shape.Length];
        long s = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            strides[i] = s;
            s *= shape[i];
        }

        return strides;
    }

    /// <summary>A real tensor of <paramref name="type"/> from double values (rounded to float for Float).</summary>
    public static OnnxTensor Real(OnnxElement type, long[] shape, double[] values) =>
        type == OnnxElement.Float ? new(type, shape, Array.ConvertAll(values, v => (float)v)) : new(OnnxElement.Double, shape, values);

    public static OnnxTensor Ints(long[] shape, long[] values) => new(OnnxElement.Int64, shape, values);

    /// <summary>A tensor of the same type with other values, an array of the same kind as <see cref="Values"/>.</summary>
    public OnnxTensor With(long[] shape, Array values) => new(Type, shape, values);

    /// <summary>A new array of <paramref name="count"/> elements of this tensor's kind.</summary>
    public Array NewValues(long count) => Storage switch
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

    /// <summary>The values of a strided view, gathered into a new row-major array of the same kind.</summary>
    public static Array Gathered(Array source, long[] shape, long[] strides, long offset) => source switch
    {
        float[] f => Gathered(f, shape, strides, offset),
        double[] d => Gathered(d, shape, strides, offset),
        _ => Gathered((long[])source, shape, strides, offset),
    };

    /// <summary>The values at offset + Σ index_i·strides_i for every index of <paramref name="shape"/>, in row-major order.</summary>
    private static TValue[] Gathered<TValue>(TValue[] source, long[] shape, long[] strides, long offset)
    {
        long count = Elements(shape);
        var values = new TValue[count];
        int rank = shape.Length;
        if (count == 0)
        {
            return values;
        }

        // The innermost axis is copied in a tight loop; the outer ones advance an index counter.
        var index = new long[rank];
        long inner = rank == 0 ? 1 : shape[^1], innerStride = rank == 0 ? 0 : strides[^1];
        long from = offset;
        for (long at = 0; at < count; at += inner)
        {
            if (innerStride == 1)
            {
                source.AsSpan(checked((int)from), (int)inner).CopyTo(values.AsSpan(checked((int)at), (int)inner));
            }
            else
            {
                for (long j = 0; j < inner; j++)
                {
                    values[at + j] = source[from + (j * innerStride)];
                }
            }

            for (int d = rank - 2; d >= 0; d--)
            {
                from += strides[d];
                if (++index[d] < shape[d])
                {
                    break;
                }

                from -= strides[d] * shape[d];
                index[d] = 0;
            }
        }

        return values;
    }
}
