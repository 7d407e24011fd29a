using System.Diagnostics;
using System.Numerics;
using System.Reflection;
using DeerSharp.Gpu;
using DeerSharp.Scan;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace DeerSharp.Cuda.Tests;

/// <summary>
/// The ILGPU backend's diagonal scan, the very C# kernel a GPU would run, executed by ILGPU's CPU accelerator against the
/// CPU library across many chunks and sequences; and every kernel of the backend compiled to PTX for sm_90, which
/// Debian's ptxas 11.8 then assembles where it has been fetched (`../shared/tools/ptxas-check.sh --fetch`).
/// </summary>
public sealed class IlgpuScanTests : IDisposable
{
    private readonly Context _context = Context.Create(b => b.CPU(new CPUDevice(4, 1, 2)).EnableAlgorithms());
    private readonly CPUAccelerator _accelerator;

    public IlgpuScanTests() => _accelerator = _context.CreateCPUAccelerator(0, CPUAcceleratorMode.Parallel);

    public void Dispose()
    {
        _accelerator.Dispose();
        _context.Dispose();
    }

    [Theory]
    [InlineData(2, 1000, 3, 7)]
    [InlineData(1, 5000, 1, 40)]
    [InlineData(3, 257, 5, 256)]
    [InlineData(2, 1, 4, 1)]
    [InlineData(1, 33, 2, 1000)]
    public void Diagonal_scan_on_the_cpu_accelerator_matches_the_library(int batch, int length, int n, int chunks)
    {
        int seed = Random.Shared.Next();
        Check<float>(new Random(seed), batch, length, n, chunks, 1e-5, seed);
        Check<double>(new Random(seed), batch, length, n, chunks, 1e-12, seed);
    }

    private void Check<T>(Random random, int batch, int length, int n, int chunks, double tolerance, int seed)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int values = batch * length * n;
        // |a| < 1 keeps h bounded over thousands of steps, so a relative comparison means something.
        T[] a = [.. Enumerable.Range(0, values).Select(_ => T.CreateTruncating((random.NextDouble() * 1.8) - 0.9))];
        T[] b = [.. Enumerable.Range(0, values).Select(_ => T.CreateTruncating((random.NextDouble() * 2) - 1))];
        T[] h0 = [.. Enumerable.Range(0, batch * n).Select(_ => T.CreateTruncating((random.NextDouble() * 2) - 1))];
        var expected = new T[values];
        LinearRecurrence.SolveBatch(a, b, h0, expected, batch, length, n, dense: false, maxDegreeOfParallelism: 1);

        var scan = new DiagonalScan<T>(_accelerator);
        using MemoryBuffer1D<T, Stride1D.Dense> da = _accelerator.Allocate1D(a), db = _accelerator.Allocate1D(b), dh0 = _accelerator.Allocate1D(h0),
            dh = _accelerator.Allocate1D<T>(values);
        scan.Solve(da.View, db.View, dh0.View, dh.View, batch, length, n, chunks);
        T[] actual = dh.GetAsArray1D();
        double worst = 0;
        for (int i = 0; i < values; i++)
        {
            double e = double.CreateTruncating(expected[i]), g = double.CreateTruncating(actual[i]);
            worst = Math.Max(worst, Math.Abs(e - g) / Math.Max(1, Math.Abs(e)));
        }

        Assert.True(worst <= tolerance, $"seed {seed}, {typeof(T).Name} B={batch} L={length} n={n} chunks={chunks}: max relative difference {worst:G3}");
    }

    [Fact]
    public void Scan_refuses_views_too_short_before_launching()
    {
        var scan = new DiagonalScan<float>(_accelerator);
        using MemoryBuffer1D<float, Stride1D.Dense> small = _accelerator.Allocate1D<float>(10), h0 = _accelerator.Allocate1D<float>(2);
        var e = Assert.Throws<ArgumentException>(() => scan.Solve(small.View, small.View, h0.View, small.View, 1, 10, 2, 2));
        Assert.Equal("a", e.ParamName);
    }

    [Fact]
    public void Every_kernel_compiles_to_ptx_for_sm90()
    {
        // A context of its own: a failed compile poisons the context it happens in (reference/ilgpu.md §3).
        // EnableAlgorithms maps exp and tanh to device math (without it the PTX backend has no intrinsic for them).
        using var context = Context.Create(b => b.CPU().EnableAlgorithms());
        var backend = new PTXBackend(context, new CudaCapabilityContext(CudaArchitecture.SM_90), CudaArchitecture.SM_90, CudaInstructionSet.ISA_78, null);
        string dir = Directory.CreateTempSubdirectory("deer-ptx-").FullName;
        string? ptxas = Ptxas();
        var failures = new List<string>();
        foreach (MethodInfo kernel in new[] { typeof(DiagonalScanKernels), typeof(DenseKernels), typeof(NewtonKernels), typeof(StructuredKernels), typeof(BlockScanKernels), typeof(DampedKernels), typeof(AdjointKernels) }.SelectMany(k => k.GetMethods(BindingFlags.Public | BindingFlags.Static)))
        {
            foreach (Type? element in kernel.IsGenericMethodDefinition ? new[] { typeof(float), typeof(double) } : new Type?[] { null })
            {
                MethodInfo method = element is null ? kernel : kernel.MakeGenericMethod(element);
                var compiled = (PTXCompiledKernel)backend.Compile(EntryPointDescription.FromImplicitlyGroupedKernel(method), default);
                string ptx = compiled.PTXAssembly;
                string name = element is null ? kernel.Name : $"{kernel.Name}<{element.Name}>";
                Assert.Contains(".target sm_", ptx, StringComparison.Ordinal);
                Assert.Contains(".entry", ptx, StringComparison.Ordinal);
                Assert.False(ptx.Contains(".extern", StringComparison.Ordinal), $"{name}: unresolved extern in its PTX");
                string file = Path.Combine(dir, $"{kernel.DeclaringType!.Name}_{kernel.Name}_{element?.Name ?? "t"}.ptx");
                File.WriteAllText(file, ptx);
                if (ptxas is not null)
                {
                    var run = Process.Start(new ProcessStartInfo(ptxas, ["-arch=sm_90", file, "-o", "/dev/null"]) { RedirectStandardError = true })!;
                    string errors = run.StandardError.ReadToEnd();
                    run.WaitForExit();
                    if (run.ExitCode != 0)
                    {
                        failures.Add($"{name}: ptxas: {errors}");
                    }
                }
            }
        }

        Directory.Delete(dir, recursive: true);
        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    /// <summary>Debian's ptxas 11.8, where ../shared/tools/ptxas-check.sh --fetch has put it (or DEER_PTXAS).</summary>
    internal static string? Ptxas()
    {
        string? configured = Environment.GetEnvironmentVariable("DEER_PTXAS");
        string cache = Environment.GetEnvironmentVariable("PTXAS_DIR")
            ?? Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "ptxas-11.8");
        return new[] { configured, Path.Combine(cache, "bin", "ptxas") }.FirstOrDefault(p => p is not null && File.Exists(p));
    }
}
