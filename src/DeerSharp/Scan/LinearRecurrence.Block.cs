using System.Runtime.CompilerServices;

namespace DeerSharp.Scan;

/// <summary>The three forms of A_t the scans handle.</summary>
internal enum ScanKind
{
    Diagonal,
    Dense,
    Block,
}

/// <summary>The form of A_t for one scan: its kind and, for block-diagonal maps, the block structure.</summary>
internal readonly record struct ScanForm(ScanKind Kind, JacobianStructure Structure)
{
    public static ScanForm Diagonal => new(ScanKind.Diagonal, default);

    public static ScanForm Dense => new(ScanKind.Dense, default);

    /// <summary>Block-diagonal maps; a diagonal structure with one part is the diagonal form itself (same layout).</summary>
    public static ScanForm Blocks(JacobianStructure structure) =>
        structure.Side == 1 ? Diagonal : new(ScanKind.Block, structure);

    /// <summary>Coefficients of A_t per step for state dimension n.</summary>
    public int PerStep(int n) => Kind switch
    {
        ScanKind.Dense => n * n,
        ScanKind.Block => n * Structure.Side,
        _ => n,
    };

    /// <summary>Scratch one worker needs to compose maps.</summary>
    public int ComposeScratch(int n) => Kind switch
    {
        ScanKind.Dense => n * n + n,
        ScanKind.Block => Structure.Side * Structure.Side + 2 * Structure.Side,
        _ => 0,
    };
}

public static partial class LinearRecurrence
{
    /// <summary>
    /// Solves h_t = A_t h_{t-1} + b_t with A_t block-diagonal: <paramref name="a"/> holds, per step, the S/K blocks of
    /// <paramref name="structure"/> as K×K row-major matrices ([L, S/K, K, K], the layout of <see cref="JacobianMode.Block"/>).
    /// O(L·S·K) work: the blocked parallel scan on 4+ cores, the loop otherwise.
    /// </summary>
    /// <param name="a">The blocks, L·S·K values.</param>
    /// <param name="b">b_t, L·S values.</param>
    /// <param name="h0">The state before step 0, S values.</param>
    /// <param name="h">Destination, L·S values; may be the same array as <paramref name="b"/>.</param>
    /// <param name="length">L.</param>
    /// <param name="n">S, the state dimension.</param>
    /// <param name="structure">The block structure; it must fit S.</param>
    /// <param name="maxDegreeOfParallelism">Cores to use; 1 forces the loop.</param>
    /// <param name="workspace">Chunk buffers reused across calls; null allocates them.</param>
    public static void SolveBlockDiagonal<T>(T[] a, T[] b, T[] h0, T[] h, int length, int n, JacobianStructure structure, int maxDegreeOfParallelism,
        ScanWorkspace<T>? workspace = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        structure.Validate(n, nameof(structure));
        int k = structure.Side;
        CheckArrays(a, b, h0, h, length, n, maxDegreeOfParallelism, (long)n * k, $"[{length}, {n / k}, {k}, {k}]");
        ScanForm form = ScanForm.Blocks(structure);
        int chunks = ChooseChunks(length, n, dense: false, maxDegreeOfParallelism);
        if (chunks <= 1)
        {
            RunChunk(a, b, h0.AsSpan(0, n), h, 0, length, n, form);
            return;
        }

        SolveBlocked(a, b, h0, h, length, n, form, chunks, maxDegreeOfParallelism, workspace);
    }

    /// <summary>The block-diagonal loop, from <paramref name="carry"/>: h_t = A_t h_{t-1} + b_t block by block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RunBlocks<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, ReadOnlySpan<T> carry, Span<T> h, int steps, int n, JacobianStructure structure)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int side = structure.Side, blocks = n / side, perStep = n * side;
        if (side == 1)
        {
            RunDiagonal(a, b, carry, h, steps, n);
            return;
        }

        Span<int> index = n <= 1024 ? stackalloc int[n] : new int[n];
        Indices(structure, n, index);
        Span<T> x = stackalloc T[side];
        for (int t = 0; t < steps; t++)
        {
            ReadOnlySpan<T> previous = t == 0 ? carry : h.Slice((t - 1) * n, n);
            ReadOnlySpan<T> at = a.Slice(t * perStep, perStep), bt = b.Slice(t * n, n);
            Span<T> ht = h.Slice(t * n, n);
            for (int blk = 0; blk < blocks; blk++)
            {
                ReadOnlySpan<int> rows = index.Slice(blk * side, side);
                for (int c = 0; c < side; c++)
                {
                    x[c] = previous[rows[c]];
                }

                ReadOnlySpan<T> ab = at.Slice(blk * side * side, side * side);
                for (int r = 0; r < side; r++)
                {
                    T sum = bt[rows[r]];
                    ReadOnlySpan<T> row = ab.Slice(r * side, side);
                    for (int c = 0; c < side; c++)
                    {
                        sum = T.FusedMultiplyAdd(row[c], x[c], sum);
                    }

                    ht[rows[r]] = sum;
                }
            }
        }

    }

    /// <summary>
    /// Folds <paramref name="steps"/> block-diagonal steps into one map (pa, pb), starting from the identity:
    /// per block, (P, q) ← (A_t P, A_t q + b_t). <paramref name="scratch"/> holds K² + 2K values.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void FoldBlocks<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> pa, Span<T> pb, int steps, int n, JacobianStructure structure, Span<T> scratch)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int side = structure.Side, blocks = n / side, perStep = n * side, kk = side * side;
        Span<int> index = n <= 1024 ? stackalloc int[n] : new int[n];
        Indices(structure, n, index);
        Span<T> product = scratch[..kk], q = scratch.Slice(kk, side), y = scratch.Slice(kk + side, side);
        pa[..perStep].Clear();
        pb[..n].Clear();
        for (int blk = 0; blk < blocks; blk++)
        {
            for (int r = 0; r < side; r++)
            {
                pa[blk * kk + r * side + r] = T.One;
            }
        }

        for (int t = 0; t < steps; t++)
        {
            ReadOnlySpan<T> at = a.Slice(t * perStep, perStep), bt = b.Slice(t * n, n);
            for (int blk = 0; blk < blocks; blk++)
            {
                ReadOnlySpan<int> rows = index.Slice(blk * side, side);
                ReadOnlySpan<T> ab = at.Slice(blk * kk, kk);
                Span<T> p = pa.Slice(blk * kk, kk);
                for (int c = 0; c < side; c++)
                {
                    q[c] = pb[rows[c]];
                }

                for (int r = 0; r < side; r++)
                {
                    T sum = bt[rows[r]];
                    for (int c = 0; c < side; c++)
                    {
                        T arc = ab[r * side + c];
                        sum = T.FusedMultiplyAdd(arc, q[c], sum);
                        for (int j = 0; j < side; j++)
                        {
                            product[r * side + j] = c == 0 ? arc * p[j] : T.FusedMultiplyAdd(arc, p[c * side + j], product[r * side + j]);
                        }
                    }

                    y[r] = sum;
                }

                product.CopyTo(p);
                for (int r = 0; r < side; r++)
                {
                    pb[rows[r]] = y[r];
                }
            }
        }
    }

    /// <summary>index[b·K + r] = the state index of row r of block b.</summary>
    private static void Indices(JacobianStructure structure, int n, Span<int> index)
    {
        int side = structure.Side, units = n / structure.Parts;
        for (int blk = 0; blk < n / side; blk++)
        {
            for (int r = 0; r < side; r++)
            {
                index[blk * side + r] = structure.Index(blk, r, units);
            }
        }
    }
}
