
namespace DeerSharp.Training;

/// <summary>
/// The states each training sample reached last time, to start DEER from on the next epoch (as the DEER paper's
/// experiments do): parameters move little between epochs, so last epoch's trajectory is close to this epoch's solution
/// and Newton needs fewer iterations. Thread safe.
/// </summary>
public sealed class WarmStarts<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Dictionary<int, T[]> _states = [];
    private readonly Lock _gate = new();

    /// <summary>Samples with a stored trajectory.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _states.Count;
            }
        }
    }

    /// <summary>
    /// The stored trajectories of <paramref name="samples"/> laid out as a batch [B, T, S], or null unless every sample
    /// has one of exactly <paramref name="perSample"/> values.
    /// </summary>
    public T[]? Batch(IReadOnlyList<int> samples, int perSample)
    {
        ArgumentNullException.ThrowIfNull(samples);
        var batch = new T[samples.Count * perSample];
        lock (_gate)
        {
            for (int i = 0; i < samples.Count; i++)
            {
                if (!_states.TryGetValue(samples[i], out T[]? s) || s.Length != perSample)
                {
                    return null;
                }

                s.CopyTo(batch, i * perSample);
            }
        }

        return batch;
    }

    /// <summary>Stores each sample's trajectory from a batch of states [B, T, S].</summary>
    public void Store(IReadOnlyList<int> samples, ReadOnlySpan<T> states)
    {
        ArgumentNullException.ThrowIfNull(samples);
        if (samples.Count == 0)
        {
            return;
        }

        int per = states.Length / samples.Count;
        lock (_gate)
        {
            for (int i = 0; i < samples.Count; i++)
            {
                _states[samples[i]] = states.Slice(i * per, per).ToArray();
            }
        }
    }
}
