namespace DeerSharp.Cuda;

/// <summary>A CUDA driver, NVRTC or cuBLAS call failed; <see cref="ErrorName"/> is the library's name for the status.</summary>
public sealed class CudaException : Exception
{
    /// <summary>Creates an exception for a failed call.</summary>
    public CudaException(string call, string errorName, int code, string? detail = null)
        : base($"{call} failed with {errorName} ({code}){(string.IsNullOrEmpty(detail) ? "." : ": " + detail)}")
    {
        Call = call;
        ErrorName = errorName;
        Code = code;
    }

    /// <summary>Creates an exception with a message only.</summary>
    public CudaException(string message)
        : base(message)
    {
        Call = "";
        ErrorName = "";
    }

    /// <summary>Creates an exception with a message and its cause.</summary>
    public CudaException(string message, Exception innerException)
        : base(message, innerException)
    {
        Call = "";
        ErrorName = "";
    }

    /// <summary>Creates an exception with no message.</summary>
    public CudaException()
    {
        Call = "";
        ErrorName = "";
    }

    /// <summary>The API function that failed, e.g. cuMemAlloc_v2.</summary>
    public string Call { get; }

    /// <summary>The status's name, e.g. CUDA_ERROR_OUT_OF_MEMORY, NVRTC_ERROR_COMPILATION, CUBLAS_STATUS_INVALID_VALUE.</summary>
    public string ErrorName { get; }

    /// <summary>The numeric status.</summary>
    public int Code { get; }

    /// <summary>cuBLAS has no name function older than 11.4 everywhere; its statuses are few and stable.</summary>
    public static string CublasStatusName(int status) => status switch
    {
        0 => "CUBLAS_STATUS_SUCCESS",
        1 => "CUBLAS_STATUS_NOT_INITIALIZED",
        3 => "CUBLAS_STATUS_ALLOC_FAILED",
        7 => "CUBLAS_STATUS_INVALID_VALUE",
        8 => "CUBLAS_STATUS_ARCH_MISMATCH",
        11 => "CUBLAS_STATUS_MAPPING_ERROR",
        13 => "CUBLAS_STATUS_EXECUTION_FAILED",
        14 => "CUBLAS_STATUS_INTERNAL_ERROR",
        15 => "CUBLAS_STATUS_NOT_SUPPORTED",
        16 => "CUBLAS_STATUS_LICENSE_ERROR",
        _ => "CUBLAS_STATUS_UNKNOWN",
    };
}
