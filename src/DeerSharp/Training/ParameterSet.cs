
namespace DeerSharp.Training;

/// <summary>
/// Named parameter arrays with their shapes, in a fixed order: what <see cref="Adam{T}"/> updates, and what a gradient
/// set mirrors (<see cref="ZerosLike"/>). Arrays are held by reference: a cell built from them must be rebuilt after an
/// update, since cells take a snapshot of their weights.
/// </summary>
public sealed class ParameterSet<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly List<(string Name, T[] Values, int[] Shape)> _entries = [];

    /// <summary>Adds an array under <paramref name="name"/>; its length must match <paramref name="shape"/>.</summary>
    public T[] Add(string name, T[] values, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(values);
        if (_entries.Any(e => e.Name == name))
        {
            throw new ArgumentException($"A parameter named '{name}' already exists.", nameof(name));
        }

        Require.Length(values, shape.Aggregate(1L, (a, b) => a * b), nameof(values), $"[{string.Join(", ", shape)}]");
        _entries.Add((name, values, (int[])shape.Clone()));
        return values;
    }

    /// <summary>The names, in order.</summary>
    public IReadOnlyList<string> Names => [.. _entries.Select(e => e.Name)];

    /// <summary>The arrays, in order (for <see cref="Adam{T}"/>).</summary>
    public IReadOnlyList<T[]> Arrays => [.. _entries.Select(e => e.Values)];

    /// <summary>The array named <paramref name="name"/>.</summary>
    public T[] this[string name] => _entries.FirstOrDefault(e => e.Name == name).Values
        ?? throw new KeyNotFoundException($"No parameter named '{name}' (there are: {string.Join(", ", _entries.Select(e => e.Name))}).");

    /// <summary>The shape of the array named <paramref name="name"/>.</summary>
    public IReadOnlyList<int> Shape(string name) => _entries.First(e => e.Name == name).Shape;

    /// <summary>A set of zero arrays with the same names and shapes: a gradient accumulator.</summary>
    public ParameterSet<T> ZerosLike()
    {
        var zeros = new ParameterSet<T>();
        foreach (var (name, values, shape) in _entries)
        {
            zeros.Add(name, new T[values.Length], shape);
        }

        return zeros;
    }

    /// <summary>The total number of values.</summary>
    public long Count => _entries.Sum(e => (long)e.Values.Length);
}
