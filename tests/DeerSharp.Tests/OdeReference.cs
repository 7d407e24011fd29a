using DeerSharp.Ode;

namespace DeerSharp.Tests;

/// <summary>
/// Independent references for the ODE tests: an MLP evaluated with plain loops from a flat parameter vector (PyTorch's
/// layout), and a fixed-step RK4 with many substeps written out here, apart from the library's integrators.
/// </summary>
internal static class OdeReference
{
    /// <summary>f(y) of an MLP [widths] with tanh/softplus/relu between layers; θ = W0, b0, W1, b1, … row-major.</summary>
    public static double[] Mlp(int[] widths, MlpActivation activation, double[] theta, double[] input)
    {
        double[] a = input;
        int at = 0;
        for (int l = 0; l + 1 < widths.Length; l++)
        {
            int rows = widths[l + 1], cols = widths[l];
            var z = new double[rows];
            for (int r = 0; r < rows; r++)
            {
                double sum = 0;
                for (int c = 0; c < cols; c++)
                {
                    sum += theta[at + r * cols + c] * a[c];
                }

                z[r] = sum;
            }

            at += rows * cols;
            for (int r = 0; r < rows; r++)
            {
                z[r] += theta[at + r];
            }

            at += rows;
            if (l + 2 < widths.Length)
            {
                for (int r = 0; r < rows; r++)
                {
                    z[r] = activation switch
                    {
                        MlpActivation.Tanh => Math.Tanh(z[r]),
                        MlpActivation.Softplus => Math.Log(1 + Math.Exp(z[r])),
                        _ => Math.Max(0, z[r]),
                    };
                }
            }

            a = z;
        }

        return a;
    }

    /// <summary>y at every time by classic RK4 with <paramref name="substeps"/> steps per interval: [N + 1, n].</summary>
    public static double[] Rk4(Func<double[], double, double[]> f, double[] y0, double[] times, int substeps)
    {
        int n = y0.Length;
        var result = new double[times.Length * n];
        var y = (double[])y0.Clone();
        y.CopyTo(result, 0);
        for (int i = 0; i + 1 < times.Length; i++)
        {
            double h = (times[i + 1] - times[i]) / substeps;
            for (int s = 0; s < substeps; s++)
            {
                double t = times[i] + s * h;
                double[] k1 = f(y, t);
                double[] k2 = f(Axpy(y, h / 2, k1), t + h / 2);
                double[] k3 = f(Axpy(y, h / 2, k2), t + h / 2);
                double[] k4 = f(Axpy(y, h, k3), t + h);
                for (int r = 0; r < n; r++)
                {
                    y[r] += h / 6 * (k1[r] + 2 * k2[r] + 2 * k3[r] + k4[r]);
                }
            }

            y.CopyTo(result, (i + 1) * n);
        }

        return result;
    }

    private static double[] Axpy(double[] y, double a, double[] x)
    {
        var r = new double[y.Length];
        for (int i = 0; i < y.Length; i++)
        {
            r[i] = y[i] + a * x[i];
        }

        return r;
    }

    public static double[] UniformTimes(int count, double end) => [.. Enumerable.Range(0, count).Select(i => end * i / (count - 1))];

    /// <summary>Sorted random times on [0, end], both ends included, no two closer than 1e-9.</summary>
    public static double[] RandomTimes(Random random, int count, double end)
    {
        var t = new double[count];
        for (int i = 1; i < count - 1; i++)
        {
            t[i] = random.NextDouble() * end;
        }

        t[^1] = end;
        Array.Sort(t);
        for (int i = 1; i < count; i++)
        {
            t[i] = Math.Max(t[i], t[i - 1] + 1e-9);
        }

        return t;
    }

    public static double MaxAbsDiff(double[] a, double[] b)
    {
        Assert.Equal(a.Length, b.Length);
        double max = 0;
        for (int i = 0; i < a.Length; i++)
        {
            max = Math.Max(max, double.IsNaN(a[i] - b[i]) ? double.PositiveInfinity : Math.Abs(a[i] - b[i]));
        }

        return max;
    }
}
