using System.Buffers.Binary;
using System.Text;
using DeerSharp.IO;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace DeerSharp.Tests;

/// <summary>The .npy and safetensors readers and writers: NumPy's own files, round trips, half types and hostile bytes.</summary>
public class TensorFileTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    private static double Known(int i) => (i - 7.25) / 4.0;

    [Theory]
    [InlineData("f64_rank3_v1.npy", TensorElementType.Float64)]
    [InlineData("f32_rank3_v1.npy", TensorElementType.Float32)]
    [InlineData("f64_rank3_v2.npy", TensorElementType.Float64)]
    [InlineData("f32_rank3_v3.npy", TensorElementType.Float32)]
    [InlineData("f64_big_endian.npy", TensorElementType.Float64)]
    public void Reads_files_written_by_NumPy(string name, TensorElementType type)
    {
        TensorData t = Npy.Read(Fixture(name));
        Assert.Equal(type, t.ElementType);
        Assert.Equal([2, 3, 4], t.Shape);
        double[] v = t.ToArray<double>();
        for (int i = 0; i < 24; i++)
        {
            Assert.Equal(Known(i), v[i]);
        }
    }

    [Fact]
    public void Reads_scalars_and_empty_arrays()
    {
        TensorData s = Npy.Read(Fixture("f32_scalar.npy"));
        Assert.Empty(s.Shape);
        Assert.Equal([2.5f], s.ToArray<float>());
        TensorData e = Npy.Read(Fixture("f64_empty.npy"));
        Assert.Equal([0, 3], e.Shape);
        Assert.Equal(0, e.Count);
    }

    [Theory]
    [InlineData("f64_fortran.npy", "Fortran order")]
    [InlineData("i64_rank1.npy", "'<i8'")]
    public void Refuses_layouts_and_dtypes_it_does_not_support(string name, string reason)
    {
        var ex = Assert.Throws<TensorFormatException>(() => Npy.Read(Fixture(name)));
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
        Assert.Contains(name, ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new int[0])]
    [InlineData(new[] { 5 })]
    [InlineData(new[] { 3, 4 })]
    [InlineData(new[] { 2, 0, 3 })]
    [InlineData(new[] { 2, 3, 1, 2 })]
    public void Npy_round_trips_both_types(int[] shape)
    {
        int count = shape.Aggregate(1, (a, b) => a * b);
        double[] values = Numbers.Uniform(new Random(count), count, 1e3);
        foreach (TensorData t in new[] { TensorData.FromDouble(values, shape), TensorData.FromSingle(Numbers.As<float>(values), shape) })
        {
            using var stream = new MemoryStream();
            Npy.Write(stream, t);
            Assert.Equal(0, (stream.Length - t.Count * (t.IsDouble ? 8 : 4)) % 64);    // data aligned as NumPy aligns it
            stream.Position = 0;
            TensorData back = Npy.Read(stream, "round-trip");
            Assert.Equal(t.Shape, back.Shape);
            Assert.Equal(t.IsDouble, back.IsDouble);
            Assert.Equal(t.ToArray<double>(), back.ToArray<double>());
        }
    }

    /// <summary>A tensor to write and read back: its values' seed, its shape (rank 0 to 4, dimensions 0 to 6) and type.</summary>
    public sealed record RoundTripCase(int Seed, int[] Shape, bool Double)
    {
        public override string ToString() => $"[{string.Join(", ", Shape)}] {(Double ? "f8" : "f4")} seed={Seed}";
    }

    internal static Gen<RoundTripCase> RoundTripCases =>
        from seed in Gen.Choose(0, int.MaxValue)
        from rank in Gen.Choose(0, 4)
        from shape in Gen.ArrayOf(Gen.Choose(0, 6), rank)
        from dbl in Gen.Elements(true, false)
        select new RoundTripCase(seed, shape, dbl);

    [Property(Arbitrary = new[] { typeof(DeerArbitraries) }, MaxTest = 200)]
    public void Npy_and_safetensors_round_trip_every_shape_and_type(RoundTripCase c)
    {
        int count = c.Shape.Aggregate(1, (a, b) => a * b);
        double[] values = Numbers.Uniform(new Random(c.Seed), count, 1e3);
        TensorData t = c.Double ? TensorData.FromDouble(values, c.Shape) : TensorData.FromSingle(Numbers.As<float>(values), c.Shape);
        using var npy = new MemoryStream();
        Npy.Write(npy, t);
        npy.Position = 0;
        TensorData fromNpy = Npy.Read(npy, "round-trip.npy");
        using var st = new MemoryStream();
        SafetensorsFile.Write(st, new Dictionary<string, TensorData> { ["t"] = t, ["other"] = TensorData.FromDouble([1.0, 2.0], 2) });
        st.Position = 0;
        TensorData fromSafetensors = SafetensorsFile.Read(st, "round-trip.safetensors").Get("t");
        foreach (TensorData back in new[] { fromNpy, fromSafetensors })
        {
            Assert.Equal(t.Shape, back.Shape);
            Assert.Equal(t.IsDouble, back.IsDouble);
            Assert.Equal(t.ToArray<double>(), back.ToArray<double>());
        }
    }

    [Fact]
    public void Safetensors_round_trips_and_reports_missing_keys()
    {
        var tensors = new Dictionary<string, TensorData>
        {
            ["a.weight"] = TensorData.FromSingle([1f, -2f, 3.5f, 4f, 5f, 6f], 2, 3),
            ["b"] = TensorData.FromDouble([Math.PI], 1),
            ["empty"] = TensorData.FromDouble([], 0, 4),
        };
        using var stream = new MemoryStream();
        SafetensorsFile.Write(stream, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        stream.Position = 0;
        SafetensorsFile f = SafetensorsFile.Read(stream, "mem.safetensors");
        Assert.Equal(["a.weight", "b", "empty"], f.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("pt", f.Metadata["format"]);
        Assert.Equal([1f, -2f, 3.5f, 4f, 5f, 6f], f.Get("a.weight").ToArray<float>());
        Assert.Equal([2, 3], f.Get("a.weight").Shape);
        Assert.Equal(Math.PI, f.Get("b").ToArray<double>()[0]);
        Assert.Equal(0, f.Get("empty").Count);
        var ex = Assert.Throws<TensorFormatException>(() => f.Get("c"));
        Assert.Contains("no tensor 'c'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("mem.safetensors", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>A safetensors image with one tensor of the given dtype and raw bytes, built by hand.</summary>
    private static MemoryStream Handmade(string dtype, int[] shape, byte[] data, long? begin = null, long? end = null)
    {
        string json = $"{{\"t\":{{\"dtype\":\"{dtype}\",\"shape\":[{string.Join(",", shape)}],\"data_offsets\":[{begin ?? 0},{end ?? data.Length}]}}}}";
        byte[] header = Encoding.UTF8.GetBytes(json);
        var s = new MemoryStream();
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)header.Length);
        s.Write(len);
        s.Write(header);
        s.Write(data);
        s.Position = 0;
        return s;
    }

    [Fact]
    public void Half_types_are_widened_on_read()
    {
        float[] values = [1f, -0.5f, 65504f, 3.140625f];
        var f16 = new byte[8];
        var bf16 = new byte[8];
        for (int i = 0; i < 4; i++)
        {
            BinaryPrimitives.WriteHalfLittleEndian(f16.AsSpan(i * 2), (Half)values[i]);
            BinaryPrimitives.WriteUInt16LittleEndian(bf16.AsSpan(i * 2), (ushort)(BitConverter.SingleToInt32Bits(values[i]) >> 16));
        }

        TensorData h = SafetensorsFile.Read(Handmade("F16", [2, 2], f16), "f16").Get("t");
        Assert.Equal(TensorElementType.Float16, h.ElementType);
        Assert.Equal(values, h.ToArray<float>());
        TensorData b = SafetensorsFile.Read(Handmade("BF16", [4], bf16), "bf16").Get("t");
        Assert.Equal(TensorElementType.BFloat16, b.ElementType);
        Assert.Equal([1f, -0.5f, 65280f, 3.140625f], b.ToArray<float>());  // 65504 truncates to bf16's 65280
    }

    [Theory]
    [InlineData("I64", new[] { 2 }, 16, null, null, "dtype I64")]
    [InlineData("F32", new[] { 3 }, 8, null, 12L, "outside")]
    [InlineData("F32", new[] { 3 }, 12, null, 8L, "needs 12 bytes")]
    [InlineData("Q99", new[] { 1 }, 4, null, null, "unknown dtype")]
    [InlineData("F32", new[] { -1 }, 4, null, null, "non-negative")]
    public void Bad_safetensors_entries_are_named(string dtype, int[] shape, int bytes, long? begin, long? end, string reason)
    {
        var ex = Assert.ThrowsAny<TensorFormatException>(() => SafetensorsFile.Read(Handmade(dtype, shape, new byte[bytes], begin, end), "bad.safetensors").Get("t"));
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
        Assert.Contains("'t'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Forged_lengths_never_allocate_what_they_claim()
    {
        // A header claiming 2^63 bytes, and an .npy claiming a [1e9, 1e9] array, in files of a few dozen bytes.
        var s = new MemoryStream();
        s.Write(BitConverter.GetBytes(long.MaxValue));
        s.Write("{}"u8);
        s.Position = 0;
        Assert.Contains("claims", Assert.Throws<TensorFormatException>(() => SafetensorsFile.Read(s, "forged")).Message, StringComparison.Ordinal);

        using var npy = new MemoryStream();
        Npy.Write(npy, TensorData.FromSingle([1f, 2f], 2));
        byte[] bytes = npy.ToArray();
        string header = Encoding.Latin1.GetString(bytes, 10, bytes.Length - 18).Replace("(2,)", "(1000000000, 1000000000)", StringComparison.Ordinal);
        Assert.Throws<TensorFormatException>(() => Npy.Read(new MemoryStream([.. bytes[..10], .. Encoding.Latin1.GetBytes(header), .. bytes[^8..]]), "forged.npy"));
    }

    /// <summary>
    /// 100,000 hostile inputs: 45,000 mutated and truncated images of each format and 10,000 random byte strings. Only
    /// <see cref="TensorFormatException"/> may come out: never another exception, a hang or a large allocation (the
    /// readers check every size against the bytes present before allocating).
    /// </summary>
    [Fact]
    public void Mutated_files_fail_only_with_documented_exceptions() => Seeded.Run(rnd =>
    {
        using var npy = new MemoryStream();
        Npy.Write(npy, TensorData.FromDouble(Numbers.Uniform(new Random(1), 12), 3, 4));
        using var st = new MemoryStream();
        SafetensorsFile.Write(st, new Dictionary<string, TensorData> { ["w"] = TensorData.FromSingle(new float[6], 2, 3), ["b"] = TensorData.FromDouble(new double[2], 2) });
        foreach ((byte[] original, bool isNpy) in new[] { (npy.ToArray(), true), (st.ToArray(), false) })
        {
            for (int trial = 0; trial < 45_000; trial++)
            {
                byte[] b = (byte[])original.Clone();
                int edits = 1 + rnd.Next(4);
                for (int e = 0; e < edits; e++)
                {
                    int at = rnd.Next(Math.Min(b.Length, 140));       // mostly the header, where the structure is
                    b[at] = rnd.Next(3) == 0 ? (byte)rnd.Next(256) : (byte)"0123456789,:[]{}()' \"x"[rnd.Next(22)];
                }

                if (rnd.Next(5) == 0)
                {
                    b = b[..rnd.Next(b.Length)];                    // truncation
                }

                try
                {
                    if (isNpy)
                    {
                        Npy.Read(new MemoryStream(b), "fuzz.npy");
                    }
                    else
                    {
                        SafetensorsFile f = SafetensorsFile.Read(new MemoryStream(b), "fuzz.safetensors");
                        foreach (string k in f.Keys)
                        {
                            f.Get(k);
                        }
                    }
                }
                catch (TensorFormatException)
                {
                }
            }
        }

        for (int trial = 0; trial < 10_000; trial++)
        {
            var bytes = new byte[rnd.Next(0, 300)];
            rnd.NextBytes(bytes);
            Assert.ThrowsAny<TensorFormatException>(() => Npy.Read(new MemoryStream(bytes), "random.npy"));
            Assert.ThrowsAny<TensorFormatException>(() => SafetensorsFile.Read(new MemoryStream(bytes), "random.safetensors"));
        }
    });
}
