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
            var c = new double[m * cols];
            Array.Fill(c, double.NaN);                     // every element must be written
            Kernels.Gemm<double>(a, b, c, m, k, cols, lda);
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

                    expected[i * cols + j] = sum;
                }
            }

            Assert.True(Numbers.MaxAbsDiff(expected, c) <= 1e-12, $"m={m} k={k} cols={cols} lda={lda}");

            float[] af = Numbers.As<float>(a), bf = Numbers.As<float>(b);
            var cf = new float[m * cols];
            Kernels.Gemm<float>(af, bf, cf, m, k, cols, lda);
            Assert.True(Numbers.MaxAbsDiff(expected, Numbers.ToDouble(cf)) <= 1e-4 * Math.Max(1, k), $"float m={m} k={k} cols={cols}");
        }
    });

    [Fact]
    public void Transpose_swaps_rows_and_columns()
    {
        double[] b = [1, 2, 3, 4, 5, 6];
        Assert.Equal([1.0, 4, 2, 5, 3, 6], Kernels.Transpose(b, 2, 3));
    }
}
