namespace DeerSharp.AutoDiff;

/// <summary>f on dual numbers, its arguments already placed: forward mode seeds them one direction at a time.</summary>
internal interface IDualFunction<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Evaluates f into <paramref name="output"/>.</summary>
    void Apply(Span<Dual<T>> output);
}

/// <summary>
/// Forward-mode derivatives of any <see cref="IDualFunction{T}"/>: seed argument j (a dual number with derivative 1),
/// evaluate, read column j of the Jacobian from the outputs' derivatives. The cells' and the ODE fields' automatic
/// differentiation (<see cref="Cells.ParameterizedCell{TFunction, T}"/>, <see cref="Ode.AutoDiffField{TField, T}"/>)
/// both go through here.
/// </summary>
internal static class ForwardMode
{
    /// <summary>
    /// f's value and its Jacobian with respect to <paramref name="seeds"/> (holding <paramref name="point"/> as constants):
    /// the full [m, n] matrix, or only its diagonal when <paramref name="diagonal"/>. n evaluations of f.
    /// </summary>
    public static void Jacobian<T, TFunction>(ref TFunction f, Span<Dual<T>> seeds, ReadOnlySpan<T> point, Span<Dual<T>> output, Span<T> value,
        Span<T> jacobian, bool diagonal)
        where T : unmanaged, IFloatingPointIeee754<T>
        where TFunction : IDualFunction<T>, allows ref struct
    {
        int n = point.Length, m = output.Length;
        for (int j = 0; j < n; j++)
        {
            seeds[j] = Dual<T>.Variable(point[j]);
            f.Apply(output);
            seeds[j] = Dual<T>.Constant(point[j]);
            if (diagonal)
            {
                jacobian[j] = output[j].Derivative;
                continue;
            }

            for (int i = 0; i < m; i++)
            {
                jacobian[i * n + j] = output[i].Derivative;
            }
        }

        for (int i = 0; i < m; i++)
        {
            value[i] = output[i].Value;
        }
    }

    /// <summary>
    /// vᵀ ∂f/∂seed_j for every argument j of <paramref name="seeds"/> (holding <paramref name="point"/>), added to
    /// <paramref name="target"/>[j] when <paramref name="accumulate"/>, else written there. n evaluations of f.
    /// </summary>
    public static void VectorJacobian<T, TFunction>(ref TFunction f, Span<Dual<T>> seeds, ReadOnlySpan<T> point, Span<Dual<T>> output, ReadOnlySpan<T> v,
        Span<T> target, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
        where TFunction : IDualFunction<T>, allows ref struct
    {
        for (int j = 0; j < point.Length; j++)
        {
            seeds[j] = Dual<T>.Variable(point[j]);
            f.Apply(output);
            seeds[j] = Dual<T>.Constant(point[j]);
            T sum = T.Zero;
            for (int i = 0; i < v.Length; i++)
            {
                sum += output[i].Derivative * v[i];
            }

            target[j] = accumulate ? target[j] + sum : sum;
        }
    }
}
