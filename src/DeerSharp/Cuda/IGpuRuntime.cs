namespace DeerSharp.Cuda;

/// <summary>
/// What <see cref="GpuSolver"/> needs from a GPU: device memory, kernel launches and GEMM. <see cref="CudaRuntime"/> is
/// the real one (driver API, NVRTC, cuBLAS); the tests also run the same host code and the same kernels on a CPU
/// emulator through this interface. Pointers are device addresses; kernels are named as in Kernels/deer.cu.
/// </summary>
internal unsafe interface IGpuRuntime : IDisposable
{
    /// <summary>A line naming the device (for reports).</summary>
    string Description { get; }

    /// <summary>Device memory, in bytes, free for buffers.</summary>
    long FreeMemoryBytes { get; }

    ulong Allocate(long bytes);

    void Free(ulong pointer);

    void Upload(ulong destination, void* source, long bytes);

    void Download(void* destination, ulong source, long bytes);

    void Copy(ulong destination, ulong source, long bytes);

    void Zero(ulong pointer, long bytes);

    /// <summary>Launches <paramref name="kernel"/>, compiled for float or double, on gridX × gridY blocks of blockX threads.</summary>
    void Launch(string kernel, bool isDouble, uint gridX, uint gridY, uint blockX, uint sharedBytes, void** arguments);

    /// <summary>
    /// Row-major C[m, n] = A · Bᵀ + beta·C with A [m, k] (row stride lda) and B [n, k] (row stride ldb): the product every
    /// projection needs (inputs or states times a PyTorch weight).
    /// </summary>
    void GemmABt(bool isDouble, int m, int n, int k, ulong a, int lda, ulong b, int ldb, double beta, ulong c, int ldc);

    /// <summary>Waits for everything launched so far.</summary>
    void Synchronize();
}
