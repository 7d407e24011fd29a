using DeerSharp.Engines;

namespace DeerSharp.Cli;

/// <summary>
/// One cell of the selftest, solved on the device and checked against what the contract promises
/// (docs/robustness.md, "Comparing a device with the CPU"): the device's states satisfy the recurrence, as the CPU's
/// own cell computes it, to the solve's tolerance; and they differ from the CPU loop's by no more than that tolerance,
/// carried through the recurrence's Jacobians, allows.
/// </summary>
internal abstract class SelftestCase<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>A selftest case for <paramref name="cell"/> over B sequences of L steps.</summary>
    public static SelftestCase<T> Of<TCell>(TCell cell, int batch, int length)
        where TCell : IRecurrentCell<T> => new For<TCell>(cell, batch, length);

    public abstract int StateSize { get; }

    public abstract SolveResult<T> Solve(T[] inputs, T[] initialState, SolveOptions options);

    /// <summary>
    /// How far <paramref name="states"/> stand from the CPU loop's <paramref name="reference"/>, against what the contract
    /// allows: (largest |Δ|, the largest ratio of a step's |Δ| to its bound, the largest bound, the largest ratio of a step's
    /// residual, recomputed by the CPU, to its tolerance).
    /// </summary>
    public abstract (double MaxDifference, double BoundRatio, double MaxBound, double ResidualRatio) Compare(T[] inputs, T[] initialState, T[] states,
        T[] reference, SolveOptions options);

    private sealed class For<TCell>(TCell cell, int batch, int length) : SelftestCase<T>
        where TCell : IRecurrentCell<T>
    {
        public override int StateSize => cell.StateSize;

        public override SolveResult<T> Solve(T[] inputs, T[] initialState, SolveOptions options) =>
            Deer.Solve(cell, inputs, batch, length, options, initialState);

        public override (double MaxDifference, double BoundRatio, double MaxBound, double ResidualRatio) Compare(T[] inputs, T[] initialState, T[] states,
            T[] reference, SolveOptions options)
        {
            (double atol, double rtol) = SolverSettings<T>.Tolerances(options);
            double eps = typeof(T) == typeof(float) ? 1.1920928955078125e-7 : 2.220446049250313e-16;     // one unit in the last place at 1
            int s = cell.StateSize, d = cell.InputSize, p = cell.ProjectionSize;
            var projection = new T[p];
            var f = new T[s];
            var jacobian = new T[s * s];
            var workspace = new T[Math.Max(1, Math.Max(cell.BlockWorkspaceSize(1), cell.WorkspaceSize))];
            double maxDiff = 0, boundRatio = 0, maxBound = 0, residualRatio = 0;
            for (int b = 0; b < batch; b++)
            {
                double bound = 0;
                for (int t = 0; t < length; t++)
                {
                    int row = (b * length) + t;
                    cell.ProjectInputs(inputs.AsSpan(row * d, d), projection, 1);
                    ReadOnlySpan<T> before = t == 0 ? initialState.AsSpan(b * s, s) : reference.AsSpan((row - 1) * s, s);
                    cell.EvaluateBlock(before, projection, f, jacobian, Cells.JacobianMode.Full, workspace, 1);
                    // e_t = J_t e_{t−1} + r_t to first order, so ‖e_t‖ ≤ ‖J_t‖ ‖e_{t−1}‖ + ‖r_t‖: the residual the contract
                    // allows at this step, plus a few roundings of f for the loop itself, carried forward.
                    double norm = 0, fmax = 0;
                    for (int i = 0; i < s; i++)
                    {
                        double sum = 0;
                        for (int j = 0; j < s; j++)
                        {
                            sum += Math.Abs(double.CreateTruncating(jacobian[(i * s) + j]));
                        }

                        norm = Math.Max(norm, sum);
                        fmax = Math.Max(fmax, Math.Abs(double.CreateTruncating(f[i])));
                    }

                    bound = (norm * bound) + atol + (rtol * fmax) + (8 * eps * (1 + fmax));
                    maxBound = Math.Max(maxBound, bound);
                    double diff = 0;
                    for (int i = 0; i < s; i++)
                    {
                        diff = Math.Max(diff, Math.Abs(double.CreateTruncating(states[(row * s) + i]) - double.CreateTruncating(reference[(row * s) + i])));
                    }

                    maxDiff = double.IsNaN(diff) ? double.NaN : Math.Max(maxDiff, diff);
                    boundRatio = double.IsNaN(diff) ? double.PositiveInfinity : Math.Max(boundRatio, diff / (1.5 * bound));

                    // The residual of the device's own states, with the CPU's f: within the solve's tolerance (and a few roundings,
                    // since the device computes tanh and exp its own way).
                    ReadOnlySpan<T> previous = t == 0 ? initialState.AsSpan(b * s, s) : states.AsSpan((row - 1) * s, s);
                    cell.Evaluate(previous, projection, f, workspace);
                    for (int i = 0; i < s; i++)
                    {
                        double fi = double.CreateTruncating(f[i]);
                        double r = Math.Abs(double.CreateTruncating(states[(row * s) + i]) - fi);
                        double allowed = atol + (rtol * Math.Abs(fi)) + (8 * eps * (1 + Math.Abs(fi)));
                        residualRatio = double.IsNaN(r) ? double.PositiveInfinity : Math.Max(residualRatio, r / allowed);
                    }
                }
            }

            return (maxDiff, boundRatio, maxBound, residualRatio);
        }
    }
}
