using System.Diagnostics;
using System.Numerics;
using DeerSharp.AutoDiff;
using DeerSharp.Cells;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace DeerSharp.Cuda.Tests;

/// <summary>
/// Issue #13's question: does ILGPU compile a user's recurrence, with its forward-mode Jacobian (Deer's dual numbers),
/// into a kernel? The answer these tests record: not as <see cref="IRecurrence"/> is written (its Apply takes spans,
/// which ILGPU rejects in kernels), but yes when the same function is written over <see cref="ArrayView{T}"/>: a kernel
/// generic over the user's struct evaluates f on <c>Dual&lt;double&gt;</c>, gives the exact Jacobian on ILGPU's CPU
/// accelerator, and compiles to PTX for sm_90.
/// </summary>
public sealed class CustomCellOnDeviceTests : IDisposable
{
    private readonly Context _context = Context.Create(b => b.CPU(new CPUDevice(4, 1, 2)).EnableAlgorithms());

    public void Dispose() => _context.Dispose();

    /// <summary>A span-free recurrence: unit i of f(h, x). The shape a device-capable custom cell would need.</summary>
    public interface IDeviceRecurrence
    {
        int StateSize { get; }

        TNum Apply<TNum>(int i, ArrayView<TNum> h, TNum x)
            where TNum : unmanaged, IFloatingPointIeee754<TNum>;
    }

    /// <summary>The README's oscillators, written over ArrayView.</summary>
    public readonly struct Oscillators : IDeviceRecurrence, IRecurrence
    {
        public int StateSize => 2;

        public int InputSize => 1;

        public TNum Apply<TNum>(int i, ArrayView<TNum> h, TNum x)
            where TNum : unmanaged, IFloatingPointIeee754<TNum>
        {
            TNum decay = TNum.One - (TNum.One / (TNum.One + TNum.One + TNum.One + TNum.One + TNum.One)), coupling = TNum.One / (TNum.One + TNum.One + TNum.One);
            return i == 0
                ? (decay * TNum.Sin(h[0])) + (coupling * TNum.Tanh(h[1])) + x
                : (decay * TNum.Cos(h[1])) - (coupling * h[0] * h[0] / (TNum.One + (h[0] * h[0])));
        }

        public void Apply<TNum>(ReadOnlySpan<TNum> state, ReadOnlySpan<TNum> input, Span<TNum> next)
            where TNum : IFloatingPointIeee754<TNum>
        {
            TNum decay = TNum.One - (TNum.One / (TNum.One + TNum.One + TNum.One + TNum.One + TNum.One)), coupling = TNum.One / (TNum.One + TNum.One + TNum.One);
            next[0] = (decay * TNum.Sin(state[0])) + (coupling * TNum.Tanh(state[1])) + input[0];
            next[1] = (decay * TNum.Cos(state[1])) - (coupling * state[0] * state[0] / (TNum.One + (state[0] * state[0])));
        }
    }

    /// <summary>One thread per (row, output i, direction j): J[row, i, j] from f on duals seeded along e_j (dual is [rows, S directions, S]).</summary>
    internal static void Jacobian<TFunction>(Index1D index, ArrayView<Dual<double>> dual, ArrayView<double> x, ArrayView<double> jac, TFunction f, int s)
        where TFunction : struct, IDeviceRecurrence
    {
        int j = index % s, i = index / s % s;
        long row = index / (s * s);
        ArrayView<Dual<double>> seeded = dual.SubView(((row * s) + j) * s, s);
        jac[index] = f.Apply(i, seeded, Dual<double>.Constant(x[row])).Derivative;
    }

    [Fact]
    public void A_span_free_recurrence_differentiates_on_the_accelerator_and_compiles_for_sm90()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        const int Rows = 64, S = 2;
        double[] states = [.. Enumerable.Range(0, Rows * S).Select(_ => (random.NextDouble() * 2) - 1)];
        double[] x = [.. Enumerable.Range(0, Rows).Select(_ => (random.NextDouble() * 2) - 1)];
        var dual = new Dual<double>[Rows * S * S];
        for (int row = 0; row < Rows; row++)
        {
            for (int j = 0; j < S; j++)
            {
                for (int k = 0; k < S; k++)
                {
                    dual[(((row * S) + j) * S) + k] = new Dual<double>(states[(row * S) + k], k == j ? 1 : 0);
                }
            }
        }

        using CPUAccelerator accelerator = _context.CreateCPUAccelerator(0, CPUAcceleratorMode.Parallel);
        var kernel = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<Dual<double>>, ArrayView<double>, ArrayView<double>, Oscillators, int>(Jacobian);
        using MemoryBuffer1D<Dual<double>, Stride1D.Dense> d = accelerator.Allocate1D(dual);
        using MemoryBuffer1D<double, Stride1D.Dense> dx = accelerator.Allocate1D(x), jac = accelerator.Allocate1D<double>(Rows * S * S);
        kernel(Rows * S * S, d.View, dx.View, jac.View, default, S);
        accelerator.Synchronize();
        double[] onDevice = jac.GetAsArray1D();

        // The CPU's AutoDiffCell on the span-based form of the same function.
        var cell = new AutoDiffCell<Oscillators, double>(default);
        var expected = new double[Rows * S * S];
        cell.EvaluateBlock(states, x, new double[Rows * S], expected, JacobianMode.Full, new double[cell.BlockWorkspaceSize(Rows)], Rows);
        double diff = onDevice.Zip(expected, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(diff <= 1e-12, $"seed {seed}: device Jacobian differs from AutoDiffCell's by {diff:G3}");

        // The same kernel, specialised for the user's struct and Dual<double>, compiles to PTX for sm_90 (and assembles).
        using Context ptx = Context.Create(b => b.Cuda().EnableAlgorithms());
        var backend = new PTXBackend(ptx, new CudaCapabilityContext(CudaArchitecture.SM_90), CudaArchitecture.SM_90, CudaInstructionSet.ISA_78, null);
        var compiled = (PTXCompiledKernel)backend.Compile(EntryPointDescription.FromImplicitlyGroupedKernel(
            typeof(CustomCellOnDeviceTests).GetMethod(nameof(Jacobian), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!.MakeGenericMethod(typeof(Oscillators))), default);
        Assert.Contains(".entry", compiled.PTXAssembly, StringComparison.Ordinal);
        Assert.DoesNotContain(".extern", compiled.PTXAssembly, StringComparison.Ordinal);
        string? ptxas = IlgpuScanTests.Ptxas();
        if (ptxas is not null)
        {
            string file = Path.Combine(Path.GetTempPath(), $"deer-custom-{Guid.NewGuid():N}.ptx");
            File.WriteAllText(file, compiled.PTXAssembly);
            using var run = Process.Start(new ProcessStartInfo(ptxas, ["-arch=sm_90", file, "-o", "/dev/null"]) { RedirectStandardError = true })!;
            string errors = run.StandardError.ReadToEnd();
            run.WaitForExit();
            File.Delete(file);
            Assert.True(run.ExitCode == 0, $"ptxas: {errors}");
        }
    }
}
