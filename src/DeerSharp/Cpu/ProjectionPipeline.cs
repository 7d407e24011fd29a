using System.Runtime.CompilerServices;

namespace DeerSharp.Cpu;

/// <summary>
/// The sequential loop's input projections, computed ahead of it on a second core: chunks of steps go through a ring of
/// <see cref="Slots"/> buffers; a helper (<see cref="Helpers"/>) claims the next chunk, projects it, faults in the pages of its states
/// (<see cref="Prefault"/>) and marks it ready. The loop takes chunks in order and, when the one it needs is not
/// claimed yet, projects it itself (it never claims ahead, which would take the helper's work), so a helper that starts
/// late (a noisy VM) or not at all (another solve has it) costs nothing beyond the inline projection. A slot is reused only after the loop is done with it.
/// </summary>
internal sealed unsafe class ProjectionPipeline<TCell, T>
    where TCell : IRecurrentCell<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Chunks in flight: the ring's size.</summary>
    internal const int Slots = Solver.PipelineSlots;

    private readonly TCell _cell;
    private readonly T[] _projections;
    private readonly T* _inputs, _states;
    private readonly int _length, _chunk, _chunks, _d, _p, _s;
    private readonly int[] _ready = new int[Slots];
    private readonly int[] _badInput = new int[Slots];
    private readonly bool _checkInputs;
    private int _next, _consumed;
    private volatile bool _stop;

    /// <param name="cell">The cell whose projections these are (a copy of the struct; it shares the weights).</param>
    /// <param name="projections">The ring, at least <see cref="Slots"/> · <paramref name="chunk"/> · P values.</param>
    /// <param name="inputs">x, [length, d], pinned for the pipeline's lifetime.</param>
    /// <param name="states">The loop's output, [length, S], pinned likewise (its pages are faulted in ahead of the loop).</param>
    /// <param name="length">Steps.</param>
    /// <param name="chunk">Steps per chunk (<see cref="Solver.ChunkSteps"/>).</param>
    /// <param name="checkInputs">Scan each chunk's inputs for NaN and ±∞ before projecting it (<see cref="BadInput"/>).</param>
    public ProjectionPipeline(in TCell cell, T[] projections, T* inputs, T* states, int length, int chunk, bool checkInputs)
    {
        _checkInputs = checkInputs;
        _cell = cell;
        _projections = projections;
        _inputs = inputs;
        _states = states;
        _length = length;
        _chunk = chunk;
        _chunks = (length + chunk - 1) / chunk;
        _d = cell.InputSize;
        _p = cell.ProjectionSize;
        _s = cell.StateSize;
    }

    /// <summary>The helper's body: claims and projects chunks until every one is claimed or <see cref="Stop"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Help()
    {
        var spin = new SpinWait();
        while (!_stop && Volatile.Read(ref _next) < _chunks)
        {
            if (TryClaim(out int c, int.MaxValue))
            {
                Project(c, populate: true);
                spin.Reset();
            }
            else
            {
                spin.SpinOnce(sleep1Threshold: -1);
            }
        }
    }

    /// <summary>Chunk c's projections, once they are ready, projecting chunks on this thread while they are not.</summary>
    public ReadOnlySpan<T> WaitFor(int c)
    {
        var spin = new SpinWait();
        ref int ready = ref _ready[c % Slots];
        while (Volatile.Read(ref ready) != c + 1)
        {
            if (TryClaim(out int claimed, c))
            {
                Project(claimed, populate: false);
            }
            else
            {
                spin.SpinOnce(sleep1Threshold: -1);
            }
        }

        return _projections.AsSpan((c % Slots) * _chunk * _p, Count(c) * _p);
    }

    /// <summary>Once chunk c is ready (<see cref="WaitFor"/>): the index in its inputs of the first value that is not finite, or -1 (or unchecked).</summary>
    public int BadInput(int c) => _badInput[c % Slots];

    /// <summary>The loop is done with chunk c: its slot may take chunk c + <see cref="Slots"/>.</summary>
    public void Release(int c) => Volatile.Write(ref _consumed, c + 1);

    /// <summary>Tells the helper to stop claiming (the loop ended, or failed).</summary>
    public void Stop() => _stop = true;

    public int Chunks => _chunks;

    public int Count(int c) => Math.Min(_chunk, _length - c * _chunk);

    /// <summary>Claims the next chunk if it is at most <paramref name="upTo"/> and the ring has a free slot for it.</summary>
    private bool TryClaim(out int c, int upTo)
    {
        while (true)
        {
            int next = Volatile.Read(ref _next);
            if (_stop || next >= _chunks || next > upTo || next >= Volatile.Read(ref _consumed) + Slots)
            {
                c = -1;
                return false;
            }

            if (Interlocked.CompareExchange(ref _next, next + 1, next) == next)
            {
                c = next;
                return true;
            }
        }
    }

    /// <summary>Projects chunk c into its slot; on the helper, then faults in the chunk's states ahead of the loop.</summary>
    private void Project(int c, bool populate)
    {
        long t0 = (long)c * _chunk;
        int count = Count(c);
        var inputs = new ReadOnlySpan<T>(_inputs + t0 * _d, count * _d);
        // Scanned here, just before the projection reads the same values (then from cache), and with one sequence on the
        // helper's core, off the loop's.
        _badInput[c % Slots] = _checkInputs ? NonFinite.IndexOf(inputs) : -1;
        _cell.ProjectInputs(inputs, _projections.AsSpan((c % Slots) * _chunk * _p, count * _p), count);
        // Ready first, then the pages: the loop needs the projections, and faults a page in itself if it gets there first.
        // Populating first, the helper marked a chunk ready 50-55 µs after it began, where the projection alone took 30.
        Volatile.Write(ref _ready[c % Slots], c + 1);
        if (populate)
        {
            Prefault.Populate((nint)(_states + t0 * _s), (long)count * _s * sizeof(T));
        }
    }
}
