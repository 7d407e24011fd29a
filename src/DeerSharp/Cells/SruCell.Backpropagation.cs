using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DeerSharp.Cells;

/// <summary>
/// SRU's backpropagation through time (<see cref="IBackpropagationLoop{T}"/>). h_{t-1} feeds nothing and c's recurrence
/// is diagonal, so the adjoint is one diagonal chain: v_h = g_h, ∂c' = g_c + carry_c + v_h ⊙ r (1 - tanh² c'),
/// carry_c = ∂c' ⊙ f. Every coefficient of it and of δ depends on the forward pass alone and is prepared in parallel; the
/// loop is a few multiplies a unit, and the matrix products come after it, from the stored δ.
/// </summary>
public readonly partial struct SruCell<T>
{
    /// <summary>Per step: r (1 - tanh² c'), f, (c_{t-1} - x̃) f (1 - f), (tanh c' - x) r (1 - r) and 1 - r.</summary>
    int IBackpropagationLoop<T>.BackpropagationCacheSize => 5 * _n;

    /// <inheritdoc/>
    int IBackpropagationLoop<T>.PrepareWorkspaceSize(int count) => 0;

    /// <inheritdoc/>
    int IBackpropagationLoop<T>.BackpropagationScratchSize => 0;

    /// <summary>δ of [x̃; a_f; a_r] (what multiplies W and the bias) and the highway's v_h ⊙ (1 - r).</summary>
    int IBackpropagationLoop<T>.DeltaSize => 4 * _n;

    /// <inheritdoc/>
    int IBackpropagationLoop<T>.GradientWorkspaceSize(int count) => 0;

    /// <summary>Each step's c' by <see cref="Evaluate"/>'s formula and lanes (so it is the forward's c', bit for bit), then the coefficients.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void IBackpropagationLoop<T>.PrepareBackpropagation(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> cache, Span<T> workspace, int count)
    {
        int n = _n, s = 2 * n, p = 4 * n, k = 5 * n, v = Vector<T>.Count;
        ref T rs = ref MemoryMarshal.GetReference(states[..(count * s)]);
        ref T rp = ref MemoryMarshal.GetReference(projections[..(count * p)]);
        ref T rk = ref MemoryMarshal.GetReference(cache[..(count * k)]);
        for (int t = 0; t < count; t++)
        {
            ref T cPrevious = ref Unsafe.Add(ref rs, (t * s) + n);
            ref T pt = ref Unsafe.Add(ref rp, t * p);
            ref T kt = ref Unsafe.Add(ref rk, t * k);
            int j = 0;
            for (; j + v <= n; j += v)
            {
                Vector<T> xt = Vector.LoadUnsafe(ref pt, (nuint)j), f = Vector.LoadUnsafe(ref pt, (nuint)(n + j)), r = Vector.LoadUnsafe(ref pt, (nuint)((2 * n) + j));
                Vector<T> previous = Vector.LoadUnsafe(ref cPrevious, (nuint)j);
                Vector<T> tc = Activations.Tanh((f * previous) + ((Vector<T>.One - f) * xt));
                (r * (Vector<T>.One - (tc * tc))).StoreUnsafe(ref kt, (nuint)j);
                f.StoreUnsafe(ref kt, (nuint)(n + j));
                ((previous - xt) * f * (Vector<T>.One - f)).StoreUnsafe(ref kt, (nuint)((2 * n) + j));
                ((tc - Vector.LoadUnsafe(ref pt, (nuint)((3 * n) + j))) * r * (Vector<T>.One - r)).StoreUnsafe(ref kt, (nuint)((3 * n) + j));
                (Vector<T>.One - r).StoreUnsafe(ref kt, (nuint)((4 * n) + j));
            }

            for (; j < n; j++)
            {
                T xt = Unsafe.Add(ref pt, j), f = Unsafe.Add(ref pt, n + j), r = Unsafe.Add(ref pt, (2 * n) + j), previous = Unsafe.Add(ref cPrevious, j);
                T tc = Activations.Tanh((f * previous) + ((T.One - f) * xt));
                Unsafe.Add(ref kt, j) = r * (T.One - (tc * tc));
                Unsafe.Add(ref kt, n + j) = f;
                Unsafe.Add(ref kt, (2 * n) + j) = (previous - xt) * f * (T.One - f);
                Unsafe.Add(ref kt, (3 * n) + j) = (tc - Unsafe.Add(ref pt, (3 * n) + j)) * r * (T.One - r);
                Unsafe.Add(ref kt, (4 * n) + j) = T.One - r;
            }
        }
    }

    /// <summary>Per step, from the end: v_h = g_h + carry_h, ∂c' = g_c + carry_c + v_h ⊙ a, δ = [∂c' (1 - f); ∂c' k_f; v_h k_r; v_h (1 - r)], carry = [0; ∂c' ⊙ f].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void IBackpropagationLoop<T>.Backpropagate(ReadOnlySpan<T> states, ReadOnlySpan<T> cache, ReadOnlySpan<T> g, Span<T> deltas, Span<T> carry,
        Span<T> scratch, int count)
    {
        int n = _n, s = 2 * n, k = 5 * n, e = 4 * n, v = Vector<T>.Count;
        ref T rk = ref MemoryMarshal.GetReference(cache[..(count * k)]);
        ref T rg = ref MemoryMarshal.GetReference(g[..(count * s)]);
        ref T rd = ref MemoryMarshal.GetReference(deltas[..(count * e)]);
        ref T carryH = ref MemoryMarshal.GetReference(carry[..s]);
        ref T carryC = ref Unsafe.Add(ref carryH, n);
        for (int t = count - 1; t >= 0; t--)
        {
            ref T kt = ref Unsafe.Add(ref rk, t * k);
            ref T gt = ref Unsafe.Add(ref rg, t * s);
            ref T delta = ref Unsafe.Add(ref rd, t * e);
            int j = 0;
            for (; j + v <= n; j += v)
            {
                Vector<T> vh = Vector.LoadUnsafe(ref gt, (nuint)j) + Vector.LoadUnsafe(ref carryH, (nuint)j);
                Vector<T> dc = Vector.LoadUnsafe(ref gt, (nuint)(n + j)) + Vector.LoadUnsafe(ref carryC, (nuint)j) + (vh * Vector.LoadUnsafe(ref kt, (nuint)j));
                Vector<T> f = Vector.LoadUnsafe(ref kt, (nuint)(n + j));
                (dc * (Vector<T>.One - f)).StoreUnsafe(ref delta, (nuint)j);
                (dc * Vector.LoadUnsafe(ref kt, (nuint)((2 * n) + j))).StoreUnsafe(ref delta, (nuint)(n + j));
                (vh * Vector.LoadUnsafe(ref kt, (nuint)((3 * n) + j))).StoreUnsafe(ref delta, (nuint)((2 * n) + j));
                (vh * Vector.LoadUnsafe(ref kt, (nuint)((4 * n) + j))).StoreUnsafe(ref delta, (nuint)((3 * n) + j));
                (dc * f).StoreUnsafe(ref carryC, (nuint)j);
                Vector<T>.Zero.StoreUnsafe(ref carryH, (nuint)j);
            }

            for (; j < n; j++)
            {
                T vh = Unsafe.Add(ref gt, j) + Unsafe.Add(ref carryH, j);
                T dc = Unsafe.Add(ref gt, n + j) + Unsafe.Add(ref carryC, j) + (vh * Unsafe.Add(ref kt, j));
                T f = Unsafe.Add(ref kt, n + j);
                Unsafe.Add(ref delta, j) = dc * (T.One - f);
                Unsafe.Add(ref delta, n + j) = dc * Unsafe.Add(ref kt, (2 * n) + j);
                Unsafe.Add(ref delta, (2 * n) + j) = vh * Unsafe.Add(ref kt, (3 * n) + j);
                Unsafe.Add(ref delta, (3 * n) + j) = vh * Unsafe.Add(ref kt, (4 * n) + j);
                Unsafe.Add(ref carryC, j) = dc * f;
                Unsafe.Add(ref carryH, j) = T.Zero;
            }
        }
    }

    /// <summary>∂x = δ W + the highway term, ∂W += δᵀ X and the bias sums of δ's f and r parts, all from the stored δ.</summary>
    void IBackpropagationLoop<T>.Gradients(ReadOnlySpan<T> states, ReadOnlySpan<T> inputs, ReadOnlySpan<T> deltas, Span<T> inputAdjoints, Span<T> gradient,
        Span<T> workspace, int count)
    {
        int n = _n, e = 4 * n;
        Kernels.Gemm<T>(deltas, _rows, inputAdjoints, count, 3 * n, n, e);
        for (int t = 0; t < count; t++)
        {
            Span<T> dx = inputAdjoints.Slice(t * n, n);
            TensorPrimitives.Add(dx, deltas.Slice((t * e) + (3 * n), n), dx);
        }

        Kernels.GemmTransposedAccumulate<T>(deltas, e, inputs, gradient[..(3 * n * n)], 3 * n, count, n);
        Kernels.AddRows(deltas[n..], e, count, gradient.Slice(3 * n * n, 2 * n));
    }
}
