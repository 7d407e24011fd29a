using DeerSharp.Ode;

namespace DeerSharp;

public static partial class Deer
{
    /// <summary>
    /// Integrates dy/dt = f(y, t, x(t)) and returns y at every requested time, y0 included. DEER by default: Newton's method
    /// over the whole trajectory, each iteration a scan, on an internal grid refined until the local error estimate meets
    /// atol/rtol (reference §8; docs/odes.md).
    /// </summary>
    /// <param name="field">The vector field: an <see cref="MlpField{T}"/>, an <see cref="AutoDiffField{TField, T}"/> or your own <see cref="IOdeField{T}"/>.</param>
    /// <param name="initialState">y0, the initial state: n values, or B·n for a batch of B initial states ([B, n]).</param>
    /// <param name="times">The requested times t_0 &lt; t_1 &lt; … &lt; t_N, strictly increasing (any spacing).</param>
    /// <param name="options">Method, tolerances and limits; null for the defaults.</param>
    /// <param name="inputs">x at the requested times: [N + 1, m] shared by the batch or [B, N + 1, m]; empty when the field has no input. Linear in between.</param>
    /// <param name="warmStart">DEER's starting trajectory at the requested times, [B, N + 1, n] (a warm start); empty for y0 everywhere.</param>
    /// <exception cref="ArgumentException">A shape or value is wrong; the message names the argument and the expected shape.</exception>
    public static OdeResult<T> SolveOde<TField, T>(TField field, ReadOnlySpan<T> initialState, ReadOnlySpan<T> times, OdeOptions? options = null,
        ReadOnlySpan<T> inputs = default, ReadOnlySpan<T> warmStart = default)
        where TField : IOdeField<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var run = OdeRun<TField, T>.Create(field, initialState, times, options ?? OdeOptions.Default, inputs, warmStart);
        return run.Solve(initialState, warmStart, tapes: null, grids: null);
    }

    /// <summary>
    /// Solves the ODE and returns the gradient of a loss L with respect to y0 and the field's parameters θ, given
    /// dL/dy at every requested time (<paramref name="outputCotangent"/>, the shape of the solution: [B, N + 1, n]).
    /// The arguments are SolveOde's, with the cotangent after the data, as in Deer.Gradient.
    /// </summary>
    /// <remarks>
    /// DEER and quasi-DEER: the adjoint ODE dλ/dt = −(∂f/∂y)ᵀλ is discretised on the converged internal grid with the
    /// transposes of DEER's full-Jacobian interval maps and solved as one reverse-time linear recurrence, and
    /// dL/dθ = ∫ λᵀ ∂f/∂θ dt by the trapezoid rule: the gradient of the exact solution, to the solve's accuracy.
    /// RK4 and Dopri5: reverse-mode differentiation of the steps taken (step sizes held fixed), the exact gradient of
    /// the computed numbers.
    /// </remarks>
    public static OdeGradientResult<T> OdeGradient<TField, T>(TField field, ReadOnlySpan<T> initialState, ReadOnlySpan<T> times, ReadOnlySpan<T> outputCotangent,
        OdeOptions? options = null, ReadOnlySpan<T> inputs = default, ReadOnlySpan<T> warmStart = default)
        where TField : IOdeField<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (field is null)
        {
            throw new ArgumentNullException(nameof(field));
        }

        int n = Math.Max(1, field.StateSize);
        if (initialState.Length % n == 0 && !initialState.IsEmpty)
        {
            Require.Length(outputCotangent, (long)initialState.Length / n * times.Length * n, nameof(outputCotangent),
                $"[{initialState.Length / n}, {times.Length}, {n}] (the solution's shape)");
        }

        T[] cotangent = outputCotangent.ToArray();
        return OdeGradient(field, initialState, times, _ => cotangent, options, inputs, warmStart);
    }

    /// <summary>
    /// Like <see cref="OdeGradient{TField, T}(TField, ReadOnlySpan{T}, ReadOnlySpan{T}, ReadOnlySpan{T}, OdeOptions?, ReadOnlySpan{T}, ReadOnlySpan{T})"/>,
    /// for a cotangent that depends on the solution (a loss on y): <paramref name="cotangentOf"/> receives the solution and
    /// returns dL/dy at every requested time, [B, N + 1, n]. One forward solve serves both.
    /// </summary>
    public static OdeGradientResult<T> OdeGradient<TField, T>(TField field, ReadOnlySpan<T> initialState, ReadOnlySpan<T> times, Func<OdeResult<T>, T[]> cotangentOf,
        OdeOptions? options = null, ReadOnlySpan<T> inputs = default, ReadOnlySpan<T> warmStart = default)
        where TField : IOdeField<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(cotangentOf);
        var run = OdeRun<TField, T>.Create(field, initialState, times, options ?? OdeOptions.Default, inputs, warmStart);
        int batch = run.BatchSize, n = field.StateSize, length = times.Length;
        var tapes = new object?[batch];
        var grids = new object?[batch];
        OdeResult<T> solution = run.Solve(initialState, warmStart, tapes, grids);
        if (!solution.Succeeded)
        {
            // As for recurrences: the adjoint at a trajectory that is not the solution is the gradient of nothing.
            throw new InvalidOperationException(
                $"The forward ODE solve did not succeed ({solution.Status}), and gradients at a trajectory that is not the solution would be wrong: {solution.Message}");
        }

        T[] cotangent = cotangentOf(solution);
        Require.Length(cotangent, (long)batch * length * n, "outputCotangent", $"[{batch}, {length}, {n}] (the solution's shape)");
        Require.Finite(cotangent, "outputCotangent");
        var dy0 = new T[batch * n];
        var dTheta = new T[field.ParameterCount];
        var partial = new T[batch * field.ParameterCount];
        for (int b = 0; b < batch; b++)
        {
            run.Gradient(b, tapes[b], grids[b], cotangent.AsSpan(b * length * n, length * n), dy0.AsSpan(b * n, n),
                partial.AsSpan(b * field.ParameterCount, field.ParameterCount));
        }

        for (int b = 0; b < batch; b++)
        {
            for (int j = 0; j < dTheta.Length; j++)
            {
                dTheta[j] += partial[b * dTheta.Length + j];
            }
        }

        return new OdeGradientResult<T>(solution, dy0, dTheta);
    }
}
