namespace DeerSharp.Ode;

internal sealed partial class DeerOde<TField, T>
{
    /// <summary>
    /// The adjoint on the converged grid (reference §7 in continuous time): λ_K = g_K, λ_i = Φ_iᵀ λ_{i+1} + g_i with Φ_i from
    /// the full Jacobian, so a reverse-time linear recurrence; dL/dθ = Σ_i ½Δt_i [(∂f/∂θ)ᵀ(y_i) Φ_iᵀλ_{i+1} + (∂f/∂θ)ᵀ(y_{i+1}) λ_{i+1}].
    /// </summary>
    public void Gradient(DeerOdeGrid<T> grid, ReadOnlySpan<T> cotangent, Span<T> initialGradient, Span<T> parameterGradient)
    {
        int n = _n, m = _m, k = grid.Intervals, nn = n * n, parameters = _field.ParameterCount;
        Linearise(grid, dense: true, 0, k);
        var lambda = new T[(k + 1) * n];
        for (int u = 0; u < grid.UserIndex.Length; u++)
        {
            cotangent.Slice(u * n, n).CopyTo(lambda.AsSpan(grid.UserIndex[u] * n, n));
        }

        // The reverse-time recurrence λ_i = Φ_iᵀ λ_{i+1} + g_i, as a forward one in j = K − 1 − i solved by the scan:
        // h_j = Φ_{K−1−j}ᵀ h_{j−1} + g_{K−1−j}, h_{−1} = λ_K = g_K.
        var transposed = new T[k * nn];
        var forcing = new T[k * n];
        var reversed = new T[k * n];
        for (int j = 0; j < k; j++)
        {
            int i = k - 1 - j;
            ReadOnlySpan<T> phi = _a.AsSpan(i * nn, nn);
            Span<T> target = transposed.AsSpan(j * nn, nn);
            for (int r = 0; r < n; r++)
            {
                for (int c = 0; c < n; c++)
                {
                    target[c * n + r] = phi[r * n + c];
                }
            }

            lambda.AsSpan(i * n, n).CopyTo(forcing.AsSpan(j * n, n));
        }

        Scan.LinearRecurrence.Solve(transposed, forcing, lambda.AsSpan(k * n, n).ToArray(), reversed, k, n, dense: true, _p.Cores);
        for (int j = 0; j < k; j++)
        {
            int i = k - 1 - j;
            for (int r = 0; r < n; r++)
            {
                // λ_i^+ = Φ_iᵀ λ_{i+1} (the adjoint just after t_i) = λ_i − g_i, kept in _b for the parameter integral.
                _b[i * n + r] = reversed[j * n + r] - lambda[i * n + r];
            }

            reversed.AsSpan(j * n, n).CopyTo(lambda.AsSpan(i * n, n));
        }

        lambda.AsSpan(0, n).CopyTo(initialGradient);
        if (parameters == 0)
        {
            return;
        }

        // Fixed chunks and a fixed-order sum: the gradient does not depend on the thread count.
        int chunkCount = Math.Min(k, 64);
        var partial = new T[chunkCount * parameters];
        var scratch = new Scratch[chunkCount];
        Parallel.For(0, chunkCount, new ParallelOptions { MaxDegreeOfParallelism = _p.Cores }, c =>
        {
            Scratch s = scratch[c] = new Scratch(this, c);
            Span<T> g = partial.AsSpan(c * parameters, parameters), v = s.Mid, dy = s.Fm;
            int start = (int)((long)k * c / chunkCount), end = (int)((long)k * (c + 1) / chunkCount);
            for (int i = start; i < end; i++)
            {
                T halfDt = T.CreateTruncating(0.5) * (grid.Times[i + 1] - grid.Times[i]);
                for (int r = 0; r < n; r++)
                {
                    v[r] = halfDt * _b[i * n + r];
                }

                _field.Backward(grid.Y.AsSpan(i * n, n), grid.Times[i], grid.Inputs.AsSpan(i * m, m), v, dy, g, s.Field);
                for (int r = 0; r < n; r++)
                {
                    v[r] = halfDt * lambda[(i + 1) * n + r];
                }

                _field.Backward(grid.Y.AsSpan((i + 1) * n, n), grid.Times[i + 1], grid.Inputs.AsSpan((i + 1) * m, m), v, dy, g, s.Field);
            }
        });
        for (int c = 0; c < chunkCount; c++)
        {
            Span<T> g = partial.AsSpan(c * parameters, parameters);
            for (int j = 0; j < parameters; j++)
            {
                parameterGradient[j] += g[j];
            }
        }
    }
}
