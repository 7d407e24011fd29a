namespace DeerSharp.Ode;

internal sealed partial class DeerOde<TField, T>
{
    /// <summary>
    /// Evaluates f and G along the grid's iterate, forms every interval's map (Φ_i, ψ_i) into the A and B buffers, and
    /// measures the iterate's residual against them. Returns the largest residual relative to its tolerance and the
    /// largest absolute residual.
    /// </summary>
    internal (double Ratio, double Residual) Linearise(DeerOdeGrid<T> grid, bool dense, int first, int last)
    {
        int n = _n, m = _m, k = last - first, per = dense ? n * n : n;
        EnsureBuffers(k, dense);
        T[] jac = _jacobians;
        ForChunks(k + 1, (s, start, end) =>
        {
            for (int point = start; point < end; point++)
            {
                int i = first + point;
                ReadOnlySpan<T> y = grid.Y.AsSpan(i * n, n), x = grid.Inputs.AsSpan(i * m, m);
                if (dense)
                {
                    _field.EvaluateJacobian(y, grid.Times[i], x, grid.F.AsSpan(i * n, n), jac.AsSpan(point * per, per), s.Field);
                }
                else
                {
                    _field.EvaluateJacobianDiagonal(y, grid.Times[i], x, grid.F.AsSpan(i * n, n), jac.AsSpan(point * per, per), s.Field);
                }
            }
        });
        Interlocked.Add(ref _evaluations, k + 1);

        double[] ratios = new double[_scratch.Length], residuals = new double[_scratch.Length];
        int chunks = ForChunks(k, (s, start, end) =>
        {
            double ratio = 0, residual = 0;
            for (int interval = start; interval < end; interval++)
            {
                int i = first + interval;
                IntervalMap(grid, i, interval, dense, s);
                ReadOnlySpan<T> yi = grid.Y.AsSpan(i * n, n), yj = grid.Y.AsSpan((i + 1) * n, n);
                for (int r = 0; r < n; r++)
                {
                    double predicted = s.Psi[r], magnitude = Math.Abs(s.Psi[r]);
                    if (dense)
                    {
                        for (int c = 0; c < n; c++)
                        {
                            double term = s.Phi[r * n + c] * double.CreateTruncating(yi[c]);
                            predicted += term;
                            magnitude += Math.Abs(term);
                        }
                    }
                    else
                    {
                        double term = s.Phi[r] * double.CreateTruncating(yi[r]);
                        predicted += term;
                        magnitude += Math.Abs(term);
                    }

                    double actual = double.CreateTruncating(yj[r]), diff = Math.Abs(actual - predicted);
                    magnitude += Math.Abs(actual);
                    double tol = Math.Max(NewtonFactor * (_p.Atol + _p.Rtol * Math.Abs(actual)), 4 * (n + 2) * _p.Epsilon * magnitude);
                    residual = diff > residual || double.IsNaN(diff) ? diff : residual;
                    double q = tol > 0 ? diff / tol : (diff == 0 ? 0 : double.PositiveInfinity);
                    ratio = q > ratio || double.IsNaN(q) ? q : ratio;
                }

                Span<T> a = _a.AsSpan(interval * per, per), b = _b.AsSpan(interval * n, n);
                for (int j = 0; j < per; j++)
                {
                    a[j] = T.CreateTruncating(s.Phi[j]);
                }

                for (int j = 0; j < n; j++)
                {
                    b[j] = T.CreateTruncating(s.Psi[j]);
                }
            }

            ratios[s.Index] = Math.Max(ratios[s.Index], ratio);
            residuals[s.Index] = Math.Max(residuals[s.Index], residual);
            if (double.IsNaN(ratio))
            {
                ratios[s.Index] = double.NaN;
            }
        });
        double worst = 0, largest = 0;
        for (int c = 0; c < chunks; c++)
        {
            worst = double.IsNaN(ratios[c]) || double.IsNaN(worst) ? double.NaN : Math.Max(worst, ratios[c]);
            largest = Math.Max(largest, residuals[c]);
        }

        return (worst, largest);
    }

    /// <summary>Φ_i and ψ_i of interval i into the scratch's Phi and Psi (double), from F and the Jacobians along the grid.</summary>
    private void IntervalMap(DeerOdeGrid<T> grid, int i, int local, bool dense, Scratch s)
    {
        int n = _n, per = dense ? n * n : n;
        double dt = double.CreateTruncating(grid.Times[i + 1]) - double.CreateTruncating(grid.Times[i]);
        ReadOnlySpan<T> gi = _jacobians.AsSpan(local * per, per), gj = _jacobians.AsSpan((local + 1) * per, per);
        ReadOnlySpan<T> yi = grid.Y.AsSpan(i * n, n), yj = grid.Y.AsSpan((i + 1) * n, n);
        ReadOnlySpan<T> fi = grid.F.AsSpan(i * n, n), fj = grid.F.AsSpan((i + 1) * n, n);
        for (int r = 0; r < n; r++)
        {
            // z = f − G y at both ends, averaged: c = ½(z_i + z_{i+1}) Δt.
            double zi = double.CreateTruncating(fi[r]), zj = double.CreateTruncating(fj[r]);
            if (dense)
            {
                for (int c = 0; c < n; c++)
                {
                    double a = double.CreateTruncating(gi[r * n + c]), b = double.CreateTruncating(gj[r * n + c]);
                    zi -= a * double.CreateTruncating(yi[c]);
                    zj -= b * double.CreateTruncating(yj[c]);
                    s.M[r * n + c] = 0.5 * (a + b) * dt;
                }
            }
            else
            {
                double a = double.CreateTruncating(gi[r]), b = double.CreateTruncating(gj[r]);
                zi -= a * double.CreateTruncating(yi[r]);
                zj -= b * double.CreateTruncating(yj[r]);
                s.M[r] = 0.5 * (a + b) * dt;
            }

            s.C[r] = 0.5 * (zi + zj) * dt;
        }

        if (dense)
        {
            MatrixExponential.ExpAffine(s.M, s.C, s.Phi, s.Psi, n, s.Exp);
        }
        else
        {
            for (int r = 0; r < n; r++)
            {
                s.Phi[r] = Math.Exp(s.M[r]);
                s.Psi[r] = MatrixExponential.Phi1(s.M[r]) * s.C[r];
            }
        }
    }

    /// <summary>Runs <paramref name="body"/> over [0, count) in contiguous chunks, each with its own scratch; returns the chunk count.</summary>
    private int ForChunks(int count, Action<Scratch, int, int> body)
    {
        int chunks = Math.Clamp(count / 64, 1, _scratch.Length);
        if (chunks == 1 || _p.Cores == 1)
        {
            chunks = 1;
            body(_scratch[0] ??= new Scratch(this, 0), 0, count);
            return chunks;
        }

        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = _p.Cores }, c =>
        {
            Scratch s = _scratch[c] ??= new Scratch(this, c);
            body(s, (int)((long)count * c / chunks), (int)((long)count * (c + 1) / chunks));
        });
        return chunks;
    }

    /// <summary>One chunk's private buffers, allocated once per solve.</summary>
    private sealed class Scratch
    {
        public Scratch(DeerOde<TField, T> owner, int index)
        {
            int n = owner._n;
            Index = index;
            Field = new T[Math.Max(1, owner._field.WorkspaceSize)];
            X = new T[owner._m];
            Mid = new T[n];
            Fm = new T[n];
            M = new double[n * n];
            C = new double[n];
            Phi = new double[n * n];
            Psi = new double[n];
            Exp = new double[MatrixExponential.WorkspaceSize(n + 1) + 2 * (n + 1) * (n + 1)];
        }

        public int Index { get; }

        public T[] Field { get; }

        public T[] X { get; }

        public T[] Mid { get; }

        public T[] Fm { get; }

        public double[] M { get; }

        public double[] C { get; }

        public double[] Phi { get; }

        public double[] Psi { get; }

        public double[] Exp { get; }
    }
}
