using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Numerics.Tensors;

namespace DeerSharp.Cells;

/// <summary>
/// A structured cell's snapshot of its weights: W_ih transposed with the folded bias for the input projection (one
/// matrix product, as for the dense cells), and the block W_hh [G·n, k] for the O(G·n·k) recurrent product.
/// </summary>
internal sealed class BlockCellWeights<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly InputProjection<T> _input;

    public BlockCellWeights(StructuredWeights<T> w, int foldedGates)
    {
        HiddenSize = w.HiddenSize;
        InputSize = w.InputSize;
        BlockSize = w.BlockSize;
        Gates = w.Gates;
        Rows = w.Gates * w.HiddenSize;
        Hidden = (T[])w.WeightHH.Clone();
        _input = new InputProjection<T>(w.WeightIH, w.BiasIH, w.BiasHH, Rows, w.InputSize, foldedGates * w.HiddenSize);
    }

    public int HiddenSize { get; }

    public int InputSize { get; }

    public int BlockSize { get; }

    public int Gates { get; }

    /// <summary>G·n.</summary>
    public int Rows { get; }

    /// <summary>W_hh, [G·n, k].</summary>
    public T[] Hidden { get; }

    /// <summary>W_ih, [G·n, d].</summary>
    public T[] InputRows => _input.InputRows;

    /// <summary>W_ihᵀ, [d, G·n].</summary>
    public T[] InputTransposed => _input.InputTransposed;

    /// <summary>b_hh.</summary>
    public T[] HiddenBias => _input.HiddenBias;

    /// <summary>b_ih plus the parts of b_hh that PyTorch adds outside any gate product.</summary>
    public T[] ProjectionBias => _input.ProjectionBias;

    /// <summary>[weight_ih, weight_hh, bias_ih, bias_hh].</summary>
    public int ParameterCount => Rows * (InputSize + BlockSize + 2);

    /// <summary>projections = x W_ihᵀ + bias for every step: one matrix product.</summary>
    public void Project(ReadOnlySpan<T> inputs, Span<T> projections, int count) => _input.Project(inputs, projections, count);

    /// <summary>hh[g·n + i] = Σ_c W_hh[g·n + i, c] · h[⌊i/k⌋·k + c] for one state h (the first n entries of <paramref name="h"/>).</summary>
    public void Product(ReadOnlySpan<T> h, Span<T> hh)
    {
        int n = HiddenSize, k = BlockSize;
        ReadOnlySpan<T> w = Hidden;
        if (k == 1)
        {
            for (int g = 0; g < Gates; g++)
            {
                TensorPrimitives.Multiply(w.Slice(g * n, n), h[..n], hh.Slice(g * n, n));
            }

            return;
        }

        for (int g = 0; g < Gates; g++)
        {
            for (int i = 0; i < n; i++)
            {
                ReadOnlySpan<T> row = w.Slice((g * n + i) * k, k), block = h.Slice(i / k * k, k);
                T sum = T.Zero;
                for (int c = 0; c < k; c++)
                {
                    sum = T.FusedMultiplyAdd(row[c], block[c], sum);
                }

                hh[g * n + i] = sum;
            }
        }
    }

    /// <summary>
    /// previous[0..n) += W_hhᵀ δ restricted to the blocks: previous[⌊i/k⌋·k + c] += Σ_g δ[g·n + i] W_hh[g·n + i, c]. For
    /// blocks of one unit, a vector of units at a time, with the same FMA per entry in the same order (g = 0, 1, ...).
    /// </summary>
    public void AddTransposedProduct(ReadOnlySpan<T> delta, Span<T> previous)
    {
        int n = HiddenSize, k = BlockSize;
        if (k == 1)
        {
            AddDiagonalProducts(delta, Hidden, perGate: true, previous, intoGates: false);
            return;
        }

        ReadOnlySpan<T> w = Hidden;
        for (int g = 0; g < Gates; g++)
        {
            for (int i = 0; i < n; i++)
            {
                T di = delta[g * n + i];
                ReadOnlySpan<T> row = w.Slice((g * n + i) * k, k);
                Span<T> block = previous.Slice(i / k * k, k);
                for (int c = 0; c < k; c++)
                {
                    block[c] = T.FusedMultiplyAdd(di, row[c], block[c]);
                }
            }
        }
    }

    /// <summary>
    /// The linear part of a backward step for <paramref name="count"/> steps, given the gradients of the pre-activations:
    /// δ_ih (multiplying W_ih x and bias_ih) and δ_hh (multiplying W_hh h and bias_hh), both [count, G·n] with row stride
    /// <paramref name="deltaStride"/> (0: G·n). Adds the block W_hhᵀ δ_hh to the first n entries of each row of
    /// <paramref name="previous"/> (row stride <paramref name="stateStride"/>; skipped when it is empty, as the BPTT loops
    /// have added it already), writes δ_ih W_ih to <paramref name="inputAdjoints"/>, and adds the parameter gradient to
    /// <paramref name="gradient"/>.
    /// </summary>
    public void Backward(ReadOnlySpan<T> dIh, ReadOnlySpan<T> dHh, ReadOnlySpan<T> inputs, ReadOnlySpan<T> states, int stateStride,
        Span<T> previous, Span<T> inputAdjoints, Span<T> gradient, int count, int deltaStride = 0)
    {
        int n = HiddenSize, d = InputSize, k = BlockSize, rows = Rows, ds = deltaStride == 0 ? rows : deltaStride;
        Span<T> gIh = gradient[..(rows * d)], gHh = gradient.Slice(rows * d, rows * k);
        Span<T> gBih = gradient.Slice(rows * (d + k), rows), gBhh = gradient.Slice(rows * (d + k + 1), rows);
        for (int s = 0; s < count; s++)
        {
            ReadOnlySpan<T> dh = dHh.Slice(s * ds, rows), h = states.Slice(s * stateStride, n);
            if (!previous.IsEmpty)
            {
                AddTransposedProduct(dh, previous.Slice(s * stateStride, n));
            }

            if (k == 1)
            {
                AddDiagonalProducts(dh, h, perGate: false, gHh, intoGates: true);
                continue;
            }

            for (int r = 0; r < rows; r++)
            {
                ReadOnlySpan<T> block = h.Slice(r % n / k * k, k);
                Span<T> g = gHh.Slice(r * k, k);
                for (int c = 0; c < k; c++)
                {
                    g[c] = T.FusedMultiplyAdd(dh[r], block[c], g[c]);
                }
            }
        }

        Kernels.AddRows(dIh, ds, count, gBih);
        Kernels.AddRows(dHh, ds, count, gBhh);
        Kernels.Gemm<T>(dIh, InputRows, inputAdjoints, count, rows, d, ds);
        Kernels.GemmTransposedAccumulate<T>(dIh, ds, inputs, gIh, rows, count, d);
    }

    /// <summary>
    /// For blocks of one unit, a vector of units at a time: for each gate g, target_g += δ_g ⊙ w_g. W_hhᵀ δ: w_g is W_hh's
    /// g-th block (<paramref name="perGate"/>) and every gate adds into the same n values of previous. ∂W_hh: w_g is h for
    /// every gate and each adds into its own block (<paramref name="intoGates"/>). One FMA per entry, gates in order, as
    /// the general loops.
    /// </summary>
    private void AddDiagonalProducts(ReadOnlySpan<T> dh, ReadOnlySpan<T> w, bool perGate, Span<T> target, bool intoGates)
    {
        int n = HiddenSize, v = Vector<T>.Count;
        ref T rd = ref MemoryMarshal.GetReference(dh[..Rows]);
        ref T rs = ref MemoryMarshal.GetReference(w[..(perGate ? Rows : n)]);
        ref T rt = ref MemoryMarshal.GetReference(target[..(intoGates ? Rows : n)]);
        for (int g = 0; g < Gates; g++)
        {
            ref T dg = ref Unsafe.Add(ref rd, g * n);
            ref T sg = ref Unsafe.Add(ref rs, perGate ? g * n : 0);
            ref T tg = ref Unsafe.Add(ref rt, intoGates ? g * n : 0);
            int i = 0;
            for (; i + v <= n; i += v)
            {
                Kernels.Fma(Vector.LoadUnsafe(ref dg, (nuint)i), Vector.LoadUnsafe(ref sg, (nuint)i), Vector.LoadUnsafe(ref tg, (nuint)i)).StoreUnsafe(ref tg, (nuint)i);
            }

            for (; i < n; i++)
            {
                Unsafe.Add(ref tg, i) = T.FusedMultiplyAdd(Unsafe.Add(ref dg, i), Unsafe.Add(ref sg, i), Unsafe.Add(ref tg, i));
            }
        }
    }
}
