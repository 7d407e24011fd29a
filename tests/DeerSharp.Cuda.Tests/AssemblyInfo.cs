// The kernel emulator keeps the launch geometry (gridDim, blockIdx) in process-wide globals, as CUDA's built-ins are, so
// two test classes launching emulated kernels at once corrupt each other's launches (wrong results, stalled barriers).
// The GPU tests therefore run one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
