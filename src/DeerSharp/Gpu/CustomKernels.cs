using System.Reflection;
using DeerSharp.AutoDiff;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace DeerSharp.Gpu;

/// <summary>Turns a user's <see cref="IDeviceRecurrence"/>, handed over by its struct type, into the launches of its kernels.</summary>
internal sealed class CustomFunctions<T> : IDeviceFunctionVisitor<ICustomFunction<T>>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    public static CustomFunctions<T> Factory { get; } = new();

    public ICustomFunction<T> Visit<TFunction>(TFunction function)
        where TFunction : struct, IDeviceRecurrence => new CustomFunction<T, TFunction>(function);
}

/// <summary>
/// A user's <see cref="IDeviceRecurrence"/> as the device solver takes it: the kernels specialised for its struct type
/// (loaded once per accelerator, keyed by <see cref="Key"/>), and the launches with this instance's value.
/// </summary>
internal interface ICustomFunction<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The user's struct type: one set of kernels per type and accelerator.</summary>
    Type Key { get; }

    /// <summary>Compiles the kernels for this type on <paramref name="accelerator"/>.</summary>
    object Load(Accelerator accelerator);

    /// <summary>f, per <paramref name="mode"/> its Jacobian's diagonal (1) or full Jacobian (2), and the Newton term, one thread per (row, unit).</summary>
    void Evaluate(object kernels, int count, ArrayView<T> x, ArrayView<T> previous, ArrayView<T> parameters, ArrayView<T> f, ArrayView<T> jac,
        ArrayView<T> term, int s, int d, int mode);

    /// <summary>The sequential loop, one thread per sequence.</summary>
    void Loop(object kernels, int batch, ArrayView<T> x, ArrayView<T> h0, ArrayView<T> parameters, ArrayView<T> states, int length, int s, int d);

    /// <summary>∂L/∂x_t = (∂f/∂x_t)ᵀ v_t, one thread per (row, input j): S dual evaluations each.</summary>
    void InputAdjoint(object kernels, int count, ArrayView<T> x, ArrayView<T> previous, ArrayView<T> parameters, ArrayView<T> v, ArrayView<T> dx, int s, int d);

    /// <summary>Σ over a chunk of rows of (∂f/∂θ_p)ᵀ v_t, one thread per (chunk, parameter p); the chunks are summed after.</summary>
    void ParameterAdjoint(object kernels, int count, ArrayView<T> x, ArrayView<T> previous, ArrayView<T> parameters, ArrayView<T> v, ArrayView<T> partial,
        int s, int d, int parameterCount, int rows, int chunkRows);
}

/// <summary>The kernels of one <see cref="IDeviceRecurrence"/> struct type, and the launches with one value of it.</summary>
internal sealed class CustomFunction<T, TFunction>(TFunction function) : ICustomFunction<T>
    where T : unmanaged, IFloatingPointIeee754<T>
    where TFunction : struct, IDeviceRecurrence
{
    private sealed record Kernels(
        Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, TFunction, int, int, int> Evaluate,
        Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, TFunction, int, int, int> Loop,
        Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, TFunction, int, int> InputAdjoint,
        Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, TFunction, int, int, int, int, int> ParameterAdjoint);

    public Type Key => typeof(TFunction);

    /// <summary>
    /// Compiles the kernels once in a throwaway context first (PTX for sm_90, which needs no GPU): a failed compile
    /// poisons the context it happens in (ilgpu.md §3), and the accelerator's context is shared by every solve. Code that
    /// fails there, or that leaves a call the GPU cannot resolve, is refused with the reason before the real load.
    /// </summary>
    public object Load(Accelerator accelerator)
    {
        if (System.Runtime.CompilerServices.RuntimeHelpers.IsReferenceOrContainsReferences<TFunction>())
        {
            throw new NotSupportedException(
                $"{typeof(TFunction).Name} holds a reference (an array, string or class field), so it cannot be copied to the device as a kernel argument. Keep plain values in the struct and pass weights in the parameters θ (DeviceRecurrence.Cell(function, parameters)), or use Device = Cpu.");
        }

        if (!VisibleToIlgpu(typeof(TFunction)))
        {
            throw new NotSupportedException(
                $"{typeof(TFunction).FullName} is not visible to ILGPU's generated launcher code: make the struct public (and any type it is nested in), or declare [assembly: InternalsVisibleTo(\"ILGPURuntime\")] for an internal one. Or use Device = Cpu.");
        }

        var evaluate = (Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, TFunction, int, int, int>)CustomKernels.Evaluate<T, TFunction>;
        var loop = (Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, TFunction, int, int, int>)CustomKernels.Loop<T, TFunction>;
        var inputAdjoint = (Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, TFunction, int, int>)CustomKernels.InputAdjoint<T, TFunction>;
        var parameterAdjoint = (Action<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, TFunction, int, int, int, int, int>)CustomKernels.ParameterAdjoint<T, TFunction>;
        foreach (MethodInfo kernel in new[] { evaluate.Method, loop.Method, inputAdjoint.Method, parameterAdjoint.Method })
        {
            Check(kernel, requireResolved: accelerator.AcceleratorType == AcceleratorType.Cuda);
        }

        return new Kernels(
            accelerator.LoadAutoGroupedStreamKernel(evaluate),
            accelerator.LoadAutoGroupedStreamKernel(loop),
            accelerator.LoadAutoGroupedStreamKernel(inputAdjoint),
            accelerator.LoadAutoGroupedStreamKernel(parameterAdjoint));
    }

    /// <summary>Whether ILGPU's launcher, emitted into its own dynamic assembly, may name the type: public throughout, or internal with InternalsVisibleTo("ILGPURuntime").</summary>
    private static bool VisibleToIlgpu(Type type)
    {
        if (type.IsVisible)
        {
            return true;
        }

        bool granted = type.Assembly.GetCustomAttributes<System.Runtime.CompilerServices.InternalsVisibleToAttribute>()
            .Any(a => a.AssemblyName.Split(',')[0].Trim() == "ILGPURuntime");
        for (Type? t = type; t is not null; t = t.DeclaringType)
        {
            if (t.IsNestedPrivate || t.IsNestedFamily || t.IsNestedFamANDAssem || ((t.IsNotPublic || t.IsNestedAssembly || t.IsNestedFamORAssem) && !granted))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The PTX of <paramref name="kernel"/> for sm_90, compiled in a context of its own; throws a clear error when it does not compile.</summary>
    internal static string Ptx(MethodInfo kernel)
    {
        using var context = Context.Create(b => b.CPU().EnableAlgorithms());
        var backend = new PTXBackend(context, new CudaCapabilityContext(CudaArchitecture.SM_90), CudaArchitecture.SM_90, CudaInstructionSet.ISA_78, null);
        try
        {
            return ((PTXCompiledKernel)backend.Compile(EntryPointDescription.FromImplicitlyGroupedKernel(kernel), default)).PTXAssembly;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new NotSupportedException(
                $"ILGPU could not compile {typeof(TFunction).Name}.Apply into a kernel for {typeof(T).Name}: {e.Message} A device recurrence is a struct of plain values (no arrays or other references) whose Apply uses arithmetic, loops and TNum's functions only: no spans, arrays, stackalloc, exceptions, or TNum.CreateTruncating (pass constants in the parameters). See IDeviceRecurrence. Use Device = Cpu to solve it on the CPU.",
                e);
        }
    }

    private static void Check(MethodInfo kernel, bool requireResolved)
    {
        string ptx = Ptx(kernel);
        if (requireResolved && ptx.Contains(".extern", StringComparison.Ordinal))
        {
            throw new NotSupportedException(
                $"{typeof(TFunction).Name}.Apply compiles for {typeof(T).Name}, but calls a function ILGPU leaves unresolved on the GPU (such as FusedMultiplyAdd; write a * b + c). Use Device = Cpu or Emulated.");
        }
    }

    public void Evaluate(object kernels, int count, ArrayView<T> x, ArrayView<T> previous, ArrayView<T> parameters, ArrayView<T> f, ArrayView<T> jac,
        ArrayView<T> term, int s, int d, int mode) =>
        ((Kernels)kernels).Evaluate(count, x, previous, parameters, f, jac, term, function, s, d, mode);

    public void Loop(object kernels, int batch, ArrayView<T> x, ArrayView<T> h0, ArrayView<T> parameters, ArrayView<T> states, int length, int s, int d) =>
        ((Kernels)kernels).Loop(batch, x, h0, parameters, states, function, length, s, d);

    public void InputAdjoint(object kernels, int count, ArrayView<T> x, ArrayView<T> previous, ArrayView<T> parameters, ArrayView<T> v, ArrayView<T> dx, int s, int d) =>
        ((Kernels)kernels).InputAdjoint(count, x, previous, parameters, v, dx, function, s, d);

    public void ParameterAdjoint(object kernels, int count, ArrayView<T> x, ArrayView<T> previous, ArrayView<T> parameters, ArrayView<T> v, ArrayView<T> partial,
        int s, int d, int parameterCount, int rows, int chunkRows) =>
        ((Kernels)kernels).ParameterAdjoint(count, x, previous, parameters, v, partial, function, s, d, parameterCount, rows, chunkRows);
}

/// <summary>
/// The kernels for a user's <see cref="IDeviceRecurrence"/>, generic over its struct type: ILGPU specialises them for
/// that type, inlining its Apply on plain numbers (f) and on <see cref="Dual{T}"/> (the Jacobian, one direction per
/// evaluation). Rows are (sequence, step) pairs; states [rows, S], inputs [rows, d].
/// </summary>
internal static class CustomKernels
{
    /// <summary>
    /// One thread per (row, unit i): f_i; for <paramref name="mode"/> 1 also J_ii (one dual evaluation seeded along e_i,
    /// which gives f_i too) and the Newton term f_i − J_ii h_i; for mode 2 row i of J (S dual evaluations, jac [rows, S, S])
    /// and f_i − Σ_j J_ij h_j.
    /// </summary>
    public static void Evaluate<T, TFunction>(Index1D index, ArrayView<T> x, ArrayView<T> previous, ArrayView<T> parameters, ArrayView<T> f,
        ArrayView<T> jac, ArrayView<T> term, TFunction function, int s, int d, int mode)
        where T : unmanaged, IFloatingPointIeee754<T>
        where TFunction : struct, IDeviceRecurrence
    {
        int i = index % s;
        long row = index / s, state = row * s, input = row * d;
        if (mode == 0)
        {
            f[index] = function.Apply<T, DeviceVector<T>>(i, new(previous, state), new(x, input), new(parameters, 0));
            return;
        }

        if (mode == 1)
        {
            Dual<T> value = function.Apply<Dual<T>, DualVector<T>>(i, new(previous, state, i), new(x, input, -1), new(parameters, 0, -1));
            f[index] = value.Value;
            jac[index] = value.Derivative;
            term[index] = value.Value - (value.Derivative * previous[index]);
            return;
        }

        T fi = T.Zero, sum = T.Zero;
        for (int j = 0; j < s; j++)
        {
            Dual<T> value = function.Apply<Dual<T>, DualVector<T>>(i, new(previous, state, j), new(x, input, -1), new(parameters, 0, -1));
            jac[(((long)(int)index) * s) + j] = value.Derivative;
            sum += value.Derivative * previous[state + j];
            fi = value.Value;
        }

        f[index] = fi;
        term[index] = fi - sum;
    }

    /// <summary>∂L/∂x[row, j] = Σ_i v[row, i] ∂f_i/∂x_j: one thread per (row, j), S evaluations on duals seeded along x_j.</summary>
    public static void InputAdjoint<T, TFunction>(Index1D index, ArrayView<T> x, ArrayView<T> previous, ArrayView<T> parameters, ArrayView<T> v,
        ArrayView<T> dx, TFunction function, int s, int d)
        where T : unmanaged, IFloatingPointIeee754<T>
        where TFunction : struct, IDeviceRecurrence
    {
        int j = index % d;
        long row = index / d;
        T sum = T.Zero;
        for (int i = 0; i < s; i++)
        {
            Dual<T> value = function.Apply<Dual<T>, DualVector<T>>(i, new(previous, row * s, -1), new(x, row * d, j), new(parameters, 0, -1));
            sum += value.Derivative * v[(row * s) + i];
        }

        dx[index] = sum;
    }

    /// <summary>
    /// partial[chunk, p] = Σ over the chunk's rows of Σ_i v[row, i] ∂f_i/∂θ_p: one thread per (chunk, p), S evaluations
    /// per row on duals seeded along θ_p. The chunks are summed in order after (deterministic).
    /// </summary>
    public static void ParameterAdjoint<T, TFunction>(Index1D index, ArrayView<T> x, ArrayView<T> previous, ArrayView<T> parameters, ArrayView<T> v,
        ArrayView<T> partial, TFunction function, int s, int d, int parameterCount, int rows, int chunkRows)
        where T : unmanaged, IFloatingPointIeee754<T>
        where TFunction : struct, IDeviceRecurrence
    {
        int p = index % parameterCount, chunk = index / parameterCount;
        long first = (long)chunk * chunkRows, last = Math.Min(rows, first + chunkRows);
        T sum = T.Zero;
        for (long row = first; row < last; row++)
        {
            for (int i = 0; i < s; i++)
            {
                Dual<T> value = function.Apply<Dual<T>, DualVector<T>>(i, new(previous, row * s, -1), new(x, row * d, -1), new(parameters, 0, p));
                sum += value.Derivative * v[(row * s) + i];
            }
        }

        partial[index] = sum;
    }

    /// <summary>The sequential loop, one thread per sequence: h_t = f(h_{t−1}, x_t) unit by unit, reading h_{t−1} from the output.</summary>
    public static void Loop<T, TFunction>(Index1D b, ArrayView<T> x, ArrayView<T> h0, ArrayView<T> parameters, ArrayView<T> states,
        TFunction function, int length, int s, int d)
        where T : unmanaged, IFloatingPointIeee754<T>
        where TFunction : struct, IDeviceRecurrence
    {
        for (int t = 0; t < length; t++)
        {
            long row = (((long)(int)b) * length) + t;
            DeviceVector<T> previous = t == 0 ? new(h0, (long)(int)b * s) : new(states, (row - 1) * s);
            for (int i = 0; i < s; i++)
            {
                states[(row * s) + i] = function.Apply<T, DeviceVector<T>>(i, previous, new(x, row * d), new(parameters, 0));
            }
        }
    }
}

/// <summary>A vector in device memory: <c>data[offset + k]</c>.</summary>
internal readonly struct DeviceVector<T>(ArrayView<T> data, long offset) : IReadOnlyVector<T>
    where T : unmanaged
{
    public T this[int index] => data[offset + index];
}

/// <summary>A vector in device memory read as dual numbers: entry <c>seed</c> is the variable (derivative 1), the rest constants; seed −1 for none.</summary>
internal readonly struct DualVector<T>(ArrayView<T> data, long offset, int seed) : IReadOnlyVector<Dual<T>>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    public Dual<T> this[int index] => new(data[offset + index], index == seed ? T.One : T.Zero);
}
