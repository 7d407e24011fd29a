
namespace DeerSharp.Training;

/// <summary>
/// Adam (Kingma &amp; Ba, 2015) over a list of parameter arrays, updated in place:
/// m ← β₁m + (1-β₁)g, v ← β₂v + (1-β₂)g², θ ← θ - lr·m̂/(√v̂ + ε) with the bias-corrected m̂, v̂.
/// </summary>
public sealed class Adam<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T[][] _parameters;
    private readonly T[][] _m;
    private readonly T[][] _v;

    /// <summary>Optimises <paramref name="parameters"/> (each array updated in place by <see cref="Step"/>).</summary>
    /// <remarks>
    /// <paramref name="epsilon"/> (PyTorch's default, 1e-8) caps the update of a parameter whose gradients are smaller
    /// than it at about lr·|g|/ε. Over long dependencies the gradients that matter can be far smaller: at a million steps
    /// of the memorisation task they measured 1e-13, and with ε = 1e-8 they moved by 1e-7 a step (docs/linear-surrogates.md);
    /// pass an ε below them there.
    /// </remarks>
    public Adam(IReadOnlyList<T[]> parameters, double learningRate = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (!(learningRate > 0) || !(beta1 is >= 0 and < 1) || !(beta2 is >= 0 and < 1) || !(epsilon > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(learningRate), "Adam needs learningRate > 0, 0 ≤ beta1, beta2 < 1 and epsilon > 0.");
        }

        _parameters = [.. parameters];
        _m = [.. _parameters.Select(p => new T[p.Length])];
        _v = [.. _parameters.Select(p => new T[p.Length])];
        LearningRate = learningRate;
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
    }

    /// <summary>The step size.</summary>
    public double LearningRate { get; set; }

    /// <summary>β₁.</summary>
    public double Beta1 { get; }

    /// <summary>β₂.</summary>
    public double Beta2 { get; }

    /// <summary>ε.</summary>
    public double Epsilon { get; }

    /// <summary>Steps taken.</summary>
    public int Steps { get; private set; }

    /// <summary>The first moments m, one array per parameter array (for saving a run to resume it).</summary>
    public IReadOnlyList<T[]> FirstMoments => _m;

    /// <summary>The second moments v, one array per parameter array.</summary>
    public IReadOnlyList<T[]> SecondMoments => _v;

    /// <summary>Restores a saved state: the steps taken and the moments (copied), as <see cref="FirstMoments"/> and <see cref="SecondMoments"/> gave them.</summary>
    /// <exception cref="ArgumentException">An array's count or length does not match the parameters'.</exception>
    public void Restore(int steps, IReadOnlyList<T[]> firstMoments, IReadOnlyList<T[]> secondMoments)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(steps);
        ArgumentNullException.ThrowIfNull(firstMoments);
        ArgumentNullException.ThrowIfNull(secondMoments);
        foreach (var (given, name) in new[] { (firstMoments, nameof(firstMoments)), (secondMoments, nameof(secondMoments)) })
        {
            if (given.Count != _parameters.Length)
            {
                throw new ArgumentException($"Expected {_parameters.Length} arrays, got {given.Count}.", name);
            }

            for (int k = 0; k < given.Count; k++)
            {
                Require.Length(given[k], _parameters[k].Length, name, $"[{_parameters[k].Length}] (parameter array {k})");
            }
        }

        for (int k = 0; k < _parameters.Length; k++)
        {
            firstMoments[k].CopyTo(_m[k], 0);
            secondMoments[k].CopyTo(_v[k], 0);
        }

        Steps = steps;
    }

    /// <summary>One update from <paramref name="gradients"/>, one array per parameter array, in the same order and shapes.</summary>
    public void Step(IReadOnlyList<T[]> gradients)
    {
        ArgumentNullException.ThrowIfNull(gradients);
        if (gradients.Count != _parameters.Length)
        {
            throw new ArgumentException($"Expected {_parameters.Length} gradient arrays, got {gradients.Count}.", nameof(gradients));
        }

        Steps++;
        double c1 = 1 - Math.Pow(Beta1, Steps), c2 = 1 - Math.Pow(Beta2, Steps);
        for (int k = 0; k < _parameters.Length; k++)
        {
            T[] p = _parameters[k], g = gradients[k], m = _m[k], v = _v[k];
            Require.Length(g, p.Length, nameof(gradients), $"[{p.Length}] (parameter array {k})");
            for (int i = 0; i < p.Length; i++)
            {
                double gi = double.CreateTruncating(g[i]);
                double mi = Beta1 * double.CreateTruncating(m[i]) + (1 - Beta1) * gi;
                double vi = Beta2 * double.CreateTruncating(v[i]) + (1 - Beta2) * gi * gi;
                m[i] = T.CreateTruncating(mi);
                v[i] = T.CreateTruncating(vi);
                p[i] -= T.CreateTruncating(LearningRate * (mi / c1) / (Math.Sqrt(vi / c2) + Epsilon));
            }
        }
    }
}
