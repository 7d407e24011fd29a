using DeerSharp.IO;
using DeerSharp.Ode;

namespace DeerSharp.Tests;

public class OdeTests
{
    private static readonly int[] Widths = [4, 24, 24, 4];

    private static MlpField<double> RandomMlp(int seed, MlpActivation activation = MlpActivation.Tanh, double scale = 1.5)
    {
        var field = MlpField<double>.Random(Widths, 0, activation, new Random(seed));
        for (int i = 0; i < field.Parameters.Length; i++)
        {
            field.Parameters[i] *= scale;
        }

        return field;
    }

    private static Func<double[], double, double[]> Reference(MlpField<double> field) =>
        (y, _) => OdeReference.Mlp(field.Widths.ToArray(), field.Activation, field.Parameters.ToArray(), y);

    [Theory]
    [InlineData(OdeMethod.Deer, false)]
    [InlineData(OdeMethod.Deer, true)]
    [InlineData(OdeMethod.Dopri5, false)]
    [InlineData(OdeMethod.Dopri5, true)]
    [InlineData(OdeMethod.QuasiDeer, false)]
    public void MlpFieldOn10000PointsMatchesAFineRk4Within1e6(OdeMethod method, bool randomGrid)
    {
        // The check: a random MLP field, 10,000 points on [0, 1], max abs error ≤ 1e-6 in float64.
        int seed = 7 + (int)method * 10 + (randomGrid ? 1 : 0);
        MlpField<double> field = RandomMlp(seed);
        var random = new Random(seed);
        double[] times = randomGrid ? OdeReference.RandomTimes(random, 10_000, 1.0) : OdeReference.UniformTimes(10_000, 1.0);
        double[] y0 = Numbers.Uniform(random, 4);
        double[] reference = OdeReference.Rk4(Reference(field), y0, times, substeps: 4);
        var options = new OdeOptions { Method = method, AbsoluteTolerance = 1e-10, RelativeTolerance = 1e-10 };
        OdeResult<double> result = Deer.SolveOde(field, y0, times, options);
        Assert.True(result.Converged, result.Message);
        Assert.Equal(method, result.Method);
        Assert.True(OdeReference.MaxAbsDiff(result.States, reference) <= 1e-6, $"max |Δ| = {OdeReference.MaxAbsDiff(result.States, reference):G3}; {result.Message}");
        Assert.True(result.InternalGridSize >= (method == OdeMethod.Dopri5 ? 2 : 10_000));
    }

    [Theory]
    [InlineData(OdeMethod.Deer, 1.8, 2.3)]
    [InlineData(OdeMethod.QuasiDeer, 1.8, 2.3)]
    [InlineData(OdeMethod.Rk4, 3.7, 4.4)]
    public void EmpiricalOrderOfConvergenceMatchesTheScheme(OdeMethod method, double low, double high)
    {
        // Van der Pol on [0, 2] on fixed uniform grids (no refinement); error at the grid points against a fine RK4.
        var field = OdeSystems.Field<VanDerPol, double>();
        double[] y0 = [1.2, -0.3];
        int[] counts = [21, 41, 81, 161];
        var steps = new List<double>();
        var errors = new List<double>();
        foreach (int count in counts)
        {
            double[] times = OdeReference.UniformTimes(count, 2.0);
            double[] reference = OdeReference.Rk4((y, t) => VanDerPolReference(y), y0, times, substeps: 2000 / (count - 1) + 10);
            var options = new OdeOptions { Method = method, Adaptive = false, AbsoluteTolerance = 1e-12, RelativeTolerance = 1e-12, Fallback = FallbackPolicy.None };
            OdeResult<double> result = Deer.SolveOde(field, y0, times, options);
            // A fixed grid this coarse cannot meet 1e-12, and the result must say so: DEER's estimate exceeds the
            // tolerance, and RK4 has none. The Newton iteration itself converged, or the status would be a failure.
            Assert.Equal(method == OdeMethod.Rk4 ? OdeStatus.ErrorNotControlled : OdeStatus.AccuracyNotReached, result.Status);
            Assert.False(result.Converged);
            steps.Add(2.0 / (count - 1));
            errors.Add(OdeReference.MaxAbsDiff(result.States, reference));
        }

        // Least-squares slope of log(error) against log(step).
        double mx = steps.Average(Math.Log), my = errors.Average(Math.Log);
        double slope = steps.Zip(errors).Sum(p => (Math.Log(p.First) - mx) * (Math.Log(p.Second) - my)) / steps.Sum(s => Math.Pow(Math.Log(s) - mx, 2));
        Assert.InRange(slope, low, high);
    }

    private static double[] VanDerPolReference(double[] y) => [y[1], (1 - y[0] * y[0]) * y[1] - y[0]];

    [Theory]
    [InlineData(OdeMethod.Deer)]
    [InlineData(OdeMethod.QuasiDeer)]
    [InlineData(OdeMethod.Dopri5)]
    public void CoarseRequestedGridIsRefinedToMeetTheTolerance(OdeMethod method)
    {
        // Eleven requested times over two periods of the Van der Pol limit cycle: DEER must insert points.
        var field = OdeSystems.Field<VanDerPol, double>();
        double[] y0 = [2.0, 0.0];
        double[] times = OdeReference.UniformTimes(11, 12.0);
        double[] reference = OdeReference.Rk4((y, t) => VanDerPolReference(y), y0, times, substeps: 20_000);
        var options = new OdeOptions { Method = method, AbsoluteTolerance = 1e-9, RelativeTolerance = 1e-9 };
        OdeResult<double> result = Deer.SolveOde(field, y0, times, options);
        Assert.True(result.Converged, result.Message);
        Assert.True(result.InternalGridSize > 100, $"grid {result.InternalGridSize}");
        Assert.True(result.ErrorEstimate <= 1);
        double error = OdeReference.MaxAbsDiff(result.States, reference);
        // The tolerance bounds each interval's local error; over ~10,000 intervals the global error is larger.
        Assert.True(error <= (method == OdeMethod.QuasiDeer ? 5e-5 : 1e-5), $"max |Δ| = {error:G3} on a grid of {result.InternalGridSize}; {result.Message}");

        // Without refinement the same grid is far off, and the estimate says so.
        if (method != OdeMethod.Dopri5)
        {
            OdeResult<double> fixedGrid = Deer.SolveOde(field, y0, times, options with { Adaptive = false, Fallback = FallbackPolicy.None });
            Assert.False(fixedGrid.Converged, fixedGrid.Message);
            Assert.True(OdeReference.MaxAbsDiff(fixedGrid.States, reference) > 10 * error);
            if (fixedGrid.Status == OdeStatus.AccuracyNotReached)
            {
                Assert.True(fixedGrid.ErrorEstimate > 1);
            }
        }
    }

    [Fact]
    public void RotationMatchesTheExactSolution()
    {
        // y' = [[0, 1], [−1, 0]] y: y(t) = [cos t, −sin t] from [1, 0]. A linear field: DEER converges at once.
        var field = new MlpField<double>([2, 2], 0, MlpActivation.Tanh, [0, 1, -1, 0, 0, 0]);
        double[] times = OdeReference.RandomTimes(new Random(3), 200, 10.0);
        var options = new OdeOptions { AbsoluteTolerance = 1e-11, RelativeTolerance = 1e-11 };
        foreach (OdeMethod method in new[] { OdeMethod.Deer, OdeMethod.Dopri5 })
        {
            OdeResult<double> result = Deer.SolveOde(field, [1.0, 0.0], times, options with { Method = method });
            Assert.True(result.Converged, result.Message);
            var exact = times.SelectMany(t => new[] { Math.Cos(t), -Math.Sin(t) }).ToArray();
            Assert.True(OdeReference.MaxAbsDiff(result.States, exact) <= 1e-8, $"{method}: {OdeReference.MaxAbsDiff(result.States, exact):G3}");
        }
    }

    [Theory]
    [InlineData("lotka-volterra")]
    [InlineData("van-der-pol")]
    [InlineData("pendulum")]
    [InlineData("two-body")]
    public void BuiltInSystemsAgreeAcrossMethods(string name)
    {
        // Local tolerances of 1e-11 keep the global error of ~2,000 intervals under the 1e-6 asked here.
        double[] times = OdeReference.UniformTimes(2001, 5.0);
        var options = new OdeOptions { AbsoluteTolerance = 1e-11, RelativeTolerance = 1e-11 };
        (double[] deer, double[] dopri, double[] reference) = name switch
        {
            "lotka-volterra" => Run(OdeSystems.Field<LotkaVolterra, double>(), [1.0, 2.0], (y, t) => [1.5 * y[0] - y[0] * y[1], y[0] * y[1] - 3 * y[1]]),
            "van-der-pol" => Run(OdeSystems.Field<VanDerPol, double>(), [1.0, 1.0], (y, t) => VanDerPolReference(y)),
            "pendulum" => Run(OdeSystems.Field<Pendulum, double>(), [2.5, 0.0], (y, t) => [y[1], -9.81 * Math.Sin(y[0])]),
            _ => Run(OdeSystems.Field<TwoBody, double>(), [-0.5, 0, 0.5, 0, 0, -0.6, 0, 0.6], TwoBodyReference),
        };
        Assert.True(OdeReference.MaxAbsDiff(deer, reference) <= 1e-6, $"DEER {OdeReference.MaxAbsDiff(deer, reference):G3}");
        Assert.True(OdeReference.MaxAbsDiff(dopri, reference) <= 1e-6, $"Dopri5 {OdeReference.MaxAbsDiff(dopri, reference):G3}");

        (double[], double[], double[]) Run<TField>(TField field, double[] y0, Func<double[], double, double[]> f)
            where TField : IOdeField<double>
        {
            OdeResult<double> a = Deer.SolveOde(field, y0, times, options);
            OdeResult<double> b = Deer.SolveOde(field, y0, times, options with { Method = OdeMethod.Dopri5 });
            Assert.True(a.Converged && a.Method == OdeMethod.Deer, a.Message);
            Assert.True(b.Converged, b.Message);
            return (a.States, b.States, OdeReference.Rk4(f, y0, times, 20));
        }
    }

    private static double[] TwoBodyReference(double[] y, double t)
    {
        double rx = y[2] - y[0], ry = y[3] - y[1], r3 = Math.Pow(rx * rx + ry * ry, 1.5);
        return [y[4], y[5], y[6], y[7], rx / r3, ry / r3, -rx / r3, -ry / r3];
    }

    [Fact]
    public void InputsAreInterpolatedBetweenTheRequestedTimes()
    {
        // f(y, x) with x(t) = [sin 3t, t] given only at the requested times (linear in between, for every method).
        var field = MlpField<double>.Random([5, 16, 3], 2, MlpActivation.Softplus, new Random(11));
        double[] times = OdeReference.UniformTimes(301, 3.0);
        double[] inputs = [.. times.SelectMany(t => new[] { Math.Sin(3 * t), t })];
        double[] y0 = [0.3, -0.2, 0.1];
        var options = new OdeOptions { AbsoluteTolerance = 1e-10, RelativeTolerance = 1e-10 };
        OdeResult<double> deer = Deer.SolveOde(field, y0, times, options, inputs);
        OdeResult<double> dopri = Deer.SolveOde(field, y0, times, options with { Method = OdeMethod.Dopri5 }, inputs);
        Assert.True(deer.Converged, deer.Message);
        double[] reference = OdeReference.Rk4((y, t) =>
        {
            int i = Math.Min(299, (int)Math.Floor(t / 0.01));
            double s = (t - times[i]) / (times[i + 1] - times[i]);
            double[] x = [inputs[2 * i] + s * (inputs[2 * i + 2] - inputs[2 * i]), inputs[2 * i + 1] + s * (inputs[2 * i + 3] - inputs[2 * i + 1])];
            return OdeReference.Mlp([5, 16, 3], MlpActivation.Softplus, field.Parameters.ToArray(), [.. y, .. x]);
        }, y0, times, 16);
        Assert.True(OdeReference.MaxAbsDiff(deer.States, reference) <= 1e-6, $"DEER {OdeReference.MaxAbsDiff(deer.States, reference):G3}");
        Assert.True(OdeReference.MaxAbsDiff(dopri.States, reference) <= 1e-6, $"Dopri5 {OdeReference.MaxAbsDiff(dopri.States, reference):G3}");
    }

    [Fact]
    public void BatchEqualsSequenceBySequence()
    {
        MlpField<double> field = RandomMlp(5);
        var random = new Random(5);
        double[] times = OdeReference.RandomTimes(random, 500, 2.0);
        double[] y0 = Numbers.Uniform(random, 3 * 4);
        foreach (OdeMethod method in new[] { OdeMethod.Deer, OdeMethod.QuasiDeer, OdeMethod.Dopri5, OdeMethod.Rk4 })
        {
            var options = new OdeOptions { Method = method };
            OdeResult<double> batch = Deer.SolveOde(field, y0, times, options);
            Assert.Equal(3, batch.BatchSize);
            for (int b = 0; b < 3; b++)
            {
                OdeResult<double> one = Deer.SolveOde(field, y0.AsSpan(b * 4, 4), times, options);
                Assert.Equal(one.States, batch.States.AsSpan(b * 500 * 4, 500 * 4).ToArray());
            }
        }
    }

    [Fact]
    public void Float32AgreesWithFloat64()
    {
        MlpField<double> field = RandomMlp(9);
        var single = new MlpField<float>(Widths, 0, MlpActivation.Tanh, Numbers.As<float>(field.Parameters.ToArray()));
        var random = new Random(9);
        double[] times = OdeReference.UniformTimes(1000, 1.0);
        double[] y0 = Numbers.Uniform(random, 4);
        OdeResult<double> reference = Deer.SolveOde(field, y0, times);
        foreach (OdeMethod method in new[] { OdeMethod.Deer, OdeMethod.QuasiDeer, OdeMethod.Dopri5 })
        {
            OdeResult<float> result = Deer.SolveOde(single, Numbers.As<float>(y0), Numbers.As<float>(times), new OdeOptions { Method = method });
            Assert.True(result.Converged, result.Message);
            double error = OdeReference.MaxAbsDiff(Numbers.ToDouble(result.States), reference.States);
            Assert.True(error <= 2e-4, $"{method}: {error:G3}");
        }
    }

    [Theory]
    [InlineData(OdeMethod.Deer)]
    [InlineData(OdeMethod.QuasiDeer)]
    [InlineData(OdeMethod.Dopri5)]
    [InlineData(OdeMethod.Rk4)]
    public void GradientsMatchFiniteDifferences(OdeMethod method)
    {
        // L = Σ c ⊙ y over every requested time, for a random MLP field; central differences of the solution in y0 and θ.
        var random = new Random(21 + (int)method);
        var field = MlpField<double>.Random([3, 12, 3], 0, MlpActivation.Tanh, random);
        double[] times = OdeReference.RandomTimes(random, 60, 1.5);
        double[] y0 = Numbers.Uniform(random, 3);
        double[] c = Numbers.Uniform(random, 60 * 3);
        var options = new OdeOptions
        {
            Method = method, AbsoluteTolerance = 1e-12, RelativeTolerance = 1e-12, Substeps = 4, Fallback = FallbackPolicy.None,
        };
        OdeGradientResult<double> g = Deer.OdeGradient(field, y0, times, c, options);
        Assert.True(g.Forward.Succeeded, g.Forward.Message);
        double Loss(MlpField<double> f, double[] start)
        {
            OdeResult<double> r = Deer.SolveOde(f, start, times, options);
            return r.States.Zip(c).Sum(p => p.First * p.Second);
        }

        const double h = 1e-6;
        double tolerance = method is OdeMethod.Rk4 ? 1e-6 : 2e-5;
        for (int j = 0; j < 3; j++)
        {
            double[] up = (double[])y0.Clone(), down = (double[])y0.Clone();
            up[j] += h;
            down[j] -= h;
            double fd = (Loss(field, up) - Loss(field, down)) / (2 * h);
            Assert.True(Math.Abs(fd - g.InitialStateGradient[j]) <= tolerance * (1 + Math.Abs(fd)), $"dy0[{j}]: {g.InitialStateGradient[j]} vs {fd}");
        }

        double[] theta = field.Parameters.ToArray();
        foreach (int j in new[] { 0, 5, 17, 36, 40, 47, field.ParameterCount - 1 })
        {
            double[] up = (double[])theta.Clone(), down = (double[])theta.Clone();
            up[j] += h;
            down[j] -= h;
            double fd = (Loss(new MlpField<double>([3, 12, 3], 0, MlpActivation.Tanh, up), y0)
                         - Loss(new MlpField<double>([3, 12, 3], 0, MlpActivation.Tanh, down), y0)) / (2 * h);
            Assert.True(Math.Abs(fd - g.ParameterGradient[j]) <= tolerance * (1 + Math.Abs(fd)), $"dθ[{j}]: {g.ParameterGradient[j]} vs {fd}");
        }
    }

    [Fact]
    public void GradientsOfABuiltInSystemsConstantsMatchFiniteDifferences()
    {
        // Lotka-Volterra's four constants through AD, and a batch of two initial states.
        var field = OdeSystems.Field<LotkaVolterra, double>();
        double[] times = OdeReference.UniformTimes(41, 2.0);
        double[] y0 = [1.0, 2.0, 1.5, 0.8];
        double[] c = Numbers.Uniform(new Random(4), 2 * 41 * 2);
        var options = new OdeOptions { AbsoluteTolerance = 1e-12, RelativeTolerance = 1e-12 };
        OdeGradientResult<double> g = Deer.OdeGradient(field, y0, times, c, options);
        for (int j = 0; j < 4; j++)
        {
            double[] up = field.Parameters.ToArray(), down = field.Parameters.ToArray();
            up[j] += 1e-6;
            down[j] -= 1e-6;
            double Loss(double[] p) => Deer.SolveOde(field.WithParameters(p), y0, times, options).States.Zip(c).Sum(q => q.First * q.Second);
            double fd = (Loss(up) - Loss(down)) / 2e-6;
            Assert.True(Math.Abs(fd - g.ParameterGradient[j]) <= 2e-5 * (1 + Math.Abs(fd)), $"dθ[{j}]: {g.ParameterGradient[j]} vs {fd}");
        }
    }

    [Theory]
    [InlineData(MlpActivation.Tanh)]
    [InlineData(MlpActivation.Softplus)]
    [InlineData(MlpActivation.Relu)]
    public void MlpJacobianAndBackwardMatchFiniteDifferences(MlpActivation activation)
    {
        var random = new Random(31 + (int)activation);
        var field = MlpField<double>.Random([6, 10, 7, 4], 2, activation, random);
        double[] y = Numbers.Uniform(random, 4), x = Numbers.Uniform(random, 2), v = Numbers.Uniform(random, 4);
        var ws = new double[field.WorkspaceSize];
        var f = new double[4];
        var jacobian = new double[16];
        var diagonal = new double[4];
        field.EvaluateJacobian(y, 0, x, f, jacobian, ws);
        Assert.Equal(OdeReference.Mlp([6, 10, 7, 4], activation, field.Parameters.ToArray(), [.. y, .. x]), f, (a, b) => Math.Abs(a - b) < 1e-12);
        field.EvaluateJacobianDiagonal(y, 0, x, f, diagonal, ws);
        for (int j = 0; j < 4; j++)
        {
            double[] up = (double[])y.Clone(), down = (double[])y.Clone();
            up[j] += 1e-6;
            down[j] -= 1e-6;
            double[] fu = OdeReference.Mlp([6, 10, 7, 4], activation, field.Parameters.ToArray(), [.. up, .. x]);
            double[] fd = OdeReference.Mlp([6, 10, 7, 4], activation, field.Parameters.ToArray(), [.. down, .. x]);
            for (int i = 0; i < 4; i++)
            {
                Assert.Equal((fu[i] - fd[i]) / 2e-6, jacobian[i * 4 + j], 6);
            }

            Assert.Equal(jacobian[j * 4 + j], diagonal[j], 12);
        }

        var adjoint = new double[4];
        var gradient = new double[field.ParameterCount];
        field.Backward(y, 0, x, v, adjoint, gradient, ws);
        for (int j = 0; j < 4; j++)
        {
            double expected = 0;
            for (int i = 0; i < 4; i++)
            {
                expected += jacobian[i * 4 + j] * v[i];
            }

            Assert.Equal(expected, adjoint[j], 10);
        }

        double[] theta = field.Parameters.ToArray();
        for (int j = 0; j < theta.Length; j += 7)
        {
            double[] up = (double[])theta.Clone(), down = (double[])theta.Clone();
            up[j] += 1e-6;
            down[j] -= 1e-6;
            double[] fu = OdeReference.Mlp([6, 10, 7, 4], activation, up, [.. y, .. x]);
            double[] fd = OdeReference.Mlp([6, 10, 7, 4], activation, down, [.. y, .. x]);
            double expected = fu.Zip(fd, v).Sum(q => (q.First - q.Second) / 2e-6 * q.Third);
            Assert.Equal(expected, gradient[j], 6);
        }
    }

    [Fact]
    public void MatrixExponentialMatchesATaylorSeriesAtEveryPadeDegree()
    {
        // Norms from 1e-3 (degree 3) to 40 (degree 13 with squaring); reference: 40-term Taylor on A/2^12, squared 12 times.
        var random = new Random(41);
        foreach (double scale in new[] { 1e-3, 0.1, 0.5, 1.5, 4.0, 40.0 })
        {
            const int m = 5;
            double[] a = Numbers.Uniform(random, m * m, scale / m);
            var result = new double[m * m];
            MatrixExponential.Exp(a, result, m, new double[MatrixExponential.WorkspaceSize(m)]);
            double[] reference = TaylorExp(a, m);
            double norm = reference.Max(Math.Abs);
            Assert.True(OdeReference.MaxAbsDiff(result, reference) <= 1e-12 * Math.Max(1, norm), $"scale {scale}: {OdeReference.MaxAbsDiff(result, reference):G3}");
        }

        // φ₁ through the augmented matrix: e^M y + φ₁(M) c for a singular M (a zero eigenvalue) stays finite and exact.
        double[] singular = [0, 1, 0, 0];
        var phi = new double[4];
        var psi = new double[2];
        MatrixExponential.ExpAffine(singular, [1.0, 2.0], phi, psi, 2, new double[MatrixExponential.WorkspaceSize(3) + 18]);
        Assert.Equal([1, 1, 0, 1], phi, (x, y) => Math.Abs(x - y) < 1e-15);
        Assert.Equal([2.0, 2.0], psi, (x, y) => Math.Abs(x - y) < 1e-15); // ∫₀¹ e^{M s} c ds = [1 + 2·½, 2]
        Assert.Equal(1 + 0.5e-9, MatrixExponential.Phi1(1e-9), 15);
    }

    private static double[] TaylorExp(double[] a, int m)
    {
        const int squarings = 12;
        double[] x = [.. a.Select(v => v / (1 << squarings))];
        var sum = new double[m * m];
        var term = new double[m * m];
        for (int i = 0; i < m; i++)
        {
            sum[i * m + i] = term[i * m + i] = 1;
        }

        for (int k = 1; k < 40; k++)
        {
            term = Multiply(term, x, m);
            for (int i = 0; i < term.Length; i++)
            {
                term[i] /= k;
                sum[i] += term[i];
            }
        }

        for (int s = 0; s < squarings; s++)
        {
            sum = Multiply(sum, sum, m);
        }

        return sum;
    }

    private static double[] Multiply(double[] a, double[] b, int m)
    {
        var c = new double[m * m];
        for (int i = 0; i < m; i++)
        {
            for (int k = 0; k < m; k++)
            {
                for (int j = 0; j < m; j++)
                {
                    c[i * m + j] += a[i * m + k] * b[k * m + j];
                }
            }
        }

        return c;
    }

    [Fact]
    public void MlpRoundTripsThroughSafetensorsAndRejectsMisfits()
    {
        MlpField<float> field = MlpField<float>.Random([3, 8, 8, 3], 0, MlpActivation.Tanh, new Random(2));
        var stream = new MemoryStream();
        SafetensorsFile.Write(stream, field.ToTensors());
        stream.Position = 0;
        MlpField<float> loaded = MlpField<float>.Load(SafetensorsFile.Read(stream, "mlp"), MlpActivation.Tanh);
        Assert.Equal(field.Parameters.ToArray(), loaded.Parameters.ToArray());
        Assert.Equal([3, 8, 8, 3], loaded.Widths.ToArray());

        Dictionary<string, TensorData> tensors = field.ToTensors();
        tensors["3.weight"] = TensorData.FromSingle(new float[9], 3, 3);
        var e = Assert.Throws<TensorFormatException>(() => Load(tensors));
        Assert.Contains("3.weight", e.Message, StringComparison.Ordinal);
        Assert.Contains("odd", e.Message, StringComparison.Ordinal);

        tensors = field.ToTensors();
        tensors["2.weight"] = TensorData.FromSingle(new float[8 * 7], 8, 7);
        e = Assert.Throws<TensorFormatException>(() => Load(tensors));
        Assert.Contains("'2.weight' should have shape [out, 8]", e.Message, StringComparison.Ordinal);

        tensors = field.ToTensors();
        tensors["6.weight"] = TensorData.FromSingle(new float[3 * 8], 3, 8);
        tensors["6.bias"] = TensorData.FromSingle(new float[3], 3);
        e = Assert.Throws<TensorFormatException>(() => Load(tensors));
        Assert.Contains("[out, 3]", e.Message, StringComparison.Ordinal);

        static MlpField<float> Load(Dictionary<string, TensorData> tensors)
        {
            var s = new MemoryStream();
            SafetensorsFile.Write(s, tensors);
            s.Position = 0;
            return MlpField<float>.Load(SafetensorsFile.Read(s, "mlp"), MlpActivation.Tanh);
        }
    }

    [Fact]
    public void BadArgumentsAreNamedWithTheirShapes()
    {
        MlpField<double> field = RandomMlp(1);
        double[] times = [0, 0.5, 1];
        var e = Assert.Throws<ArgumentException>(() => Deer.SolveOde(field, new double[5], times));
        Assert.Equal("y0", e.ParamName);
        Assert.Contains("[4] or [B, 4]", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => Deer.SolveOde(field, new double[4], [0.0, 1.0, 1.0]));
        Assert.Equal("times", e.ParamName);
        Assert.Contains("strictly increasing", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => Deer.SolveOde(field, new double[4], [0.0, double.NaN]));
        Assert.Equal("times", e.ParamName);
        e = Assert.Throws<ArgumentException>(() => Deer.SolveOde(field, new double[4], times, null, new double[3]));
        Assert.Equal("inputs", e.ParamName);
        e = Assert.Throws<ArgumentException>(() => Deer.SolveOde(field, new double[4], times, new OdeOptions { AbsoluteTolerance = 0, RelativeTolerance = 0 }));
        Assert.Contains("both be 0", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => Deer.OdeGradient(field, new double[4], times, new double[11]));
        Assert.Equal("outputCotangent", e.ParamName);
        Assert.Contains("[1, 3, 4]", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DivergentSolutionIsReportedOrFallsBack()
    {
        // y' = y² from y0 = 1 blows up at t = 1; asking for t up to 2 cannot succeed.
        var field = new AutoDiffField<Square, double>(default(Square));
        double[] times = OdeReference.UniformTimes(50, 2.0);
        OdeResult<double> deer = Deer.SolveOde(field, [1.0], times, new OdeOptions { Fallback = FallbackPolicy.None, MaxGridSize = 1 << 14 });
        Assert.False(deer.Converged);
        Assert.NotEqual(OdeStatus.Converged, deer.Status);
        OdeResult<double> fallback = Deer.SolveOde(field, [1.0], times, new OdeOptions { MaxGridSize = 1 << 14 });
        Assert.False(fallback.Converged);
        Assert.Equal(OdeMethod.Deer, fallback.Method);
        Assert.Equal(OdeMethod.Dopri5, fallback.FallbackMethod);
        Assert.NotNull(fallback.FallbackReason);
    }

    private readonly struct Square : IVectorField
    {
        public int StateSize => 1;

        public int InputSize => 0;

        public int ParameterCount => 0;

        public void Apply<TNum>(ReadOnlySpan<TNum> y, TNum t, ReadOnlySpan<TNum> x, ReadOnlySpan<TNum> parameters, Span<TNum> dydt)
            where TNum : System.Numerics.IFloatingPointIeee754<TNum> => dydt[0] = y[0] * y[0];
    }
}
