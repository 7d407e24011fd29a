using ILGPU;
using ILGPU.Runtime;

namespace DeerSharp.Gpu;

/// <summary>
/// The device buffers of one forward solve of a <see cref="DeviceCell{T}"/> over B sequences of L steps, [B, L, ·] each:
/// the weights, h0, the input projection xp, the iterate and its shift to h_{t−1}, f, the recurrent product, the
/// Jacobian (or its diagonal, or blocks) and the Newton term. Allocated once per solve and freed with it; the adjoint
/// asks for the recurrent products of every cell (<c>products</c>), which its δ needs.
/// </summary>
internal sealed class DeviceWorkspace<T> : IDisposable
    where T : unmanaged, IFloatingPointIeee754<T>
{
    public DeviceWorkspace(Accelerator accelerator, DeviceCell<T> cell, int batch, int length, int jacobianPerStep, bool custom, bool products = false)
    {
        Batch = batch;
        Length = length;
        long rows = (long)batch * length;
        int s = cell.StateSize;
        WeightIH = accelerator.Allocate1D(cell.WeightIH);
        WeightHH = accelerator.Allocate1D(cell.WeightHH);
        BiasIH = accelerator.Allocate1D(cell.BiasIH);
        BiasHH = accelerator.Allocate1D(cell.BiasHH);
        Inputs = accelerator.Allocate1D<T>(custom ? 1 : Math.Max(1, rows * cell.InputSize));
        InitialState = accelerator.Allocate1D<T>((long)batch * s);
        Projections = accelerator.Allocate1D<T>(Math.Max(1, rows * cell.ProjectionSize));
        Current = accelerator.Allocate1D<T>(rows * s);
        Previous = accelerator.Allocate1D<T>(rows * s);
        F = accelerator.Allocate1D<T>(rows * s);
        Products = accelerator.Allocate1D<T>(!products && (cell.Structured || cell.Linear || custom) ? 1 : rows * cell.ProjectionSize);
        Jacobians = accelerator.Allocate1D<T>(rows * jacobianPerStep);
        Terms = accelerator.Allocate1D<T>(rows * s);
    }

    /// <summary>B, the sequences solved together.</summary>
    public int Batch { get; }

    /// <summary>L, the steps of each.</summary>
    public int Length { get; }

    public long Rows => (long)Batch * Length;

    /// <summary>
    /// The buffers: the layer's weights W_ih, W_hh, b_ih, b_hh; x [B, L, d] (unused by a custom cell, whose inputs go
    /// straight to the projections); h0 [B, S]; xp [B, L, P], what f reads of x_t (W_ih x + b_ih, or x itself for a
    /// custom cell); the iterate h, its shift h_{t−1} and f there, [B, L, S] each; the dense cells' W_hh h_{t−1}
    /// [B, L, G·n]; the Jacobian (or its diagonal, or blocks); and the Newton term b_t = f_t − J_t h_{t−1} [B, L, S].
    /// </summary>
    public readonly MemoryBuffer1D<T, Stride1D.Dense> WeightIH, WeightHH, BiasIH, BiasHH, Inputs, InitialState, Projections, Current, Previous, F, Products,
        Jacobians, Terms;

    /// <summary>Uploads h0 for every sequence, or zeros when none is given.</summary>
    public void UploadInitialState(ReadOnlySpan<T> initialState)
    {
        if (initialState.IsEmpty)
        {
            InitialState.MemSetToZero();
        }
        else
        {
            InitialState.View.AsContiguous().CopyFromCPU(initialState[..(int)InitialState.Length]);
        }
    }

    public void Dispose()
    {
        foreach (MemoryBuffer1D<T, Stride1D.Dense> buffer in new[] { WeightIH, WeightHH, BiasIH, BiasHH, Inputs, InitialState, Projections, Current, Previous, F,
            Products, Jacobians, Terms })
        {
            buffer.Dispose();
        }
    }
}
