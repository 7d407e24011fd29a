using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace DeerSharp.IO;

/// <summary>
/// Reads and writes NumPy .npy files: float32 and float64 (either byte order), C order, any rank, format versions 1.0, 2.0
/// and 3.0. Validation is strict, and every size is checked against the bytes actually present before anything is
/// allocated, so a forged header cannot cause a huge allocation or a long read.
/// </summary>
public static class Npy
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>The largest header accepted: NumPy writes a few hundred bytes; more means a damaged or forged file.</summary>
    public const int MaxHeaderBytes = 1 << 16;

    /// <summary>Reads the .npy file at <paramref name="path"/>.</summary>
    public static TensorData Read(string path) => TensorFiles.Read(path, Read);

    /// <summary>Reads an .npy image from a seekable stream; <paramref name="name"/> names it in error messages.</summary>
    public static TensorData Read(Stream stream, string name)
    {
        long remaining = TensorFiles.Remaining(stream);
        Span<byte> preamble = stackalloc byte[12];
        if (remaining < 10)
        {
            throw Bad(name, $"it is {remaining} bytes long, shorter than any .npy header");
        }

        stream.ReadExactly(preamble[..8]);
        if (!preamble[..6].SequenceEqual(Magic))
        {
            throw Bad(name, "it does not start with the .npy magic string \\x93NUMPY");
        }

        byte major = preamble[6], minor = preamble[7];
        int lengthBytes = major switch
        {
            1 => 2,
            2 or 3 => 4,
            _ => throw Bad(name, $"format version {major}.{minor} is not supported (expected 1.0, 2.0 or 3.0)"),
        };
        if (minor != 0)
        {
            throw Bad(name, $"format version {major}.{minor} is not supported (expected 1.0, 2.0 or 3.0)");
        }

        stream.ReadExactly(preamble.Slice(8, lengthBytes));
        long headerLength = lengthBytes == 2
            ? BinaryPrimitives.ReadUInt16LittleEndian(preamble.Slice(8, 2))
            : BinaryPrimitives.ReadUInt32LittleEndian(preamble.Slice(8, 4));
        long prefix = 8 + lengthBytes;
        if (headerLength > MaxHeaderBytes || headerLength > remaining - prefix)
        {
            throw Bad(name, $"its header claims {headerLength} bytes, but {Math.Max(0, remaining - prefix)} remain (at most {MaxHeaderBytes} accepted)");
        }

        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        string header;
        try
        {
            header = (major == 3 ? new UTF8Encoding(false, true) : Encoding.Latin1).GetString(headerBytes);
        }
        catch (DecoderFallbackException e)
        {
            throw new TensorFormatException($"{name}: the .npy header is not valid UTF-8.", e);
        }

        (string descr, bool fortran, int[] shape) = ParseHeader(header, name);
        if (fortran)
        {
            throw Bad(name, "it is stored in Fortran order; only C order is supported (save with np.ascontiguousarray)");
        }

        (bool isDouble, bool bigEndian) = descr switch
        {
            "<f4" or "=f4" => (false, false),
            "<f8" or "=f8" => (true, false),
            ">f4" => (false, true),
            ">f8" => (true, true),
            _ => throw Bad(name, $"its dtype is '{descr}'; only float32 ('<f4') and float64 ('<f8') are supported"),
        };

        int elementSize = isDouble ? 8 : 4;
        long count = 1;
        foreach (int dim in shape)
        {
            count *= dim;
            if (count > Array.MaxLength)
            {
                throw Bad(name, $"its shape [{string.Join(", ", shape)}] holds more values than one array can");
            }
        }

        long dataBytes = remaining - prefix - headerLength;
        if (dataBytes != count * elementSize)
        {
            throw Bad(name, $"its shape [{string.Join(", ", shape)}] of {(isDouble ? "float64" : "float32")} needs {count * elementSize} data bytes, but the file has {dataBytes}"
                + (dataBytes < count * elementSize ? " (truncated?)" : ""));
        }

        if (isDouble)
        {
            var values = new double[count];
            stream.ReadExactly(MemoryMarshal.AsBytes(values.AsSpan()));
            if (bigEndian == BitConverter.IsLittleEndian)
            {
                Span<long> raw = MemoryMarshal.Cast<double, long>(values.AsSpan());
                BinaryPrimitives.ReverseEndianness(raw, raw);
            }

            return TensorData.Create(values, shape, TensorElementType.Float64);
        }
        else
        {
            var values = new float[count];
            stream.ReadExactly(MemoryMarshal.AsBytes(values.AsSpan()));
            if (bigEndian == BitConverter.IsLittleEndian)
            {
                Span<int> raw = MemoryMarshal.Cast<float, int>(values.AsSpan());
                BinaryPrimitives.ReverseEndianness(raw, raw);
            }

            return TensorData.Create(values, shape, TensorElementType.Float32);
        }
    }

    /// <summary>Writes <paramref name="tensor"/> as a version 1.0 .npy file (version 2.0 if the header needs it).</summary>
    public static void Write(string path, TensorData tensor)
    {
        ArgumentNullException.ThrowIfNull(path);
        using FileStream stream = File.Create(path);
        Write(stream, tensor);
    }

    /// <summary>Writes <paramref name="tensor"/> as an .npy image to <paramref name="stream"/>, little-endian, C order.</summary>
    public static void Write(Stream stream, TensorData tensor)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(tensor);
        string shape = tensor.Rank == 1 ? $"({tensor.Shape[0]},)" : $"({string.Join(", ", tensor.Shape)})";
        string dict = string.Create(CultureInfo.InvariantCulture,
            $"{{'descr': '{(tensor.IsDouble ? "<f8" : "<f4")}', 'fortran_order': False, 'shape': {shape}, }}");
        // Pad with spaces and a newline so the data starts on a 64-byte boundary, as NumPy does.
        int prefix = dict.Length + 1 + 10 > ushort.MaxValue ? 12 : 10;
        int total = (prefix + dict.Length + 1 + 63) / 64 * 64;
        string header = dict.PadRight(total - prefix - 1) + "\n";
        Span<byte> pre = stackalloc byte[12];
        Magic.CopyTo(pre);
        pre[6] = prefix == 10 ? (byte)1 : (byte)2;
        pre[7] = 0;
        if (prefix == 10)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(pre[8..], (ushort)header.Length);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(pre[8..], (uint)header.Length);
        }

        stream.Write(pre[..prefix]);
        stream.Write(Encoding.Latin1.GetBytes(header));
        WriteLittleEndian(stream, tensor);
    }

    internal static void WriteLittleEndian(Stream stream, TensorData tensor)
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("Writing tensors requires a little-endian machine.");
        }

        if (tensor.IsDouble)
        {
            stream.Write(MemoryMarshal.AsBytes(tensor.DoubleSpan));
        }
        else
        {
            stream.Write(MemoryMarshal.AsBytes(tensor.SingleSpan));
        }
    }

    /// <summary>Parses NumPy's header, a Python dict literal with exactly the keys descr, fortran_order and shape.</summary>
    private static (string Descr, bool Fortran, int[] Shape) ParseHeader(string header, string name)
    {
        var p = new HeaderParser(header, name);
        string? descr = null;
        bool? fortran = null;
        int[]? shape = null;
        p.Skip();
        p.Expect('{');
        while (true)
        {
            p.Skip();
            if (p.TryConsume('}'))
            {
                break;
            }

            string key = p.String();
            p.Skip();
            p.Expect(':');
            p.Skip();
            switch (key)
            {
                case "descr" when descr is null:
                    descr = p.String();
                    break;
                case "fortran_order" when fortran is null:
                    fortran = p.Boolean();
                    break;
                case "shape" when shape is null:
                    shape = p.Tuple();
                    break;
                default:
                    throw Bad(name, $"its header has an unexpected or repeated key '{key}'");
            }

            p.Skip();
            if (!p.TryConsume(','))
            {
                p.Skip();
                p.Expect('}');
                break;
            }
        }

        p.Skip();
        if (!p.AtEnd)
        {
            throw Bad(name, "its header has text after the dictionary");
        }

        if (descr is null || fortran is null || shape is null)
        {
            throw Bad(name, "its header lacks one of the keys 'descr', 'fortran_order' and 'shape'");
        }

        return (descr, fortran.Value, shape);
    }

    private static TensorFormatException Bad(string name, string problem) => new($"{name}: not a readable .npy file: {problem}.");

    private ref struct HeaderParser(string text, string name)
    {
        private int _i;

        public readonly bool AtEnd => _i >= text.Length;

        public void Skip()
        {
            while (_i < text.Length && (text[_i] == ' ' || text[_i] == '\n' || text[_i] == '\t' || text[_i] == '\r'))
            {
                _i++;
            }
        }

        public bool TryConsume(char c)
        {
            if (_i < text.Length && text[_i] == c)
            {
                _i++;
                return true;
            }

            return false;
        }

        public void Expect(char c)
        {
            if (!TryConsume(c))
            {
                throw Bad(name, $"its header is not a Python dict literal (expected '{c}' at offset {_i})");
            }
        }

        public string String()
        {
            if (_i >= text.Length || (text[_i] != '\'' && text[_i] != '"'))
            {
                throw Bad(name, $"its header is not a Python dict literal (expected a quoted string at offset {_i})");
            }

            char quote = text[_i++];
            int start = _i;
            while (_i < text.Length && text[_i] != quote)
            {
                _i++;
            }

            if (_i >= text.Length)
            {
                throw Bad(name, "its header has an unterminated string");
            }

            return text[start.._i++];
        }

        public bool Boolean()
        {
            if (text.AsSpan(_i).StartsWith("True"))
            {
                _i += 4;
                return true;
            }

            if (text.AsSpan(_i).StartsWith("False"))
            {
                _i += 5;
                return false;
            }

            throw Bad(name, "its header's fortran_order is neither True nor False");
        }

        public int[] Tuple()
        {
            Expect('(');
            var dims = new List<int>();
            while (true)
            {
                Skip();
                if (TryConsume(')'))
                {
                    break;
                }

                int start = _i;
                while (_i < text.Length && char.IsAsciiDigit(text[_i]))
                {
                    _i++;
                }

                if (_i == start || _i - start > 10 || !int.TryParse(text.AsSpan(start, _i - start), NumberStyles.None, CultureInfo.InvariantCulture, out int dim))
                {
                    throw Bad(name, $"its shape has a dimension that is not a non-negative 32-bit integer (offset {start})");
                }

                dims.Add(dim);
                if (dims.Count > 32)
                {
                    throw Bad(name, "its shape has more than 32 dimensions");
                }

                Skip();
                if (!TryConsume(','))
                {
                    Skip();
                    Expect(')');
                    break;
                }
            }

            return [.. dims];
        }
    }
}
