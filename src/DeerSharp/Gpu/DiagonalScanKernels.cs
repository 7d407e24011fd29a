using ILGPU;

namespace DeerSharp.Gpu;

/// <summary>
/// The diagonal linear recurrence h_t = a_t ⊙ h_{t−1} + b_t as ILGPU kernels, in three phases over many chunks per
/// sequence (Martin &amp; Cundy's blocked scan, reference §2), so that one long sequence fills the device. Arrays are
/// [B, L, n] row-major; chunk maps and carries are [B, chunks, n]. Every kernel is implicitly grouped, one thread per
/// (sequence, chunk, channel) or (sequence, channel), and written in plain arithmetic (no fused multiply-add, which
/// ILGPU's PTX backend leaves as an unresolved extern; see shared/reference/ilgpu.md §3).
/// </summary>
/// <remarks>
/// These are the first kernels of the ILGPU backend (issue #13): they run on ILGPU's CPU accelerator in the tests and
/// compile to PTX for sm_90. They are not yet wired into <see cref="SolveOptions.Device"/>.
/// </remarks>
internal static class DiagonalScanKernels
{
    /// <summary>Phase 1: each (sequence, chunk, channel) folds its chunk into one affine map h_out = P·h_in + R.</summary>
    public static void Reduce<T>(Index1D index, ArrayView<T> a, ArrayView<T> b, ArrayView<T> chunkP, ArrayView<T> chunkR,
        int length, int n, int chunk, int chunks)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = index % n, c = index / n % chunks, s = index / (n * chunks);
        T p = T.One, r = T.Zero;
        int t0 = c * chunk, t1 = Math.Min(length, t0 + chunk);
        for (int t = t0; t < t1; t++)
        {
            long k = ((((long)s * length) + t) * n) + i;
            r = (a[k] * r) + b[k];
            p = a[k] * p;
        }

        chunkP[index] = p;
        chunkR[index] = r;
    }

    /// <summary>Phase 2: each (sequence, channel) runs through its chunk maps in order from h0, writing each chunk's incoming state.</summary>
    public static void Carry<T>(Index1D index, ArrayView<T> chunkP, ArrayView<T> chunkR, ArrayView<T> h0, ArrayView<T> carry, int n, int chunks)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = index % n, s = index / n;
        T h = h0[index];
        for (int c = 0; c < chunks; c++)
        {
            long k = ((((long)s * chunks) + c) * n) + i;
            carry[k] = h;
            h = (chunkP[k] * h) + chunkR[k];
        }
    }

    /// <summary>Phase 3: each (sequence, chunk, channel) re-runs its chunk from its incoming state and writes h.</summary>
    public static void Apply<T>(Index1D index, ArrayView<T> a, ArrayView<T> b, ArrayView<T> carry, ArrayView<T> h,
        int length, int n, int chunk, int chunks)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = index % n, c = index / n % chunks, s = index / (n * chunks);
        T state = carry[index];
        int t0 = c * chunk, t1 = Math.Min(length, t0 + chunk);
        for (int t = t0; t < t1; t++)
        {
            long k = ((((long)s * length) + t) * n) + i;
            state = (a[k] * state) + b[k];
            h[k] = state;
        }
    }
}
