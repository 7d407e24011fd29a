namespace DeerSharp;

/// <summary>Where a solve runs.</summary>
public enum ComputeDevice
{
    /// <summary>The CPU backend (the default): every cell, every method.</summary>
    Cpu,

    /// <summary>
    /// The CUDA backend: tanh RNN, GRU, LSTM and GILR cells; Sequential (the GPU's own loop), Deer (states up to 32),
    /// QuasiDeer, Picard and Scan. Throws when no CUDA device is present or the cell or method has no GPU kernels.
    /// </summary>
    Cuda,

    /// <summary>CUDA when a device is present, the cell and method have kernels, and the problem is large enough to gain; else the CPU.</summary>
    Auto,
}
