
namespace DeerSharp.IO;

/// <summary>The element type a tensor had in its file.</summary>
public enum TensorElementType
{
    /// <summary>IEEE binary32 (NumPy f4, safetensors F32).</summary>
    Float32,

    /// <summary>IEEE binary64 (NumPy f8, safetensors F64).</summary>
    Float64,

    /// <summary>IEEE binary16 (safetensors F16), widened to float32 on read.</summary>
    Float16,

    /// <summary>bfloat16 (safetensors BF16), widened to float32 on read.</summary>
    BFloat16,
}

/// <summary>A dense row-major (C order) tensor read from or written to a file: its shape, its values and their original type.</summary>
public sealed class TensorData
{
    private readonly float[]? _single;
    private readonly double[]? _double;

    private TensorData(int[] shape, float[]? single, double[]? dbl, TensorElementType elementType)
    {
        Shape = shape;
        _single = single;
        _double = dbl;
        ElementType = elementType;
    }

    /// <summary>Wraps float values of the given shape.</summary>
    public static TensorData FromSingle(float[] values, params int[] shape) => Create(values, shape, TensorElementType.Float32);

    /// <summary>Wraps double values of the given shape.</summary>
    public static TensorData FromDouble(double[] values, params int[] shape) => Create(values, shape, TensorElementType.Float64);

    /// <summary>Wraps values of either supported element type.</summary>
    public static TensorData From<T>(T[] values, params int[] shape)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(values);
        return values switch
        {
            float[] f => FromSingle(f, shape),
            double[] d => FromDouble(d, shape),
            _ => throw new NotSupportedException($"Tensors hold float or double; {typeof(T).Name} is not supported."),
        };
    }

    internal static TensorData Create(Array values, int[] shape, TensorElementType elementType)
    {
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(shape);
        long count = 1;
        foreach (int dim in shape)
        {
            if (dim < 0)
            {
                throw new ArgumentException($"Shape [{string.Join(", ", shape)}] has a negative dimension.", nameof(shape));
            }

            count *= dim;
        }

        if (count != values.Length)
        {
            throw new ArgumentException($"Shape [{string.Join(", ", shape)}] holds {count} values; {values.Length} were given.", nameof(values));
        }

        return new TensorData((int[])shape.Clone(), values as float[], values as double[], elementType);
    }

    /// <summary>The dimensions, outermost first.</summary>
    public IReadOnlyList<int> Shape { get; }

    /// <summary>The number of dimensions.</summary>
    public int Rank => Shape.Count;

    /// <summary>The number of values.</summary>
    public int Count => _single?.Length ?? _double!.Length;

    /// <summary>The element type in the file (half types are held widened to float32).</summary>
    public TensorElementType ElementType { get; }

    /// <summary>Whether the values are held as double (the file's type was float64).</summary>
    public bool IsDouble => _double is not null;

    /// <summary>The shape as "[a, b, c]".</summary>
    public string ShapeText => $"[{string.Join(", ", Shape)}]";

    /// <summary>The values as <typeparamref name="T"/>, converted if the stored type differs (a fresh array either way).</summary>
    public T[] ToArray<T>()
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (_single is not null)
        {
            return _single is T[] same ? (T[])same.Clone() : [.. _single.Select(T.CreateTruncating)];
        }

        return _double is T[] sameD ? (T[])sameD.Clone() : [.. _double!.Select(T.CreateTruncating)];
    }

    /// <summary>The values array itself (float[] or double[]), for the library's readers that never write to it.</summary>
    internal Array Storage => (Array?)_single ?? _double!;

    internal ReadOnlySpan<float> SingleSpan => _single;

    internal ReadOnlySpan<double> DoubleSpan => _double;

    /// <summary>Index of the first NaN or infinity, or -1.</summary>
    public long IndexOfNonFinite()
    {
        if (_single is not null)
        {
            for (int i = 0; i < _single.Length; i++)
            {
                if (!float.IsFinite(_single[i]))
                {
                    return i;
                }
            }
        }
        else
        {
            for (int i = 0; i < _double!.Length; i++)
            {
                if (!double.IsFinite(_double[i]))
                {
                    return i;
                }
            }
        }

        return -1;
    }
}
