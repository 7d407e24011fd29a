using System.Diagnostics;
using System.Numerics;
using System.Reflection;
using DeerSharp.Cells;
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
/// The first ILGPU kernels (the three-phase diagonal scan, the GRU's recurrent product and its fused evaluation with the
/// exact Jacobian diagonal): the very C# kernels a GPU would run, executed by ILGPU's CPU
/// accelerator against the CPU library (the scan across many chunks and sequences; the GRU against GruCell); and compiled to PTX for sm_90, which
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
    public void Gru_kernels_on_the_cpu_accelerator_match_the_cell()
    {
        int seed = Random.Shared.Next();
        GruAgainstCell<float>(new Random(seed), 1e-5, seed);
        GruAgainstCell<double>(new Random(seed), 1e-12, seed);
    }

    private void GruAgainstCell<T>(Random random, double tolerance, int seed)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        const int D = 3, N = 5, Rows = 301;
        RecurrentWeights<T> w = RecurrentWeights<T>.Random(3, N, D, random, scale: 1.5);
        var cell = new GruCell<T>(w);
        T[] x = [.. Enumerable.Range(0, Rows * D).Select(_ => T.CreateTruncating((random.NextDouble() * 2) - 1))];
        T[] prev = [.. Enumerable.Range(0, Rows * N).Select(_ => T.CreateTruncating((random.NextDouble() * 2) - 1))];

        // The CPU cell: f and the diagonal of its Jacobian at every row.
        var projections = new T[Rows * cell.ProjectionSize];
        cell.ProjectInputs(x, projections, Rows);
        var f = new T[Rows * N];
        var diagonal = new T[Rows * N];
        cell.EvaluateBlock(prev, projections, f, diagonal, JacobianMode.Diagonal, new T[cell.BlockWorkspaceSize(Rows)], Rows);

        // The kernels, from the weights alone: xp = W_ih x + b_ih here, independently of the cell's projection layout.
        var xp = new T[Rows * 3 * N];
        for (int row = 0; row < Rows; row++)
        {
            for (int g = 0; g < 3 * N; g++)
            {
                T sum = w.BiasIH[g];
                for (int j = 0; j < D; j++)
                {
                    sum += w.WeightIH[(g * D) + j] * x[(row * D) + j];
                }

                xp[(row * 3 * N) + g] = sum;
            }
        }

        var kernels = new GruDevice<T>(_accelerator);
        (T[] gf, T[] gd, T[] gb) = kernels.Evaluate(xp, w.WeightHH, w.BiasHH, prev, N);
        double worst = 0;
        for (int k = 0; k < f.Length; k++)
        {
            worst = Math.Max(worst, Math.Abs(double.CreateTruncating(f[k] - gf[k])));
            worst = Math.Max(worst, Math.Abs(double.CreateTruncating(diagonal[k] - gd[k])));
            worst = Math.Max(worst, Math.Abs(double.CreateTruncating((f[k] - (diagonal[k] * prev[k])) - gb[k])));
        }

        Assert.True(worst <= tolerance, $"seed {seed}, {typeof(T).Name}: max |kernel − cell| = {worst:G3}");
    }

    /// <summary>The GRU kernels loaded on an accelerator, driven from host arrays (a test harness, not the solver).</summary>
    private sealed class GruDevice<T>(Accelerator accelerator)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int> _product =
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, int>(GruKernels.RecurrentProduct<T>);

        private readonly Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int> _evaluate =
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int>(
                GruKernels.EvaluateDiagonal<T>);

        public (T[] F, T[] Diagonal, T[] NewtonTerm) Evaluate(T[] xp, T[] whh, T[] bhh, T[] prev, int n)
        {
            int rows = prev.Length / n;
            using MemoryBuffer1D<T, Stride1D.Dense> dxp = accelerator.Allocate1D(xp), dw = accelerator.Allocate1D(whh), db = accelerator.Allocate1D(bhh),
                dprev = accelerator.Allocate1D(prev), hh = accelerator.Allocate1D<T>(rows * 3 * n), f = accelerator.Allocate1D<T>(rows * n),
                d = accelerator.Allocate1D<T>(rows * n), term = accelerator.Allocate1D<T>(rows * n);
            _product(rows * 3 * n, dw.View, dprev.View, hh.View, n);
            _evaluate(rows * n, dxp.View, hh.View, db.View, dw.View, dprev.View, f.View, d.View, term.View, n);
            accelerator.Synchronize();
            return (f.GetAsArray1D(), d.GetAsArray1D(), term.GetAsArray1D());
        }
    }

    [Fact]
    public void Quasi_deer_for_a_gru_runs_whole_on_the_accelerator_and_matches_the_loop()
    {
        int seed = Random.Shared.Next();
        QuasiNewtonAgainstLoop<float>(new Random(seed), 1e-4, 1e-5, seed);
        QuasiNewtonAgainstLoop<double>(new Random(seed), 1e-9, 1e-10, seed);
    }

    private void QuasiNewtonAgainstLoop<T>(Random random, double agreement, double tolerance, int seed)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        const int D = 3, N = 4, B = 2, L = 300;
        RecurrentWeights<T> w = RecurrentWeights<T>.Random(3, N, D, random);
        T[] x = [.. Enumerable.Range(0, B * L * D).Select(_ => T.CreateTruncating((random.NextDouble() * 2) - 1))];
        T[] h0 = [.. Enumerable.Range(0, B * N).Select(_ => T.CreateTruncating((random.NextDouble() * 2) - 1))];
        SolveResult<T> loop = Deer.Solve(new GruCell<T>(w), x, B, L, new SolveOptions { Method = SolveMethod.Sequential }, h0);

        using var solver = new GruQuasiNewton<T>(_accelerator);
        GruQuasiNewton<T>.Outcome r = solver.Solve(w, x, B, L, h0, tolerance, tolerance, maxIterations: 200);
        Assert.True(r.Status == SolveStatus.Converged, $"seed {seed}, {typeof(T).Name}: {r.Status} after {r.Iterations}, residual ratio {r.Ratio:G3}");
        Assert.True(r.Ratio <= 1 && r.Iterations is > 0 and < 200, $"seed {seed}: ratio {r.Ratio}, {r.Iterations} iterations");
        double diff = r.States.Zip(loop.States, (a, b) => Math.Abs(double.CreateTruncating(a - b))).Max();
        Assert.True(diff <= agreement, $"seed {seed}, {typeof(T).Name}: max |accelerator − loop| = {diff:G3} after {r.Iterations} iterations");

        // The check is honest: capped at one iteration it does not claim convergence.
        GruQuasiNewton<T>.Outcome capped = solver.Solve(w, x, B, L, h0, tolerance, tolerance, maxIterations: 1);
        Assert.Equal(SolveStatus.MaxIterationsReached, capped.Status);
        Assert.True(capped.Ratio > 1);
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
        foreach (MethodInfo kernel in new[] { typeof(DiagonalScanKernels), typeof(GruKernels), typeof(NewtonKernels), typeof(StructuredKernels), typeof(BlockScanKernels) }.SelectMany(k => k.GetMethods(BindingFlags.Public | BindingFlags.Static)))
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
    private static string? Ptxas()
    {
        string? configured = Environment.GetEnvironmentVariable("DEER_PTXAS");
        string cache = Environment.GetEnvironmentVariable("PTXAS_DIR")
            ?? Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "ptxas-11.8");
        return new[] { configured, Path.Combine(cache, "bin", "ptxas") }.FirstOrDefault(p => p is not null && File.Exists(p));
    }
}
