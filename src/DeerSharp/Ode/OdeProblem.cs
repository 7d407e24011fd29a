
namespace DeerSharp.Ode;

/// <summary>One sequence's problem: the requested times, the inputs there, and the resolved options.</summary>
internal sealed class OdeProblem<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    public OdeProblem(T[] times, T[]? inputs, int n, int m, OdeOptions options)
    {
        Times = times;
        Inputs = inputs;
        StateSize = n;
        InputSize = m;
        Options = options;
        bool single = typeof(T) == typeof(float);
        Atol = options.AbsoluteTolerance ?? (single ? 1e-6 : 1e-9);
        Rtol = options.RelativeTolerance ?? (single ? 1e-5 : 1e-7);
        Cores = Math.Max(1, options.MaxDegreeOfParallelism ?? Environment.ProcessorCount);
        MaxIterations = options.MaxIterations ?? (options.Method == OdeMethod.QuasiDeer ? 1000 : 100);
        Epsilon = Math.ScaleB(1.0, single ? -23 : -52);
    }

    /// <summary>The requested times τ_0 &lt; … &lt; τ_N.</summary>
    public T[] Times { get; }

    /// <summary>x at the requested times, [N + 1, m], or null.</summary>
    public T[]? Inputs { get; }

    public int StateSize { get; }

    public int InputSize { get; }

    public OdeOptions Options { get; }

    public double Atol { get; }

    public double Rtol { get; }

    public int Cores { get; }

    public int MaxIterations { get; }

    /// <summary>The unit roundoff of T, as a double.</summary>
    public double Epsilon { get; }

    /// <summary>x(t) by linear interpolation between the requested times (constant beyond them).</summary>
    public void InputAt(T t, Span<T> x)
    {
        int m = InputSize;
        if (m == 0)
        {
            return;
        }

        T[] inputs = Inputs!;
        int index = Array.BinarySearch(Times, t);
        if (index >= 0)
        {
            inputs.AsSpan(index * m, m).CopyTo(x);
            return;
        }

        int right = ~index;
        if (right == 0 || right >= Times.Length)
        {
            inputs.AsSpan((right == 0 ? 0 : Times.Length - 1) * m, m).CopyTo(x);
            return;
        }

        int left = right - 1;
        T s = (t - Times[left]) / (Times[right] - Times[left]);
        for (int j = 0; j < m; j++)
        {
            x[j] = inputs[left * m + j] + s * (inputs[right * m + j] - inputs[left * m + j]);
        }
    }
}
