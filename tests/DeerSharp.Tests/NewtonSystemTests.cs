using DeerSharp.Cells;
using DeerSharp.Ode;
using MathNet.Numerics.LinearAlgebra;

namespace DeerSharp.Tests;

/// <summary>
/// Independent references from MathNet.Numerics. One DEER iteration is one Newton step on the whole trajectory: the
/// (T·n)×(T·n) block lower-bidiagonal system h_t − J_t h_{t−1} = f(h⁽ᵏ⁾_{t−1}) − J_t h⁽ᵏ⁾_{t−1}, assembled here and solved by
/// MathNet's dense LU, must give the iterate the library's scan gives. And the matrix exponential behind the ODE
/// discretisation must match a MathNet scaling-and-squaring Taylor series.
/// </summary>
public class NewtonSystemTests
{
    [Theory]
    [InlineData("rnn")]
    [InlineData("gru")]
    [InlineData("lstm")]
    public void One_deer_iteration_equals_the_lu_solve_of_the_whole_newton_system(string kind) => Seeded.Run(random =>
    {
        const int T = 40, D = 3, N = 4;
        IDifferentiableCell<double> cell = kind switch
        {
            "rnn" => TanhRnnCell<double>.Random(D, N, random),
            "gru" => GruCell<double>.Random(D, N, random),
            _ => LstmCell<double>.Random(D, N, random),
        };
        int s = cell.StateSize;
        double[] x = Numbers.Uniform(random, T * D), h0 = Numbers.Uniform(random, s, 0.5), guess = Numbers.Uniform(random, T * s, 0.8);
        double[] expected = NewtonStep(cell, x, h0, guess, T);

        // The library: one update from the same guess, no fallback (the status is MaxIterationsReached; the states are h⁽¹⁾).
        SolveResult<double> one = Deer.Solve(cell, x, 1, T, new SolveOptions { Method = SolveMethod.Deer, MaxIterations = 1, Fallback = FallbackPolicy.None },
            h0, guess);
        Assert.Equal(1, one.Iterations);
        double diff = Numbers.MaxAbsDiff(one.States, expected);
        Assert.True(diff <= 1e-10, $"{kind}: max |scan − LU| = {diff:G3}");

        // The check can fail: a wrong linearisation point (h_t instead of h_{t−1}) moves the answer far beyond the tolerance.
        double[] shifted = [.. guess.Skip(s), .. guess.TakeLast(s)];
        Assert.True(Numbers.MaxAbsDiff(NewtonStep(cell, x, h0, shifted, T), expected) > 1e-6);
    });

    [Fact]
    public void Matrix_exponential_matches_a_mathnet_taylor_series() => Seeded.Run(random =>
    {
        foreach (int m in new[] { 1, 2, 5, 9 })
        {
            foreach (double scale in new[] { 1e-3, 0.5, 3.0, 20.0 })
            {
                double[] a = Numbers.Uniform(random, m * m, scale);
                var result = new double[m * m];
                MatrixExponential.Exp(a, result, m, new double[MatrixExponential.WorkspaceSize(m)]);
                Matrix<double> reference = TaylorExp(Matrix<double>.Build.Dense(m, m, (i, j) => a[(i * m) + j]));
                double norm = reference.L1Norm();
                double diff = Matrix<double>.Build.Dense(m, m, (i, j) => result[(i * m) + j]).Subtract(reference).L1Norm();
                Assert.True(diff <= 1e-12 * Math.Max(1, norm), $"m = {m}, scale {scale}: ‖Δ‖₁ = {diff:G3} against ‖e^A‖₁ = {norm:G3}");
            }
        }
    });

    /// <summary>The Newton iterate by a dense LU of the whole system, unknowns h_1..h_T stacked.</summary>
    private static double[] NewtonStep(IDifferentiableCell<double> cell, double[] x, double[] h0, double[] guess, int length)
    {
        int s = cell.StateSize, p = cell.ProjectionSize;
        var projections = new double[length * p];
        cell.ProjectInputs(x, projections, length);
        double[] previous = [.. h0, .. guess.Take((length - 1) * s)];
        var f = new double[length * s];
        var jacobians = new double[length * s * s];
        cell.EvaluateBlock(previous, projections, f, jacobians, JacobianMode.Full, new double[cell.BlockWorkspaceSize(length)], length);

        Matrix<double> system = Matrix<double>.Build.Dense(length * s, length * s);
        Vector<double> rhs = Vector<double>.Build.Dense(length * s);
        for (int t = 0; t < length; t++)
        {
            for (int i = 0; i < s; i++)
            {
                int row = (t * s) + i;
                system[row, row] = 1;
                double b = f[row];
                for (int j = 0; j < s; j++)
                {
                    double jij = jacobians[(t * s * s) + (i * s) + j];
                    b -= jij * previous[(t * s) + j];
                    if (t == 0)
                    {
                        b += jij * h0[j];          // h_0 is known: its term moves to the right-hand side
                    }
                    else
                    {
                        system[row, ((t - 1) * s) + j] = -jij;
                    }
                }

                rhs[row] = b;
            }
        }

        return system.LU().Solve(rhs).ToArray();
    }

    /// <summary>e^A = (Σ_k (A/2^q)^k / k!)^(2^q), with ‖A/2^q‖ ≤ 1/2 and 30 terms: far past double precision.</summary>
    private static Matrix<double> TaylorExp(Matrix<double> a)
    {
        int q = Math.Max(0, (int)Math.Ceiling(Math.Log2(Math.Max(a.L1Norm(), 1e-300) * 2)));
        Matrix<double> scaled = a / Math.Pow(2, q);
        Matrix<double> sum = Matrix<double>.Build.DenseIdentity(a.RowCount), term = sum.Clone();
        for (int k = 1; k <= 30; k++)
        {
            term = term * scaled / k;
            sum += term;
        }

        for (int i = 0; i < q; i++)
        {
            sum *= sum;
        }

        return sum;
    }
}
