using DeerSharp.Onnx;

namespace DeerSharp.Tests;

/// <summary>
/// <see cref="OnnxTensor.ReshapeStrides"/> (a Reshape without a copy) against the gathered copy: whenever it gives strides,
/// the view must read exactly the values the copy holds, in the same order.
/// </summary>
public class OnnxReshapeViewTests
{
    [Fact]
    public void Reshape_views_read_the_values_a_copy_would() => Seeded.Run(rnd =>
    {
        int views = 0;
        for (int trial = 0; trial < 400; trial++)
        {
            // A random permutation (and sometimes a length-1 axis with stride 0) of a random contiguous array.
            int rank = rnd.Next(1, 5);
            long[] shape = [.. Enumerable.Range(0, rank).Select(_ => (long)rnd.Next(1, 5))];
            var storage = new float[OnnxTensor.Elements(shape)];
            for (int i = 0; i < storage.Length; i++)
            {
                storage[i] = (float)rnd.NextDouble();
            }

            long[] rowMajor = OnnxTensor.RowMajorStrides(shape);
            int[] perm = [.. Enumerable.Range(0, rank).OrderBy(_ => rnd.Next())];
            long[] viewShape = [.. perm.Select(a => shape[a])], viewStrides = [.. perm.Select(a => shape[a] == 1 && rnd.Next(2) == 0 ? 0 : rowMajor[a])];
            OnnxTensor x = OnnxTensor.View(storage, viewShape, viewStrides);
            float[] expected = (float[])x.Values;

            long[] target = RandomFactorisation(rnd, x.Count);
            long[]? strides = x.ReshapeStrides(target);
            if (strides is null)
            {
                continue;
            }

            views++;
            float[] actual = (float[])OnnxTensor.View(storage, target, strides).Values;
            Assert.True(expected.AsSpan().SequenceEqual(actual),
                $"shape [{string.Join(", ", viewShape)}] strides [{string.Join(", ", viewStrides)}] reshaped to [{string.Join(", ", target)}] as strides [{string.Join(", ", strides)}]");
        }

        Assert.True(views > 100, $"only {views} of 400 reshapes were views");

        // The case that matters: a GRU's Y [T, 1, B, n] view of batch-major states, Transposed to [T, B, 1, n], joined to [T, B, n].
        var states = new float[3 * 5 * 4];
        OnnxTensor y = OnnxTensor.View(states, [5, 3, 1, 4], [4, 20, 0, 1]);
        Assert.Equal(new long[] { 4, 20, 1 }, y.ReshapeStrides([5, 3, 4]));
    });

    /// <summary>A random shape with <paramref name="count"/> elements, with length-1 axes sprinkled in.</summary>
    private static long[] RandomFactorisation(Random rnd, long count)
    {
        var dims = new List<long>();
        long left = count;
        for (long f = 2; f <= left; f++)
        {
            while (left % f == 0 && rnd.Next(3) > 0)
            {
                dims.Add(f);
                left /= f;
            }
        }

        if (left > 1)
        {
            dims.Add(left);
        }

        var merged = new List<long>();
        foreach (long d in dims.OrderBy(_ => rnd.Next()))
        {
            if (merged.Count > 0 && rnd.Next(2) == 0)
            {
                merged[^1] *= d;
            }
            else
            {
                merged.Add(d);
            }

            if (rnd.Next(5) == 0)
            {
                merged.Add(1);
            }
        }

        return merged.Count == 0 ? [1] : [.. merged];
    }
}
