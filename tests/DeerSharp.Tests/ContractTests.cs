using System.Text;
using DeerSharp.Cells;
using DeerSharp.IO;
using DeerSharp.Ode;
using DeerSharp.Scan;

namespace DeerSharp.Tests;

/// <summary>
/// The result contract (docs/robustness.md, "The contract") on the paths that once broke it: one test per case reported
/// in the contract issue, each of which failed before the fix.
/// </summary>
public class ContractTests
{
    [Fact]
    public void Fixed_grid_ode_that_misses_its_tolerance_is_not_reported_as_converged()
    {
        // Case 1: Lotka-Volterra on 21 points over [0, 10] without refinement; y(10) came back as -120,466 "Converged".
        var field = OdeSystems.Field<LotkaVolterra, double>();
        double[] times = [.. Enumerable.Range(0, 21).Select(i => i * 0.5)];
        var options = new OdeOptions { Method = OdeMethod.Deer, Adaptive = false, Fallback = FallbackPolicy.None };
        OdeResult<double> deer = Deer.SolveOde(field, [1.0, 1.0], times, options);
        Assert.False(deer.Converged, deer.Message);
        Assert.False(deer.Succeeded, deer.Message);
        Assert.NotEqual(OdeStatus.Converged, deer.Status);

        // The default fallback repairs it, and says which method produced the states.
        OdeResult<double> repaired = Deer.SolveOde(field, [1.0, 1.0], times, options with { Fallback = FallbackPolicy.Sequential });
        Assert.True(repaired.Converged, repaired.Message);
        Assert.Equal(OdeMethod.Deer, repaired.Method);
        Assert.Equal(OdeMethod.Dopri5, repaired.FallbackMethod);
        OdeResult<double> dopri = Deer.SolveOde(field, [1.0, 1.0], times, new OdeOptions { Method = OdeMethod.Dopri5 });
        Assert.Equal(dopri.States, repaired.States);

        // RK4 has no error estimate: it succeeds without claiming the tolerance.
        OdeResult<double> rk4 = Deer.SolveOde(field, [1.0, 1.0], times, options with { Method = OdeMethod.Rk4 });
        Assert.Equal(OdeStatus.ErrorNotControlled, rk4.Status);
        Assert.False(rk4.Converged);
        Assert.True(rk4.Succeeded);
    }

    [Fact]
    public void Ode_gradient_refuses_a_forward_solve_that_failed()
    {
        // Case 2: with one Newton iteration and no fallback the forward pass fails; the gradient came back with the wrong sign.
        var field = OdeSystems.Field<VanDerPol, double>();
        double[] times = [.. Enumerable.Range(0, 50).Select(i => i * 0.1)];
        double[] cotangent = [.. Enumerable.Repeat(1.0, 50 * 2)];
        var options = new OdeOptions { MaxIterations = 1, Fallback = FallbackPolicy.None };
        var e = Assert.Throws<InvalidOperationException>(() => Deer.OdeGradient(field, [2.0, 0.0], times, cotangent, options));
        Assert.Contains("did not succeed", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Fallback_result_names_the_failed_method_and_the_one_that_produced_the_states() => Seeded.Run(random =>
    {
        // Case 4 (CPU side): a tanh RNN with W_hh scaled by 40 defeats DEER in three iterations.
        RecurrentWeights<double> w = RecurrentWeights<double>.Random(1, 6, 3, random);
        for (int i = 0; i < w.WeightHH.Length; i++)
        {
            w.WeightHH[i] *= 40;
        }

        var cell = new TanhRnnCell<double>(w);
        double[,] x = Matrix(random, 300, 3);
        SolveResult<double> loop = Deer.Solve(cell, x, new SolveOptions { Method = SolveMethod.Sequential });
        SolveResult<double> r = Deer.Solve(cell, x, new SolveOptions { Method = SolveMethod.Deer, MaxIterations = 3 });
        Assert.True(r.Converged, r.Message);
        Assert.Equal(SolveMethod.Deer, r.Method);
        Assert.Equal(SolveMethod.Sequential, r.FallbackMethod);
        Assert.True(r.FallbackSequences > 0);
        Assert.True(double.IsFinite(r.MaxResidual));
        Assert.Equal(loop.States, r.States);
        Assert.Contains("sequential fallback", r.ToString(), StringComparison.Ordinal);

        SolveResult<double> failed = Deer.Solve(cell, x, new SolveOptions { Method = SolveMethod.Deer, MaxIterations = 3, Fallback = FallbackPolicy.None });
        Assert.False(failed.Converged);
        Assert.Null(failed.FallbackMethod);
    });

    [Fact]
    public void Iterations_are_summed_over_windows() => Seeded.Run(random =>
    {
        // API: Iterations was the largest count over windows; it is the total the method applied.
        var cell = GruCell<double>.Random(3, 4, random);
        double[,] x = Matrix(random, 2000, 3);
        var options = new SolveOptions { Method = SolveMethod.QuasiDeer, MemoryBudgetBytes = 64 << 10, MaxDegreeOfParallelism = 1 };
        SolveResult<double> windowed = Deer.Solve(cell, x, options);
        Assert.True(windowed.Windows > 2, $"{windowed.Windows} windows");
        Assert.True(windowed.Converged, windowed.Message);
        Assert.True(windowed.Iterations >= windowed.Windows, $"{windowed.Iterations} iterations over {windowed.Windows} windows");
    });

    [Fact]
    public void Zero_residual_is_within_a_zero_tolerance() => Seeded.Run(random =>
    {
        // Case 5's rule on the CPU: atol = rtol = 0 and f exactly 0 gives residual 0, which is within (not 0/0).
        var w = new RecurrentWeights<double>(1, 3, 2, new double[3 * 2], new double[3 * 3], null, null);
        SolveResult<double> r = Deer.Solve(new TanhRnnCell<double>(w), Matrix(random, 50, 2, scale: 0),
            new SolveOptions { AbsoluteTolerance = 0, RelativeTolerance = 0, Fallback = FallbackPolicy.None });
        Assert.True(r.Converged, r.Message);
        Assert.Equal(0, r.MaxResidual);
    });

    [Fact]
    public void Default_struct_cell_is_a_clear_argument_error()
    {
        // Case 7: new GruCell<float>() crashed with a NullReferenceException inside the solver.
        var x = new float[10, 4];
        var e = Assert.Throws<ArgumentException>(() => Deer.Solve(new GruCell<float>(), x));
        Assert.Equal("cell", e.ParamName);
        Assert.Contains("GruCell<Single>", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => Deer.Solve(default(LstmCell<double>), new double[10, 4]));
        Assert.Throws<ArgumentException>(() => new StackedCells<TanhRnnCell<float>, float>(default(TanhRnnCell<float>)));
        Assert.Throws<ArgumentException>(() => Deer.Gradient(new GruCell<double>(), new double[5, 4], new double[5, 4]));
    }

    [Fact]
    public void Linear_recurrence_validates_its_arguments()
    {
        // Case 8: short arrays surfaced as an AggregateException from worker threads; B·T·m overflowed int.
        double[] a = new double[100], b = new double[100], h0 = new double[2], h = new double[100];
        var shortB = Assert.Throws<ArgumentException>(() => LinearRecurrence.Solve(a, new double[50], h0, h, 50, 2, dense: false, maxDegreeOfParallelism: 4));
        Assert.Equal("b", shortB.ParamName);
        Assert.Contains("[50, 2]", shortB.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => LinearRecurrence.Solve(a, b, h0, h, 30, 2, dense: true, maxDegreeOfParallelism: 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => LinearRecurrence.Solve(a, b, h0, h, -1, 2, dense: false, maxDegreeOfParallelism: 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => LinearRecurrence.Solve(a, b, h0, h, 10, 2, dense: false, maxDegreeOfParallelism: 0));
        var huge = Assert.Throws<ArgumentException>(() => LinearRecurrence.SolveBatch(a, b, h0, h, 70_000, 70_000, 1, dense: false, maxDegreeOfParallelism: 2));
        Assert.DoesNotContain("0 values", huge.Message, StringComparison.Ordinal);
        Assert.Contains("70000", huge.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Safetensors_with_overlapping_data_offsets_are_rejected()
    {
        // Case 9: two tensors sharing bytes were accepted, and silently read the same data.
        string header = """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""";
        byte[] json = Encoding.UTF8.GetBytes(header);
        using var stream = new MemoryStream();
        stream.Write(BitConverter.GetBytes((long)json.Length));
        stream.Write(json);
        stream.Write(new byte[12]);
        stream.Position = 0;
        var e = Assert.Throws<TensorFormatException>(() => SafetensorsFile.Read(stream, "overlap.safetensors"));
        Assert.Contains("overlap", e.Message, StringComparison.Ordinal);
        Assert.Contains("'a'", e.Message, StringComparison.Ordinal);
        Assert.Contains("'b'", e.Message, StringComparison.Ordinal);
    }

    private static double[,] Matrix(Random random, int rows, int cols, double scale = 1.0)
    {
        var m = new double[rows, cols];
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < cols; j++)
            {
                m[i, j] = scale * (random.NextDouble() * 2 - 1);
            }
        }

        return m;
    }
}
