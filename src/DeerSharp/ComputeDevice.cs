namespace DeerSharp;

/// <summary>Where a solve runs.</summary>
public enum ComputeDevice
{
    /// <summary>The CPU backend (the default): every cell, every method.</summary>
    Cpu,

    /// <summary>
    /// The ILGPU backend on a GPU when one is present, the cell and method have kernels, and the problem is large enough
    /// to gain; else the CPU.
    /// </summary>
    Auto,

    /// <summary>
    /// The ILGPU backend on the first CUDA GPU: tanh RNN, GRU, LSTM (Sequential, Deer for states up to 32, QuasiDeer,
    /// QuasiElk, Picard), GILR, GILR-LSTM and SRU (Scan, Sequential) and the structured cells (Deer). Throws when there is no GPU, or the cell or method
    /// has no kernels.
    /// </summary>
    Gpu,

    /// <summary>
    /// The GPU kernels on ILGPU's CPU accelerator: the very code a GPU runs, slowly, for tests, debugging and checking the
    /// GPU path without a GPU. The same cells and methods as <see cref="Gpu"/>.
    /// </summary>
    Emulated,
}
