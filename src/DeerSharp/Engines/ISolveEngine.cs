
namespace DeerSharp.Engines;

/// <summary>
/// What one engine call solves: some sequences of the batch over one window of steps. The engine reads their inputs
/// (and warm start) at [sequence, step] of the whole batch's arrays and writes their states there.
/// </summary>
/// <param name="Sequences">The batch indices, ascending (consecutive on a device).</param>
/// <param name="FirstStep">The window's first step t0.</param>
/// <param name="Steps">The window's length.</param>
/// <param name="Length">T, the whole sequences' length (the stride between sequences).</param>
/// <param name="Window">The window's index, for progress reports.</param>
internal readonly record struct Piece(int[] Sequences, int FirstStep, int Steps, int Length, int Window)
{
    /// <summary>Offset of (sequence number <paramref name="q"/> of the piece, its first step) in a [B, T, <paramref name="width"/>] array.</summary>
    public long Offset(int q, int width) => (((long)Sequences[q] * Length) + FirstStep) * width;

    /// <summary>Whether the piece's rows are one contiguous block of a [B, T, ·] array.</summary>
    public bool Contiguous
    {
        get
        {
            for (int q = 1; q < Sequences.Length; q++)
            {
                if (Sequences[q] != Sequences[0] + q)
                {
                    return false;
                }
            }

            return Sequences.Length == 1 || Steps == Length;
        }
    }
}

/// <summary>
/// An engine only solves: it runs one method on a <see cref="Piece"/> and reports each sequence's outcome. Validation,
/// windows, fallbacks, results and messages belong to the driver (docs/architecture.md). Two implement it: the CPU
/// engine (<c>Cpu.CpuEngine</c>) and the ILGPU device engine (<c>Gpu.DeviceEngine</c>).
/// </summary>
internal interface ISolveEngine<T> : IDisposable
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Where it runs.</summary>
    ComputeDevice Device { get; }

    /// <summary>
    /// Solves <paramref name="piece"/> by <paramref name="settings"/>' method from <paramref name="starts"/> ([count, S]:
    /// each sequence's state before the window; empty for zeros), writing its states into <paramref name="states"/>
    /// ([B, T, S]) and one outcome per sequence into <paramref name="outcomes"/>. Every outcome's residual was measured on
    /// the states written.
    /// </summary>
    /// <param name="piece">The sequences and the window.</param>
    /// <param name="inputs">x, [B, T, d].</param>
    /// <param name="starts">h before the window, [count, S], or empty for zeros.</param>
    /// <param name="warmStart">A starting trajectory [B, T, S], or empty.</param>
    /// <param name="states">The result, [B, T, S].</param>
    /// <param name="settings">The resolved settings.</param>
    /// <param name="outcomes">One per sequence of the piece.</param>
    void Solve(Piece piece, ReadOnlySpan<T> inputs, ReadOnlySpan<T> starts, ReadOnlySpan<T> warmStart, T[] states, in SolverSettings<T> settings,
        Span<SequenceOutcome> outcomes);
}
