using System.Runtime.CompilerServices;

namespace DeerSharp.Cpu;

internal static partial class Solver
{
    /// <summary>
    /// Folds |h - f| of one block into the running maximum and the tolerance test |h - f| ≤ atol + rtol·|f|; returns
    /// false if any value is NaN or infinite. SIMD while every lane is finite; the scalar loop classifies a block that is not.
    /// With <paramref name="d"/> and <paramref name="previous"/> given (quasi-DEER's hot path), the same pass then turns f
    /// into the Newton term f - d ⊙ h_prev, after its residual is taken.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool ResidualWithin<T>(ReadOnlySpan<T> current, Span<T> f, T atol, T rtol, ref T max, ref bool within,
        ReadOnlySpan<T> d = default, ReadOnlySpan<T> previous = default)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        bool term = !d.IsEmpty;
        int v = Vector<T>.Count, i = 0;
        var vmax = new Vector<T>(max);
        var infinity = new Vector<T>(T.PositiveInfinity);
        var vatol = new Vector<T>(atol);
        var vrtol = new Vector<T>(rtol);
        bool vectorWithin = true;
        for (; i + v <= f.Length; i += v)
        {
            var fv = new Vector<T>(f[i..]);
            Vector<T> r = Vector.Abs(new Vector<T>(current[i..]) - fv);
            // r < ∞ is false for NaN and for ∞: either sends the rest to the scalar path, which classifies it.
            if (!Vector.LessThanAll(r, infinity))
            {
                break;
            }

            vmax = Vector.Max(vmax, r);
            vectorWithin &= Vector.LessThanOrEqualAll(r, Kernels.Fma(vrtol, Vector.Abs(fv), vatol));
            if (term)
            {
                (fv - (new Vector<T>(d[i..]) * new Vector<T>(previous[i..]))).CopyTo(f[i..]);
            }
        }

        for (int k = 0; k < v; k++)
        {
            max = T.Max(max, vmax[k]);
        }

        within &= vectorWithin;
        bool finite = ResidualScalar(current[i..], f[i..], atol, rtol, ref max, ref within);
        for (; term && i < f.Length; i++)
        {
            f[i] -= d[i] * previous[i];
        }

        return finite;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool ResidualScalar<T>(ReadOnlySpan<T> current, ReadOnlySpan<T> f, T atol, T rtol, ref T max, ref bool within)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        bool finite = true;
        for (int i = 0; i < f.Length; i++)
        {
            T r = T.Abs(current[i] - f[i]);
            if (!T.IsFinite(r))
            {
                finite = false;
            }
            else
            {
                max = T.Max(max, r);
                within &= r <= atol + rtol * T.Abs(f[i]);
            }
        }

        return finite;
    }
}
