namespace DeerSharp.Ode;

/// <summary>
/// The matrix exponential by scaling and squaring with diagonal Padé approximants of degree 3, 5, 7, 9 or 13, chosen by
/// the 1-norm (Higham, "The scaling and squaring method for the matrix exponential revisited", SIAM J. Matrix Anal. Appl.
/// 26(4), 2005, Algorithm 2.3), in double precision.
/// </summary>
/// <remarks>
/// <see cref="ExpAffine"/> steps the constant linear ODE y' = M y + c over unit time through the exponential of the
/// augmented matrix [[M, c], [0, 0]], whose top-right column is φ₁(M) c = M⁻¹(e^M − I) c. That needs no inverse of M, so
/// a singular or nearly singular M (a conserved quantity, a zero eigenvalue) is no special case.
/// </remarks>
internal static class MatrixExponential
{
    private static readonly double[] Theta = [1.495585217958292e-2, 2.539398330063230e-1, 9.504178996162932e-1, 2.097847961257068];
    private const double Theta13 = 5.371920351148152;

    private static readonly double[][] Pade =
    [
        [120, 60, 12, 1],
        [30240, 15120, 3360, 420, 30, 1],
        [17297280, 8648640, 1995840, 277200, 25200, 1512, 56, 1],
        [17643225600, 8821612800, 2075673600, 302702400, 30270240, 2162160, 110880, 3960, 90, 1],
        [64764752532480000, 32382376266240000, 7771770303897600, 1187353796428800, 129060195264000, 10559470521600, 670442572800,
            33522128640, 1323241920, 40840800, 960960, 16380, 182, 1],
    ];

    /// <summary>Scratch <see cref="Exp"/> needs for an m×m matrix.</summary>
    public static int WorkspaceSize(int m) => 8 * m * m;

    /// <summary>
    /// Φ = e^M and ψ = φ₁(M) c for an n×n M (row-major) and an n-vector c, through the (n+1)×(n+1) augmented exponential.
    /// </summary>
    public static void ExpAffine(ReadOnlySpan<double> m, ReadOnlySpan<double> c, Span<double> phi, Span<double> psi, int n, Span<double> workspace)
    {
        int a = n + 1;
        Span<double> aug = workspace[..(a * a)];
        aug.Clear();
        for (int i = 0; i < n; i++)
        {
            m.Slice(i * n, n).CopyTo(aug.Slice(i * a, n));
            aug[i * a + n] = c[i];
        }

        Span<double> result = workspace.Slice(a * a, a * a);
        Exp(aug, result, a, workspace[(2 * a * a)..]);
        for (int i = 0; i < n; i++)
        {
            result.Slice(i * a, n).CopyTo(phi.Slice(i * n, n));
            psi[i] = result[i * a + n];
        }
    }

    /// <summary>e^A for an m×m row-major A; <paramref name="workspace"/> holds <see cref="WorkspaceSize"/>(m) values.</summary>
    public static void Exp(ReadOnlySpan<double> a, Span<double> result, int m, Span<double> workspace)
    {
        int mm = m * m;
        double norm = Norm1(a, m);
        if (!double.IsFinite(norm))
        {
            result[..mm].Fill(double.NaN);
            return;
        }

        Span<double> x = workspace[..mm], a2 = workspace.Slice(mm, mm), a4 = workspace.Slice(2 * mm, mm), a6 = workspace.Slice(3 * mm, mm);
        Span<double> u = workspace.Slice(4 * mm, mm), v = workspace.Slice(5 * mm, mm), t = workspace.Slice(6 * mm, mm), t2 = workspace.Slice(7 * mm, mm);
        int degreeIndex = 4, squarings = 0;
        for (int k = 0; k < Theta.Length; k++)
        {
            if (norm <= Theta[k])
            {
                degreeIndex = k;
                break;
            }
        }

        a[..mm].CopyTo(x);
        if (degreeIndex == 4 && norm > Theta13)
        {
            squarings = (int)Math.Ceiling(Math.Log2(norm / Theta13));
            double scale = Math.ScaleB(1.0, -squarings);
            for (int i = 0; i < mm; i++)
            {
                x[i] *= scale;
            }
        }

        double[] b = Pade[degreeIndex];
        MatMul(x, x, a2, m);
        if (degreeIndex < 4)
        {
            // U = X Σ_{k odd} b_k X^{k−1},  V = Σ_{k even} b_k X^k, with even powers built up as needed.
            Span<double> power = a4;
            t.Clear();
            v.Clear();
            for (int i = 0; i < m; i++)
            {
                t[i * m + i] = b[1];
                v[i * m + i] = b[0];
            }

            a2.CopyTo(power);
            for (int k = 2; k < b.Length; k += 2)
            {
                if (k > 2)
                {
                    MatMul(power, a2, a6, m);
                    a6.CopyTo(power);
                }

                for (int i = 0; i < mm; i++)
                {
                    v[i] += b[k] * power[i];
                    if (k + 1 < b.Length)
                    {
                        t[i] += b[k + 1] * power[i];
                    }
                }
            }

            MatMul(x, t, u, m);
        }
        else
        {
            MatMul(a2, a2, a4, m);
            MatMul(a4, a2, a6, m);
            for (int i = 0; i < mm; i++)
            {
                t[i] = b[13] * a6[i] + b[11] * a4[i] + b[9] * a2[i];
                t2[i] = b[12] * a6[i] + b[10] * a4[i] + b[8] * a2[i];
            }

            MatMul(a6, t, u, m);
            MatMul(a6, t2, v, m);
            for (int i = 0; i < mm; i++)
            {
                u[i] += b[7] * a6[i] + b[5] * a4[i] + b[3] * a2[i];
                v[i] += b[6] * a6[i] + b[4] * a4[i] + b[2] * a2[i];
            }

            for (int i = 0; i < m; i++)
            {
                u[i * m + i] += b[1];
                v[i * m + i] += b[0];
            }

            u.CopyTo(t);
            MatMul(x, t, u, m);
        }

        // (V − U) R = V + U.
        for (int i = 0; i < mm; i++)
        {
            double p = v[i] + u[i], q = v[i] - u[i];
            result[i] = p;
            t[i] = q;
        }

        SolveInPlace(t, result, m);
        for (int s = 0; s < squarings; s++)
        {
            result[..mm].CopyTo(t);
            MatMul(t, t, result, m);
        }
    }

    /// <summary>φ₁(x) = (eˣ − 1)/x, with its limit 1 at 0, accurate to rounding for every x.</summary>
    public static double Phi1(double x)
    {
        if (Math.Abs(x) < 0.5)
        {
            // Σ x^k/(k+1)!, k = 0..17: the first omitted term is below 2⁻¹⁸/19!, far under double rounding.
            double sum = 1.0 / 6402373705728000.0; // 1/18!
            for (int k = 16; k >= 0; k--)
            {
                sum = sum * x + 1.0 / Factorial(k + 1);
            }

            return sum;
        }

        return (Math.Exp(x) - 1) / x;
    }

    private static double Factorial(int k)
    {
        double f = 1;
        for (int i = 2; i <= k; i++)
        {
            f *= i;
        }

        return f;
    }

    private static double Norm1(ReadOnlySpan<double> a, int m)
    {
        double best = 0;
        for (int j = 0; j < m; j++)
        {
            double sum = 0;
            for (int i = 0; i < m; i++)
            {
                sum += Math.Abs(a[i * m + j]);
            }

            best = Math.Max(best, sum);
        }

        return best;
    }

    private static void MatMul(ReadOnlySpan<double> a, ReadOnlySpan<double> b, Span<double> c, int m) => Linear.MatMul(a, b, c, m);

    /// <summary>Solves Q X = B in place (X overwrites B) by Gaussian elimination with partial pivoting; Q is destroyed.</summary>
    private static void SolveInPlace(Span<double> q, Span<double> b, int m)
    {
        for (int col = 0; col < m; col++)
        {
            int pivot = col;
            for (int r = col + 1; r < m; r++)
            {
                if (Math.Abs(q[r * m + col]) > Math.Abs(q[pivot * m + col]))
                {
                    pivot = r;
                }
            }

            if (pivot != col)
            {
                for (int k = 0; k < m; k++)
                {
                    (q[col * m + k], q[pivot * m + k]) = (q[pivot * m + k], q[col * m + k]);
                    (b[col * m + k], b[pivot * m + k]) = (b[pivot * m + k], b[col * m + k]);
                }
            }

            double d = q[col * m + col];
            for (int r = col + 1; r < m; r++)
            {
                double factor = q[r * m + col] / d;
                if (factor == 0)
                {
                    continue;
                }

                for (int k = col; k < m; k++)
                {
                    q[r * m + k] -= factor * q[col * m + k];
                }

                for (int k = 0; k < m; k++)
                {
                    b[r * m + k] -= factor * b[col * m + k];
                }
            }
        }

        for (int col = m - 1; col >= 0; col--)
        {
            double d = q[col * m + col];
            for (int k = 0; k < m; k++)
            {
                b[col * m + k] /= d;
            }

            for (int r = 0; r < col; r++)
            {
                double factor = q[r * m + col];
                if (factor == 0)
                {
                    continue;
                }

                for (int k = 0; k < m; k++)
                {
                    b[r * m + k] -= factor * b[col * m + k];
                }
            }
        }
    }
}
