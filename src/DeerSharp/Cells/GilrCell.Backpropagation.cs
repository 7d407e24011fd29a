using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DeerSharp.Cells;

/// <summary>
/// GILR's backpropagation through time (<see cref="IBackpropagationLoop{T}"/>): its Jacobian is diag(g_t), so the adjoint
/// is one diagonal chain, v_t = g_t^L + g_{t+1} ⊙ v_{t+1} (g^L the output's cotangent). Its coefficients depend on the
/// forward pass alone and are prepared in parallel; the loop is three multiplies a unit, and the products for the
/// weights and inputs come after it, from the stored pre-activation gradients.
/// </summary>
public readonly partial struct GilrCell<T>
{
    /// <summary>Per step: g, (h_{t-1} - i) g (1 - g) and (1 - g)(1 - i²).</summary>
    int IBackpropagationLoop<T>.BackpropagationCacheSize => 3 * _p.HiddenSize;

    /// <inheritdoc/>
    int IBackpropagationLoop<T>.PrepareWorkspaceSize(int count) => 0;

    /// <inheritdoc/>
    int IBackpropagationLoop<T>.BackpropagationScratchSize => 0;

    /// <summary>[∂(U x + b_g); ∂(V x + b_i)]: the surrogate's pre-activation gradients, as <see cref="GilrProjection{T}.Backward"/> takes them.</summary>
    int IBackpropagationLoop<T>.DeltaSize => 2 * _p.HiddenSize;

    /// <inheritdoc/>
    int IBackpropagationLoop<T>.GradientWorkspaceSize(int count) => 0;

    /// <summary>The chain's and δ's coefficients from each step's projection and previous state.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void IBackpropagationLoop<T>.PrepareBackpropagation(ReadOnlySpan<T> states, ReadOnlySpan<T> projections, Span<T> cache, Span<T> workspace, int count)
    {
        int n = _p.HiddenSize, v = Vector<T>.Count;
        ref T rs = ref MemoryMarshal.GetReference(states[..(count * n)]);
        ref T rp = ref MemoryMarshal.GetReference(projections[..(count * 2 * n)]);
        ref T rk = ref MemoryMarshal.GetReference(cache[..(count * 3 * n)]);
        for (int t = 0; t < count; t++)
        {
            ref T h = ref Unsafe.Add(ref rs, t * n);
            ref T pt = ref Unsafe.Add(ref rp, t * 2 * n);
            ref T kt = ref Unsafe.Add(ref rk, t * 3 * n);
            int j = 0;
            for (; j + v <= n; j += v)
            {
                Vector<T> g = Vector.LoadUnsafe(ref pt, (nuint)j), i = Vector.LoadUnsafe(ref pt, (nuint)(n + j));
                g.StoreUnsafe(ref kt, (nuint)j);
                ((Vector.LoadUnsafe(ref h, (nuint)j) - i) * g * (Vector<T>.One - g)).StoreUnsafe(ref kt, (nuint)(n + j));
                ((Vector<T>.One - g) * (Vector<T>.One - (i * i))).StoreUnsafe(ref kt, (nuint)((2 * n) + j));
            }

            for (; j < n; j++)
            {
                T g = Unsafe.Add(ref pt, j), i = Unsafe.Add(ref pt, n + j);
                Unsafe.Add(ref kt, j) = g;
                Unsafe.Add(ref kt, n + j) = (Unsafe.Add(ref h, j) - i) * g * (T.One - g);
                Unsafe.Add(ref kt, (2 * n) + j) = (T.One - g) * (T.One - (i * i));
            }
        }
    }

    /// <summary>Per step, from the end: v = g^L + carry, δ = [v k_g; v k_i], carry = g ⊙ v.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void IBackpropagationLoop<T>.Backpropagate(ReadOnlySpan<T> states, ReadOnlySpan<T> cache, ReadOnlySpan<T> g, Span<T> deltas, Span<T> carry,
        Span<T> scratch, int count)
    {
        int n = _p.HiddenSize, v = Vector<T>.Count;
        ref T rk = ref MemoryMarshal.GetReference(cache[..(count * 3 * n)]);
        ref T rg = ref MemoryMarshal.GetReference(g[..(count * n)]);
        ref T rd = ref MemoryMarshal.GetReference(deltas[..(count * 2 * n)]);
        ref T rc = ref MemoryMarshal.GetReference(carry[..n]);
        for (int t = count - 1; t >= 0; t--)
        {
            ref T kt = ref Unsafe.Add(ref rk, t * 3 * n);
            ref T gt = ref Unsafe.Add(ref rg, t * n);
            ref T delta = ref Unsafe.Add(ref rd, t * 2 * n);
            int j = 0;
            for (; j + v <= n; j += v)
            {
                Vector<T> a = Vector.LoadUnsafe(ref gt, (nuint)j) + Vector.LoadUnsafe(ref rc, (nuint)j);
                (a * Vector.LoadUnsafe(ref kt, (nuint)(n + j))).StoreUnsafe(ref delta, (nuint)j);
                (a * Vector.LoadUnsafe(ref kt, (nuint)((2 * n) + j))).StoreUnsafe(ref delta, (nuint)(n + j));
                (a * Vector.LoadUnsafe(ref kt, (nuint)j)).StoreUnsafe(ref rc, (nuint)j);
            }

            for (; j < n; j++)
            {
                T a = Unsafe.Add(ref gt, j) + Unsafe.Add(ref rc, j);
                Unsafe.Add(ref delta, j) = a * Unsafe.Add(ref kt, n + j);
                Unsafe.Add(ref delta, n + j) = a * Unsafe.Add(ref kt, (2 * n) + j);
                Unsafe.Add(ref rc, j) = a * Unsafe.Add(ref kt, j);
            }
        }
    }

    /// <summary>∂x and the gradient of [U, b_g, V, b_i] from the stored δ (<see cref="GilrProjection{T}.Backward"/>).</summary>
    void IBackpropagationLoop<T>.Gradients(ReadOnlySpan<T> states, ReadOnlySpan<T> inputs, ReadOnlySpan<T> deltas, Span<T> inputAdjoints, Span<T> gradient,
        Span<T> workspace, int count) =>
        _p.Backward(deltas[..(count * 2 * _p.HiddenSize)], inputs, inputAdjoints, gradient, count, accumulateInputs: false);
}
