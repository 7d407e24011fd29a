using System.Runtime.CompilerServices;

namespace DeerSharp.Cells;

/// <summary>
/// One BPTT step's elementwise part for the GRU and the LSTM, shared by the dense cells' loops and the diagonal (block)
/// cells' loops: their caches and δ have one layout, and only the recurrent product after this part differs (W_hhᵀ δ or
/// the block product).
/// </summary>
internal static class GateDeltas
{
    /// <summary>
    /// GRU, from the cache [r; z; A_n h + b_hn; n] (4n) and h_{t-1}: v = g + carry, δ_ih = [∂a_r; ∂a_z; ∂a_n] into
    /// <paramref name="di"/>, δ_hh = [∂a_r; ∂a_z; ∂a_n ⊙ r] into <paramref name="dh"/>, and carry = v ⊙ z (the product
    /// is added after).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Gru<T>(ReadOnlySpan<T> h, ReadOnlySpan<T> c, ReadOnlySpan<T> gt, Span<T> carry, Span<T> di, Span<T> dh, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int v = Vector<T>.Count, i = 0;
        for (; i + v <= n; i += v)
        {
            var r = new Vector<T>(c[i..]);
            var z = new Vector<T>(c[(n + i)..]);
            var hn = new Vector<T>(c[(2 * n + i)..]);
            var gi = new Vector<T>(c[(3 * n + i)..]);
            Vector<T> vi = new Vector<T>(gt[i..]) + new Vector<T>(carry[i..]);
            Vector<T> dan = vi * (Vector<T>.One - z) * (Vector<T>.One - gi * gi);
            Vector<T> dar = dan * hn * r * (Vector<T>.One - r);
            Vector<T> daz = vi * (new Vector<T>(h[i..]) - gi) * z * (Vector<T>.One - z);
            dar.CopyTo(di[i..]);
            daz.CopyTo(di[(n + i)..]);
            dan.CopyTo(di[(2 * n + i)..]);
            dar.CopyTo(dh[i..]);
            daz.CopyTo(dh[(n + i)..]);
            (dan * r).CopyTo(dh[(2 * n + i)..]);
            (vi * z).CopyTo(carry[i..]);
        }

        for (; i < n; i++)
        {
            T r = c[i], z = c[n + i], hn = c[2 * n + i], gi = c[3 * n + i], vi = gt[i] + carry[i];
            T dan = vi * (T.One - z) * (T.One - gi * gi);
            di[i] = dh[i] = dan * hn * r * (T.One - r);
            di[n + i] = dh[n + i] = vi * (h[i] - gi) * z * (T.One - z);
            di[2 * n + i] = dan;
            dh[2 * n + i] = dan * r;
            carry[i] = vi * z;
        }
    }

    /// <summary>
    /// LSTM, from the cache [i; f; g; o; tanh c'] (5n) and [h; c]_{t-1}: [v_h; v_c] = g + carry, ∂c' = v_c + v_h ⊙ o ⊙
    /// (1 - tanh² c'), the four gates' δ into <paramref name="delta"/>, and carry_c = ∂c' ⊙ f. carry_h is read, and left
    /// for the product to overwrite.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Lstm<T>(ReadOnlySpan<T> state, ReadOnlySpan<T> c, ReadOnlySpan<T> gt, Span<T> carry, Span<T> delta, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int v = Vector<T>.Count, k = 0;
        for (; k + v <= n; k += v)
        {
            var ig = new Vector<T>(c[k..]);
            var fg = new Vector<T>(c[(n + k)..]);
            var gg = new Vector<T>(c[(2 * n + k)..]);
            var og = new Vector<T>(c[(3 * n + k)..]);
            var tc = new Vector<T>(c[(4 * n + k)..]);
            Vector<T> vh = new Vector<T>(gt[k..]) + new Vector<T>(carry[k..]);
            Vector<T> vc = new Vector<T>(gt[(n + k)..]) + new Vector<T>(carry[(n + k)..]);
            Vector<T> dc = vc + vh * og * (Vector<T>.One - tc * tc);
            (dc * gg * ig * (Vector<T>.One - ig)).CopyTo(delta[k..]);
            (dc * new Vector<T>(state[(n + k)..]) * fg * (Vector<T>.One - fg)).CopyTo(delta[(n + k)..]);
            (dc * ig * (Vector<T>.One - gg * gg)).CopyTo(delta[(2 * n + k)..]);
            (vh * tc * og * (Vector<T>.One - og)).CopyTo(delta[(3 * n + k)..]);
            (dc * fg).CopyTo(carry[(n + k)..]);
        }

        for (; k < n; k++)
        {
            T ig = c[k], fg = c[n + k], gg = c[2 * n + k], og = c[3 * n + k], tc = c[4 * n + k];
            T vh = gt[k] + carry[k], vc = gt[n + k] + carry[n + k];
            T dc = vc + vh * og * (T.One - tc * tc);
            delta[k] = dc * gg * ig * (T.One - ig);
            delta[n + k] = dc * state[n + k] * fg * (T.One - fg);
            delta[2 * n + k] = dc * ig * (T.One - gg * gg);
            delta[3 * n + k] = vh * tc * og * (T.One - og);
            carry[n + k] = dc * fg;
        }
    }
}
