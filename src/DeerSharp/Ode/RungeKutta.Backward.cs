namespace DeerSharp.Ode;

// The adjoint of the recorded steps: exactly what RK4 or Dopri5 computed, differentiated backwards through the tape.
internal sealed partial class RungeKutta<TField, T>
{
    /// <summary>
    /// Reverse-mode differentiation of the recorded steps (step sizes held fixed): the exact gradient of the computed
    /// outputs with respect to y0 and θ, given dL/d(output) for every requested time, [N + 1, n].
    /// </summary>
    public void Backward(Tape tape, bool dopri, ReadOnlySpan<T> cotangent, Span<T> initialGradient, Span<T> parameterGradient)
    {
        int n = _n;
        double[] c = dopri ? DpC : Rk4C;
        double[][] a = dopri ? DpA : Rk4A;
        double[] b = dopri ? DpB : Rk4B;
        int stages = c.Length, steps = tape.StepStart.Count;
        var yBar = new double[n];
        var kBar = new double[stages * n];
        var direct = new double[n];
        var v = new T[n];
        var stageBar = new T[n];
        var input = new T[n];
        int output = tape.Outputs.Count - 1;
        for (int step = steps - 1; step >= 0; step--)
        {
            _p.Options.CancellationToken.ThrowIfCancellationRequested();
            double t = tape.StepStart[step], h = tape.StepSize[step];
            Array.Clear(kBar);
            Array.Clear(direct);
            // Outputs inside this step. At θ = 1 the output is y_{n+1}: its cotangent joins yBar (the adjoint of y_{n+1}).
            // Elsewhere y_out = y_n + h Σ w_j(θ) k_j: the cotangent reaches y_n directly and every k_j through w_j.
            for (; output >= 0 && tape.Outputs[output].Step == step; output--)
            {
                var (index, _, theta) = tape.Outputs[output];
                for (int r = 0; r < n; r++)
                {
                    double g = double.CreateTruncating(cotangent[index * n + r]);
                    if (theta == 1.0)
                    {
                        yBar[r] += g;
                        continue;
                    }

                    direct[r] += g;
                    for (int j = 0; j < stages; j++)
                    {
                        kBar[j * n + r] += h * DenseWeight(j, theta) * g;
                    }
                }
            }

            // y_{n+1} = y_n + h Σ b_j k_j: yBar flows to y_n unchanged and to every k_j; from here on yBar is y_n's adjoint.
            for (int j = 0; j < stages; j++)
            {
                for (int r = 0; r < n; r++)
                {
                    kBar[j * n + r] += h * b[j] * yBar[r];
                }
            }

            for (int r = 0; r < n; r++)
            {
                yBar[r] += direct[r];
            }

            for (int s = stages - 1; s >= 0; s--)
            {
                bool any = false;
                for (int r = 0; r < n; r++)
                {
                    v[r] = T.CreateTruncating(kBar[s * n + r]);
                    any |= kBar[s * n + r] != 0;
                }

                if (!any)
                {
                    continue;
                }

                for (int r = 0; r < n; r++)
                {
                    input[r] = tape.StageInputs[(step * stages + s) * n + r];
                }

                T ts = T.CreateTruncating(t + c[s] * h);
                _p.InputAt(ts, _x);
                _field.Backward(input, ts, _x, v, stageBar, parameterGradient, _work);
                for (int r = 0; r < n; r++)
                {
                    double g = double.CreateTruncating(stageBar[r]);
                    yBar[r] += g;
                    for (int j = 0; j < s; j++)
                    {
                        kBar[j * n + r] += h * a[s][j] * g;
                    }
                }
            }
        }

        for (int r = 0; r < n; r++)
        {
            initialGradient[r] = T.CreateTruncating(yBar[r] + double.CreateTruncating(cotangent[r]));
        }
    }
}
