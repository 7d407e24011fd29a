
namespace DeerSharp.Training;

/// <summary>Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_.</summary>
public static class GradientClipping
{
    /// <summary>
    /// Scales every array by min(1, maxNorm / ‖g‖) where ‖g‖ is the 2-norm over all of them together; returns ‖g‖ before clipping.
    /// </summary>
    public static double ClipByGlobalNorm<T>(IReadOnlyList<T[]> gradients, double maxNorm)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(gradients);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxNorm);
        double sum = 0;
        foreach (T[] g in gradients)
        {
            foreach (T v in g)
            {
                double d = double.CreateTruncating(v);
                sum += d * d;
            }
        }

        double norm = Math.Sqrt(sum);
        if (norm > maxNorm)
        {
            T scale = T.CreateTruncating(maxNorm / norm);
            foreach (T[] g in gradients)
            {
                for (int i = 0; i < g.Length; i++)
                {
                    g[i] *= scale;
                }
            }
        }

        return norm;
    }
}
