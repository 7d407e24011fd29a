using System.Numerics;
using System.Runtime.Intrinsics;

namespace DeerSharp.Tests;

/// <summary>The SIMD products against plain loops, over shapes that hit every register-block remainder.</summary>
public class KernelTests
{
    [Fact]
    public void Gemm_and_MatVec_match_a_plain_triple_loop() => Seeded.Run(rnd =>
    {
        for (int trial = 0; trial < 300; trial++)
        {
            int m = rnd.Next(0, 11), k = rnd.Next(0, 40), cols = rnd.Next(1, 70), lda = k + rnd.Next(0, 3);
            double[] a = Numbers.Uniform(rnd, Math.Max(0, (m - 1) * lda + k)), b = Numbers.Uniform(rnd, k * cols);
            double[] bias = trial % 2 == 1 ? Numbers.Uniform(rnd, cols) : [];   // every other trial adds a bias row
            var c = new double[m * cols];
            Array.Fill(c, double.NaN);                     // every element must be written
            Kernels.Gemm<double>(a, b, c, m, k, cols, lda, bias: bias);
            var expected = new double[m * cols];
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < cols; j++)
                {
                    double sum = 0;
                    for (int p = 0; p < k; p++)
                    {
                        sum += a[i * lda + p] * b[p * cols + j];
                    }

                    expected[i * cols + j] = sum + (bias.Length > 0 ? bias[j] : 0);
                }
            }

            Assert.True(Numbers.MaxAbsDiff(expected, c) <= 1e-12, $"m={m} k={k} cols={cols} lda={lda} bias={bias.Length}");

            float[] af = Numbers.As<float>(a), bf = Numbers.As<float>(b);
            var cf = new float[m * cols];
            Kernels.Gemm<float>(af, bf, cf, m, k, cols, lda, bias: Numbers.As<float>(bias));
            Assert.True(Numbers.MaxAbsDiff(expected, Numbers.ToDouble(cf)) <= 1e-4 * Math.Max(1, k), $"float m={m} k={k} cols={cols}");
        }
    });

    /// <summary>
    /// float32 Gemm, whose column blocks run 512 bits wide where the CPU allows and Vector&lt;T&gt; wide after them, against a
    /// plain loop of FMAs in the same order: equal bit for bit, over column counts around 32 and 16 lanes and row counts
    /// around the 4-row block; with a bias, each sum plus bias[j] (one rounding more, after the sum).
    /// </summary>
    [Fact]
    public void Float_Gemm_equals_an_FMA_loop_bit_for_bit_across_512_and_256_bit_blocks() => Seeded.Run(rnd =>
    {
        foreach (int cols in new[] { 1, 15, 16, 17, 31, 32, 33, 48, 64, 95, 96, 97, 128, 130 })
        {
            foreach (bool biased in new[] { false, true })
            {
                int m = rnd.Next(1, 10), k = rnd.Next(1, 45);
                float[] a = Numbers.As<float>(Numbers.Uniform(rnd, m * k)), b = Numbers.As<float>(Numbers.Uniform(rnd, k * cols));
                float[] bias = biased ? Numbers.As<float>(Numbers.Uniform(rnd, cols)) : [];
                var c = new float[m * cols];
                Array.Fill(c, float.NaN);
                Kernels.Gemm<float>(a, b, c, m, k, cols, bias: bias);
                for (int i = 0; i < m; i++)
                {
                    for (int j = 0; j < cols; j++)
                    {
                        float sum = 0;
                        for (int p = 0; p < k; p++)
                        {
                            sum = MathF.FusedMultiplyAdd(a[i * k + p], b[p * cols + j], sum);
                        }

                        sum = biased ? sum + bias[j] : sum;
                        Assert.True(BitConverter.SingleToInt32Bits(sum) == BitConverter.SingleToInt32Bits(c[i * cols + j]),
                            $"m={m} k={k} cols={cols} biased={biased}: C[{i}, {j}] = {c[i * cols + j]:R}, the FMA loop gives {sum:R}");
                    }
                }
            }
        }
    });

    [Fact]
    public void MatVec_matches_a_plain_loop_across_every_column_block() => Seeded.Run(rnd =>
    {
        // Column counts around 8, 4 and 1 vectors of float (8 lanes) and double (4 lanes), and the scalar tail; 96 and
        // 128 are the GRU's and LSTM's 3n and 4n at n = 32.
        foreach (int cols in new[] { 1, 3, 4, 8, 15, 16, 31, 32, 33, 48, 63, 64, 65, 95, 96, 127, 128, 129, 200 })
        {
            int k = rnd.Next(1, 48);
            double[] x = Numbers.Uniform(rnd, k), b = Numbers.Uniform(rnd, k * cols);
            var expected = new double[cols];
            for (int j = 0; j < cols; j++)
            {
                for (int p = 0; p < k; p++)
                {
                    expected[j] += x[p] * b[p * cols + j];
                }
            }

            var y = new double[cols];
            Array.Fill(y, double.NaN);                     // every element must be written
            Kernels.MatVec<double>(x, b, y);
            Assert.True(Numbers.MaxAbsDiff(expected, y) <= 1e-12 * k, $"double k={k} cols={cols}: {Numbers.MaxAbsDiff(expected, y):G3}");
            var yf = new float[cols];
            Array.Fill(yf, float.NaN);
            Kernels.MatVec<float>(Numbers.As<float>(x), Numbers.As<float>(b), yf);
            Assert.True(Numbers.MaxAbsDiff(expected, Numbers.ToDouble(yf)) <= 1e-5 * k, $"float k={k} cols={cols}: {Numbers.MaxAbsDiff(expected, Numbers.ToDouble(yf)):G3}");
        }
    });

    /// <summary>
    /// The fused loops' σ and tanh (<see cref="SimdMath"/>, whose clamp is MAXPS/MINPS) against the generic loop's
    /// (<see cref="Activations"/>, whose clamp is two comparisons and blends), at 512 and 256 bits: the same bits on random
    /// bit patterns (every exponent, NaN payloads, subnormals) and on the special values around the clamp's bounds, NaN
    /// for NaN.
    /// </summary>
    [Fact]
    public void Fused_activations_equal_the_generic_ones_bit_for_bit() => Seeded.Run(rnd =>
    {
        float[] specials = [float.NaN, -float.NaN, float.PositiveInfinity, float.NegativeInfinity, 0f, -0f, 88f, -87f, 87.99999f, -86.99999f,
            88.00001f, -87.00001f, 44f, -43.5f, 1e-40f, -1e-40f, float.MaxValue, float.MinValue, float.Epsilon, 1f, -1f];
        int lanes = 16, count = 40_000;
        var x = new float[count * lanes];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = i < specials.Length * 4 ? specials[i % specials.Length] : BitConverter.Int32BitsToSingle(rnd.Next(int.MinValue, int.MaxValue));
        }

        var expected = new float[2 * x.Length];
        int w = System.Numerics.Vector<float>.Count;
        for (int i = 0; i < x.Length; i += w)
        {
            var v = new System.Numerics.Vector<float>(x, i);
            Activations.Sigmoid(v).CopyTo(expected, i);
            Activations.Tanh(v).CopyTo(expected, x.Length + i);
        }

        var got = new float[2 * x.Length];
        if (Simd512.IsAccelerated)
        {
            for (int i = 0; i < x.Length; i += 16)
            {
                Vector512<float> v = Vector512.Create(x.AsSpan(i, 16));
                SimdMath.Sigmoid<Simd512, Vector512<float>>(v).CopyTo(got, i);
                SimdMath.Tanh<Simd512, Vector512<float>>(v).CopyTo(got, x.Length + i);
            }

            AssertSameBits(expected, got, x, "512-bit");
        }

        for (int i = 0; i < x.Length; i += 8)
        {
            Vector256<float> v = Vector256.Create(x.AsSpan(i, 8));
            SimdMath.Sigmoid<Simd256, Vector256<float>>(v).CopyTo(got, i);
            SimdMath.Tanh<Simd256, Vector256<float>>(v).CopyTo(got, x.Length + i);
        }

        AssertSameBits(expected, got, x, "256-bit");

        static void AssertSameBits(float[] expected, float[] got, float[] x, string width)
        {
            for (int i = 0; i < expected.Length; i++)
            {
                // A NaN's sign and payload are not values: the generic σ negates x (flipping a NaN's sign bit) where the
                // fused one subtracts it from zero (which keeps it), as before the clamp changed.
                if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(got[i]) && !(float.IsNaN(expected[i]) && float.IsNaN(got[i])))
                {
                    Assert.Fail($"{width} {(i < x.Length ? "σ" : "tanh")}({x[i % x.Length]:R}, bits 0x{BitConverter.SingleToInt32Bits(x[i % x.Length]):X8}): " +
                        $"fused {got[i]:R} (0x{BitConverter.SingleToInt32Bits(got[i]):X8}), generic {expected[i]:R} (0x{BitConverter.SingleToInt32Bits(expected[i]):X8})");
                }
            }
        }
    });

    [Fact]
    public void Single_precision_exp_is_within_two_ulp_and_keeps_NaN() => Seeded.Run(rnd =>
    {
        // Against double-precision exp on [−87, 88], the range where it is not clamped: 2 ulp of float is 2^−22 relative.
        double worst = 0;
        for (int i = 0; i < 200_000; i++)
        {
            float x = (float)(rnd.NextDouble() * 175 - 87);
            double exact = Math.Exp(x), got = Activations.ExpSingle(new System.Numerics.Vector<float>(x))[0];
            worst = Math.Max(worst, Math.Abs(got - exact) / exact);
        }

        Assert.True(worst <= Math.Pow(2, -22), $"max relative error {worst:G3}");
        Assert.Equal(1f, Activations.ExpSingle(System.Numerics.Vector<float>.Zero)[0]);
        Assert.True(float.IsNaN(Activations.ExpSingle(new System.Numerics.Vector<float>(float.NaN))[0]));
        float big = Activations.ExpSingle(new System.Numerics.Vector<float>(float.PositiveInfinity))[0];
        float tiny = Activations.ExpSingle(new System.Numerics.Vector<float>(float.NegativeInfinity))[0];
        Assert.True(float.IsFinite(big) && big > 1e38f, $"e^+inf saturates at e^88: {big}");
        Assert.True(tiny is > 0 and < 2e-38f, $"e^-inf saturates at e^-87: {tiny}");

        // σ and tanh in float32 lanes against the double formulas, absolute, over and past the saturating range.
        double sigmoid = 0, tanh = 0;
        for (int i = 0; i < 100_000; i++)
        {
            float x = (float)(rnd.NextDouble() * 240 - 120);
            var v = new System.Numerics.Vector<float>(x);
            sigmoid = Math.Max(sigmoid, Math.Abs(Activations.Sigmoid(v)[0] - 1 / (1 + Math.Exp(-(double)x))));
            tanh = Math.Max(tanh, Math.Abs(Activations.Tanh(v)[0] - Math.Tanh(x)));
        }

        Assert.True(sigmoid <= 3e-7 && tanh <= 5e-7, $"sigmoid {sigmoid:G3}, tanh {tanh:G3} (absolute)");
    });

    [Fact]
    public void The_loops_finiteness_check_finds_the_first_value_that_is_not_finite() => Seeded.Run(rnd =>
    {
        float[] bad = [float.NaN, float.PositiveInfinity, float.NegativeInfinity];
        for (int trial = 0; trial < 2000; trial++)
        {
            int length = rnd.Next(0, 80);
            double[] values = Numbers.Uniform(rnd, length);
            for (int i = 0; i < length; i++)
            {
                values[i] *= Math.Pow(10, rnd.Next(-30, 30));       // finite, of every size, some negative
            }

            int expected = -1;
            if (length > 0 && rnd.Next(3) > 0)
            {
                int count = rnd.Next(1, 4);
                for (int j = 0; j < count; j++)
                {
                    int at = rnd.Next(length);
                    values[at] = bad[rnd.Next(bad.Length)];
                    expected = expected < 0 ? at : Math.Min(expected, at);
                }
            }

            float[] single = Numbers.As<float>(values);
            Assert.Equal(expected, Cpu.Solver.FirstNonFinite<double>(values));
            Assert.Equal(expected, Cpu.Solver.FirstNonFinite<float>(single));
        }
    });

    [Fact]
    public void Transpose_swaps_rows_and_columns()
    {
        double[] b = [1, 2, 3, 4, 5, 6];
        Assert.Equal([1.0, 4, 2, 5, 3, 6], Kernels.Transpose(b, 2, 3));
    }

    /// <summary>
    /// The vectorised scan for NaN and ±∞ against a scalar IsFinite loop: lengths around its 1,024-value blocks and the
    /// vector widths, with zero to three bad values anywhere (the first, the last, either side of a block boundary), float
    /// and double, and a type it does not vectorise (Half).
    /// </summary>
    [Fact]
    public void NonFinite_finds_the_first_bad_value_as_a_scalar_loop_does() => Seeded.Run(rnd =>
    {
        int[] lengths = [0, 1, 7, 15, 16, 17, 63, 64, 65, 1023, 1024, 1025, 2047, 2048, 2049, 3000, 4096 + 33];
        double[] bad = [double.NaN, double.PositiveInfinity, double.NegativeInfinity];
        for (int trial = 0; trial < 400; trial++)
        {
            int length = rnd.Next(3) == 0 ? rnd.Next(0, 5000) : lengths[rnd.Next(lengths.Length)];
            double[] values = Numbers.Uniform(rnd, length);
            for (int k = 0, count = length == 0 ? 0 : rnd.Next(0, 4); k < count; k++)
            {
                int at = rnd.Next(4) switch
                {
                    0 => 0,
                    1 => length - 1,
                    2 => Math.Clamp(1024 * rnd.Next(0, length / 1024 + 1) + rnd.Next(-1, 1), 0, length - 1),
                    _ => rnd.Next(length),
                };
                values[at] = bad[rnd.Next(bad.Length)];
            }

            int expected = Array.FindIndex(values, v => !double.IsFinite(v));
            Assert.Equal(expected, NonFinite.IndexOf<double>(values));
            Assert.Equal(expected, NonFinite.IndexOf<float>(Numbers.As<float>(values)));
            Assert.Equal(expected, NonFinite.IndexOf<Half>(values.Select(v => (Half)v).ToArray()));
        }
    });

    /// <summary>
    /// C += A·B continues each element from C's value with one FMA per term in order of p: against that scalar FMA chain,
    /// bit for bit, in float and double, over row counts that leave an odd row, column counts across the four-vector blocks,
    /// single vectors and lanes no vector covers, A with a row stride past k, and random C; the same with A stored
    /// transposed (GemmTransposedAccumulate), and AddRows against a scalar running sum.
    /// </summary>
    [Fact]
    public void Gemm_accumulate_equals_an_FMA_chain_from_C_bit_for_bit() => Seeded.Run(rnd =>
    {
        foreach (int cols in new[] { 1, 5, 8, 16, 31, 32, 33, 48, 64, 70, 96 })
        {
            CheckAccumulate<float>(rnd, cols);
            CheckAccumulate<double>(rnd, cols);
        }
    });

    private static void CheckAccumulate<T>(Random rnd, int cols)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int m = rnd.Next(1, 12), k = rnd.Next(1, 70), lda = k + rnd.Next(0, 4);
        T[] Draw(int count) => [.. Enumerable.Range(0, count).Select(_ => T.CreateTruncating((rnd.NextDouble() * 2) - 1))];
        T[] a = Draw(((m - 1) * lda) + k), b = Draw(k * cols), c = Draw(m * cols);
        var expected = (T[])c.Clone();
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < cols; j++)
            {
                for (int p = 0; p < k; p++)
                {
                    expected[(i * cols) + j] = T.FusedMultiplyAdd(a[(i * lda) + p], b[(p * cols) + j], expected[(i * cols) + j]);
                }
            }
        }

        Kernels.Gemm<T>(a, b, c, m, k, cols, lda, accumulate: true);
        for (int i = 0; i < c.Length; i++)
        {
            Assert.True(expected[i].Equals(c[i]), $"{typeof(T).Name} A[{m}, {k}] (lda {lda}) B[{k}, {cols}]: C[{i / cols}, {i % cols}] is {c[i]}, expected {expected[i]}");
        }

        Assert.Throws<ArgumentException>(() => Kernels.Gemm<T>(a, b, c.AsSpan(0, c.Length - 1), m, k, cols, lda, accumulate: true));

        // The same product with A stored transposed, [k, m] at a row stride past m: the same bits.
        int ldt = m + rnd.Next(0, 4);
        var at = new T[((k - 1) * ldt) + m];
        for (int i = 0; i < m; i++)
        {
            for (int p = 0; p < k; p++)
            {
                at[(p * ldt) + i] = a[(i * lda) + p];
            }
        }

        T[] ct = Draw(m * cols), expectedT = (T[])ct.Clone();
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < cols; j++)
            {
                for (int p = 0; p < k; p++)
                {
                    expectedT[(i * cols) + j] = T.FusedMultiplyAdd(a[(i * lda) + p], b[(p * cols) + j], expectedT[(i * cols) + j]);
                }
            }
        }

        Kernels.GemmTransposedAccumulate<T>(at, ldt, b, ct, m, k, cols);
        for (int i = 0; i < ct.Length; i++)
        {
            Assert.True(expectedT[i].Equals(ct[i]), $"{typeof(T).Name} Aᵀ [{k}, {m}] (lda {ldt}) B[{k}, {cols}]: C[{i / cols}, {i % cols}] is {ct[i]}, expected {expectedT[i]}");
        }

        Assert.Throws<ArgumentException>(() => Kernels.GemmTransposedAccumulate<T>(at.AsSpan(0, at.Length - 1), ldt, b, ct, m, k, cols));

        // AddRows: the rows of A (stride lda) added to a random row, one after another.
        T[] sums = Draw(k), expectedSums = (T[])sums.Clone();
        for (int r = 0; r < m; r++)
        {
            for (int j = 0; j < k; j++)
            {
                expectedSums[j] += a[(r * lda) + j];
            }
        }

        Kernels.AddRows<T>(a, lda, m, sums);
        for (int j = 0; j < k; j++)
        {
            Assert.True(expectedSums[j].Equals(sums[j]), $"{typeof(T).Name} AddRows of {m} rows at stride {lda}: column {j} is {sums[j]}, expected {expectedSums[j]}");
        }
    }

    /// <summary>
    /// The strided row copy (an ONNX LSTM's Y from its states) against a scalar loop: float and double, widths across the
    /// 256- and 512-bit row sizes (and widths no vector divides), destination strides forward and backward; every value
    /// outside the rows keeps its sentinel, and rows that would fall outside either span are refused.
    /// </summary>
    [Fact]
    public void CopyRows_copies_exactly_the_rows_a_scalar_loop_does() => Seeded.Run(rnd =>
    {
        foreach (int width in new[] { 1, 3, 7, 8, 15, 16, 24, 31, 32, 33, 48, 64 })
        {
            CheckCopyRows<float>(rnd, width);
            CheckCopyRows<double>(rnd, width);
        }
    });

    private static void CheckCopyRows<T>(Random rnd, int width)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int rows = rnd.Next(1, 40), sourceStride = width + rnd.Next(0, 9), gap = rnd.Next(0, 5);
        bool backward = rnd.Next(2) == 1;
        long destinationStride = (width + gap) * (backward ? -1L : 1L), start = backward ? (long)(rows - 1) * (width + gap) + 3 : 3;
        T[] source = [.. Enumerable.Range(0, rows * sourceStride).Select(_ => T.CreateTruncating(rnd.NextDouble()))];
        var destination = new T[3 + (rows * (width + gap)) + 5];
        var expected = new T[destination.Length];
        Array.Fill(destination, T.NaN);
        Array.Fill(expected, T.NaN);
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < width; j++)
            {
                expected[start + (r * destinationStride) + j] = source[(r * sourceStride) + j];
            }
        }

        Kernels.CopyRows<T>(source, sourceStride, destination, start, destinationStride, width, rows);
        string label = $"{typeof(T).Name} width {width}, {rows} rows, strides {sourceStride} and {destinationStride}";
        for (int i = 0; i < destination.Length; i++)
        {
            Assert.True(expected[i].Equals(destination[i]), $"{label}: value {i} is {destination[i]}, expected {expected[i]}");
        }

        Assert.Throws<ArgumentOutOfRangeException>(() => Kernels.CopyRows<T>(source, sourceStride, destination, start, destinationStride, width, rows + 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => Kernels.CopyRows<T>(source.AsSpan(0, ((rows - 1) * sourceStride) + width - 1), sourceStride, destination, start, destinationStride, width, rows));
    }

    /// <summary>
    /// The scan on two cores (a span of at least <see cref="NonFinite.ParallelMinimum"/> values, cut into pieces that this
    /// thread and a helper take): the first bad value wherever it falls (either side of a piece boundary, in the last
    /// piece, two of them in different pieces), against a scalar loop.
    /// </summary>
    [Fact]
    public void NonFinite_on_two_cores_finds_the_first_bad_value() => Seeded.Run(rnd =>
    {
        int length = NonFinite.ParallelMinimum + rnd.Next(0, 5000);
        var values = new float[length];
        for (int i = 0; i < length; i++)
        {
            values[i] = (float)(rnd.NextDouble() * 2 - 1);
        }

        Assert.Equal(-1, NonFinite.IndexOf<float>(values, parallel: true));
        for (int trial = 0; trial < 12; trial++)
        {
            int piece = length / 8;
            int[] at = trial switch
            {
                0 => [length - 1],
                1 => [piece - 1, 5 * piece],
                2 => [piece, length - 1],
                _ => [rnd.Next(length), rnd.Next(length)],
            };
            float[] copy = (float[])values.Clone();
            foreach (int i in at)
            {
                copy[i] = rnd.Next(2) == 0 ? float.NaN : float.NegativeInfinity;
            }

            int expected = Array.FindIndex(copy, v => !float.IsFinite(v));
            Assert.Equal(expected, NonFinite.IndexOf<float>(copy, parallel: true));
            Assert.Equal(expected, NonFinite.IndexOf<double>(Array.ConvertAll(copy, v => (double)v), parallel: true));
        }
    });
}
