using System.Runtime.InteropServices;
using System.Runtime.Loader;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace DeerSharp.Gpu;

/// <summary>
/// The recurrent product hh = H W_hhᵀ through ILGPU.Algorithms' cuBLAS wrapper, where cuBLAS loads: the peer of
/// <see cref="DenseKernels.RecurrentProduct{T}"/> that `deer bench --device gpu` times beside it. The solver keeps its
/// own kernel until that measurement says where cuBLAS wins (docs/benchmarks-gpu.md).
/// </summary>
internal sealed class CuBlasProducts : IDisposable
{
    private readonly CuBlas _blas;

    private CuBlasProducts(CuBlas blas) => _blas = blas;

    /// <summary>cuBLAS on <paramref name="accelerator"/>, or null with the reason it does not load.</summary>
    public static CuBlasProducts? TryCreate(Accelerator accelerator, out string why)
    {
        if (accelerator is not CudaAccelerator cuda)
        {
            why = "cuBLAS needs a CUDA accelerator";
            return null;
        }

        InstallResolver();
        try
        {
            var blas = new CuBlas(cuda) { PointerMode = CuBlasPointerMode.Host };
            blas.Stream = (CudaStream)cuda.DefaultStream;
            why = "";
            return new CuBlasProducts(blas);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or CuBlasException or TypeInitializationException
            or InvalidOperationException or NotSupportedException or InvalidCastException)
        {
            why = $"cuBLAS did not load: {e.GetType().Name}: {e.Message}";
            return null;
        }
    }

    /// <summary>
    /// hh [rows, gates] = H [rows, n] W_hhᵀ, H read as the first n entries of states of stride <paramref name="s"/> and
    /// W_hh [gates, n] row-major. cuBLAS is column-major, so this is C [gates, rows] = op(W)ᵀ Hᵀ with W's buffer read
    /// as [n, gates] (transposed) and H's as [n, rows] at leading dimension s.
    /// </summary>
    public void RecurrentProduct(ArrayView<float> whh, ArrayView<float> prev, ArrayView<float> hh, int n, int s, int gates, int rows) =>
        _blas.Gemm(CuBlasOperation.Transpose, CuBlasOperation.NonTranspose, gates, rows, n, 1f, whh, n, prev, s, 0f, hh, gates);

    /// <inheritdoc cref="RecurrentProduct(ArrayView{float}, ArrayView{float}, ArrayView{float}, int, int, int, int)"/>
    public void RecurrentProduct(ArrayView<double> whh, ArrayView<double> prev, ArrayView<double> hh, int n, int s, int gates, int rows) =>
        _blas.Gemm(CuBlasOperation.Transpose, CuBlasOperation.NonTranspose, gates, rows, n, 1.0, whh, n, prev, s, 0.0, hh, gates);

    public void Dispose() => _blas.Dispose();

    /// <summary>
    /// ILGPU.Algorithms asks for libcublas.so.12 (then .11, .10), never .13, which is what a CUDA 13 machine has (ilgpu.md
    /// §5). Map the request, once, to what is there; it fires only after the default probing failed.
    /// </summary>
    private static void InstallResolver()
    {
        if (!OperatingSystem.IsLinux() || Interlocked.Exchange(ref _resolverInstalled, 1) == 1)
        {
            return;
        }

        AssemblyLoadContext.Default.ResolvingUnmanagedDll += (_, name) =>
        {
            if (!name.StartsWith("libcublas.so", StringComparison.Ordinal))
            {
                return 0;
            }

            foreach (string candidate in new[] { "libcublas.so.13", "libcublas.so.12", "/usr/local/cuda/lib64/libcublas.so.13", "/usr/local/cuda/lib64/libcublas.so.12" })
            {
                if (NativeLibrary.TryLoad(candidate, out nint handle))
                {
                    return handle;
                }
            }

            return 0;
        };
    }

    private static int _resolverInstalled;
}
