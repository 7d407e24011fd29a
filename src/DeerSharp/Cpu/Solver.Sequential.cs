using DeerSharp.Engines;

namespace DeerSharp.Cpu;

internal static partial class Solver
{
    /// <summary>The most steps whose input projections the loop computes at a time (one matrix product per chunk).</summary>
    internal const int SequentialChunk = 2048;

    /// <summary>
    /// Steps per chunk of the loop's projections: at most <see cref="SequentialChunk"/>, and at most 64K values (256 KB in
    /// float32), so the ring of <see cref="ProjectionPipeline{TCell, T}.Slots"/> chunks stays in cache.
    /// </summary>
    internal static int ChunkSteps(int projectionSize) => Math.Clamp(65536 / Math.Max(1, projectionSize), 64, SequentialChunk);

    /// <summary>Steps of projections the loop holds at once: the ring's size.</summary>
    internal static int SequentialProjected(int length, int projectionSize) =>
        Math.Min(length, PipelineSlots * ChunkSteps(projectionSize));

    /// <summary>Chunks of projections in flight in the loop's ring (<see cref="ProjectionPipeline{TCell, T}"/>).</summary>
    internal const int PipelineSlots = 4;

    /// <summary>
    /// The reference loop h_t = f(h_{t-1}, x_t), with the input projection done a chunk of steps at a time (one matrix
    /// product per chunk, into a reused ring). Each state is f of the one before by construction, so the fixed-point
    /// residual is zero exactly when every state is finite, which is checked on every state of each chunk.
    /// With a second core and at least two chunks, the projections are computed ahead of the loop there, and the output's
    /// fresh pages faulted in with them (<see cref="ProjectionPipeline{TCell, T}"/>); on one core, the loop projects each
    /// chunk itself. The projection is one GEMM per chunk either way, so the states are the same bit for bit.
    /// </summary>
    /// <remarks>
    /// <paramref name="checkInputs"/>: each chunk's inputs are scanned for NaN and ±∞ before they are projected, and the
    /// first one stops the sequence as not converged at its step, with NaN from that chunk on
    /// (<see cref="SolverSettings{T}.EngineChecksInputs"/>; the driver then reports the input).
    /// </remarks>
    internal static unsafe SequenceOutcome SolveSequential<TCell, T>(in TCell cell, SequenceWorkspace<T> ws, ReadOnlySpan<T> inputs, int length, Span<T> states,
        int maxDegreeOfParallelism, bool checkInputs, CancellationToken cancellation)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int chunk = ChunkSteps(cell.ProjectionSize);
        fixed (T* output = states)
        fixed (T* x = inputs)
        {
            Prefault.HugePages((nint)output, (long)states.Length * sizeof(T));
            var pipeline = new ProjectionPipeline<TCell, T>(cell, ws.Projections, x, output, length, chunk, checkInputs);
            Helpers.Helper[] helper = maxDegreeOfParallelism >= 2 && pipeline.Chunks >= 2 ? Helpers.Start(pipeline.Help, 1) : [];
            try
            {
                for (int c = 0; c < pipeline.Chunks; c++)
                {
                    cancellation.ThrowIfCancellationRequested();
                    ReadOnlySpan<T> projections = pipeline.WaitFor(c);
                    if (pipeline.BadInput(c) >= 0)
                    {
                        return InputNotFinite(states, c * chunk, c * chunk + (pipeline.BadInput(c) / cell.InputSize), cell.StateSize);
                    }

                    int failed = RunLoop(cell, ws, projections, c * chunk, pipeline.Count(c), states);
                    pipeline.Release(c);
                    if (failed >= 0)
                    {
                        // The window's later steps are not computed: NaN, never zeros or stale values.
                        states[Math.Min(states.Length, (c + 1) * chunk * cell.StateSize)..].Fill(T.NaN);
                        return new SequenceOutcome(0, SolveStatus.Diverged, [], double.NaN, failed);
                    }
                }

                return Converged;
            }
            finally
            {
                pipeline.Stop();
                Helpers.Finish(helper);
            }
        }
    }

    /// <summary>
    /// Two sequences' windows by the loop, stepped together by the fused loop (the caller checked
    /// <see cref="FusedLoop.HasPair"/>), each chunk projected on this thread. The states are each sequence's own loop's,
    /// bit for bit. When one sequence stops being finite, it is marked NaN from the next chunk on and the other goes on
    /// alone. With <paramref name="checkInputs"/>, an input that is not finite stops both (the driver then throws).
    /// </summary>
    internal static (SequenceOutcome A, SequenceOutcome B) SolveSequentialPair<TCell, T>(in TCell cell, ReadOnlySpan<T> inputsA, ReadOnlySpan<T> inputsB,
        ReadOnlySpan<T> h0A, ReadOnlySpan<T> h0B, Span<T> statesA, Span<T> statesB, SequenceWorkspace<T> a, SequenceWorkspace<T> b, bool checkInputs,
        CancellationToken cancellation)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize, p = cell.ProjectionSize, d = cell.InputSize, length = statesA.Length / s, chunk = ChunkSteps(p), w = cell.WorkspaceSize;
        Prepare(a, h0A);
        Prepare(b, h0B);
        for (int t0 = 0; t0 < length; t0 += chunk)
        {
            cancellation.ThrowIfCancellationRequested();
            int count = Math.Min(chunk, length - t0);
            Span<T> pa = a.Projections.AsSpan(0, count * p), pb = b.Projections.AsSpan(0, count * p);
            ReadOnlySpan<T> xa = inputsA.Slice(t0 * d, count * d), xb = inputsB.Slice(t0 * d, count * d);
            if (checkInputs && (NonFinite.IndexOf(xa) >= 0 || NonFinite.IndexOf(xb) >= 0))
            {
                return (InputNotFinite(statesA, t0, t0, s), InputNotFinite(statesB, t0, t0, s));
            }

            cell.ProjectInputs(xa, pa, count);
            cell.ProjectInputs(xb, pb, count);
            ReadOnlySpan<T> previousA = t0 == 0 ? a.InitialState.AsSpan(0, s) : statesA.Slice((t0 - 1) * s, s);
            ReadOnlySpan<T> previousB = t0 == 0 ? b.InitialState.AsSpan(0, s) : statesB.Slice((t0 - 1) * s, s);
            Span<T> chunkA = statesA.Slice(t0 * s, count * s), chunkB = statesB.Slice(t0 * s, count * s);
            if (!FusedLoop.TryRunPair(cell, previousA, previousB, pa, pb, chunkA, chunkB, count, out bool finiteA, out bool finiteB))
            {
                throw new InvalidOperationException("the fused pair loop declined a cell it reported it covers");
            }

            // The loop's own check passes only finite chunks; a chunk it does not pass is scanned for its first bad value.
            int badA = finiteA ? -1 : FirstNonFinite<T>(chunkA), badB = finiteB ? -1 : FirstNonFinite<T>(chunkB);
            if (badA >= 0 || badB >= 0)
            {
                int next = t0 + count;
                return (Finish(cell, a, inputsA, statesA, next, badA < 0 ? -1 : t0 + badA / s, checkInputs, cancellation),
                    Finish(cell, b, inputsB, statesB, next, badB < 0 ? -1 : t0 + badB / s, checkInputs, cancellation));
            }
        }

        return (Converged, Converged);

        void Prepare(SequenceWorkspace<T> ws, ReadOnlySpan<T> h0)
        {
            ws.Ensure(SequentialProjected(length, p), s, p, w, 0, 1, iterative: false);
            if (h0.IsEmpty)
            {
                ws.InitialState.AsSpan(0, s).Clear();
            }
            else
            {
                h0.CopyTo(ws.InitialState);
            }
        }
    }

    /// <summary>
    /// A sequence stopped at step <paramref name="step"/> by an input that is not finite, found in the chunk that starts at
    /// <paramref name="from"/>: its states from there on are NaN, never zeros or stale values (the driver reports the input).
    /// </summary>
    private static SequenceOutcome InputNotFinite<T>(Span<T> states, int from, int step, int s)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        states[Math.Min(states.Length, from * s)..].Fill(T.NaN);
        return new SequenceOutcome(0, SolveStatus.Diverged, [], double.NaN, step, Message: "an input that is not finite");
    }

    /// <summary>The loop's success: every state was checked finite as it was stored (<see cref="RunLoop"/>).</summary>
    private static SequenceOutcome Converged => new(0, SolveStatus.Converged, [], 0.0, -1, Checked: true);

    /// <summary>
    /// Sequences q .. q + 3 of a piece by the loop, stepped together by the fused loop (the caller checked
    /// <see cref="FusedLoop.HasQuad"/>), each chunk projected on this thread; outcomes in <paramref name="outcomes"/>[0..4].
    /// The states are each sequence's own loop's, bit for bit. When a sequence stops being finite, it is marked NaN from
    /// the next chunk on and each of the others goes on alone. With <paramref name="checkInputs"/>, an input that is not
    /// finite stops all four (the driver then throws).
    /// </summary>
    internal static void SolveSequentialQuad<TCell, T>(in TCell cell, Piece piece, int q, ReadOnlySpan<T> inputs, ReadOnlySpan<T> starts, T[] states,
        SequenceWorkspace<T>[] ws, Span<SequenceOutcome> outcomes, bool checkInputs, CancellationToken cancellation)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize, p = cell.ProjectionSize, d = cell.InputSize, length = piece.Steps, chunk = ChunkSteps(p);
        for (int i = 0; i < 4; i++)
        {
            ws[i].Ensure(SequentialProjected(length, p), s, p, cell.WorkspaceSize, 0, 1, iterative: false);
            if (starts.IsEmpty)
            {
                ws[i].InitialState.AsSpan(0, s).Clear();
            }
            else
            {
                starts.Slice((q + i) * s, s).CopyTo(ws[i].InitialState);
            }
        }

        Span<bool> finite = stackalloc bool[4];
        Span<int> bad = stackalloc int[4];
        for (int t0 = 0; t0 < length; t0 += chunk)
        {
            cancellation.ThrowIfCancellationRequested();
            int count = Math.Min(chunk, length - t0);
            for (int i = 0; i < 4; i++)
            {
                ReadOnlySpan<T> x = inputs.Slice((int)piece.Offset(q + i, d) + (t0 * d), count * d);
                if (checkInputs && NonFinite.IndexOf(x) >= 0)
                {
                    for (int j = 0; j < 4; j++)
                    {
                        outcomes[j] = InputNotFinite(states.AsSpan((int)piece.Offset(q + j, s), length * s), t0, t0, s);
                    }

                    return;
                }

                cell.ProjectInputs(x, ws[i].Projections.AsSpan(0, count * p), count);
            }

            if (!FusedLoop.TryRunQuad<TCell, T>(cell, Member(0), Member(1), Member(2), Member(3), count, finite))
            {
                throw new InvalidOperationException("the fused quad loop declined a cell it reported it covers");
            }

            // The loop's own check passes only finite chunks; a chunk it does not pass is scanned for its first bad value.
            bool failed = false;
            for (int i = 0; i < 4; i++)
            {
                bad[i] = finite[i] ? -1 : FirstNonFinite<T>(states.AsSpan((int)piece.Offset(q + i, s) + (t0 * s), count * s));
                failed |= bad[i] >= 0;
            }

            if (failed)
            {
                int next = t0 + count;
                for (int i = 0; i < 4; i++)
                {
                    outcomes[i] = Finish(cell, ws[i], inputs.Slice((int)piece.Offset(q + i, d), length * d), states.AsSpan((int)piece.Offset(q + i, s), length * s), next,
                        bad[i] < 0 ? -1 : t0 + (bad[i] / s), checkInputs, cancellation);
                }

                return;
            }

            FusedLoop.Lanes Member(int i)
            {
                Span<T> mine = states.AsSpan((int)piece.Offset(q + i, s), length * s);
                ReadOnlySpan<T> previous = t0 == 0 ? ws[i].InitialState.AsSpan(0, s) : mine.Slice((t0 - 1) * s, s);
                return FusedLoop.LanesOf<T>(previous, ws[i].Projections.AsSpan(0, count * p), mine.Slice(t0 * s, count * s));
            }
        }

        outcomes[..4].Fill(Converged);
    }


    /// <summary>
    /// After a pair's chunk ending before step <paramref name="next"/>: a sequence that failed at <paramref name="failedAt"/>
    /// is marked NaN from <paramref name="next"/> on; one that did not runs the rest alone.
    /// </summary>
    private static SequenceOutcome Finish<TCell, T>(in TCell cell, SequenceWorkspace<T> ws, ReadOnlySpan<T> inputs, Span<T> states, int next, int failedAt,
        bool checkInputs, CancellationToken cancellation)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize, length = states.Length / s;
        if (failedAt >= 0)
        {
            states[(next * s)..].Fill(T.NaN);
            return new SequenceOutcome(0, SolveStatus.Diverged, [], double.NaN, failedAt);
        }

        if (next >= length)
        {
            return Converged;
        }

        states.Slice((next - 1) * s, s).CopyTo(ws.InitialState);
        SequenceOutcome rest = SolveSequential(cell, ws, inputs[(next * cell.InputSize)..], length - next, states[(next * s)..], 1, checkInputs, cancellation);
        return rest.Status == SolveStatus.Converged ? rest : rest with { FailedAt = next + rest.FailedAt };
    }

    /// <summary>
    /// Steps t0 .. t0 + count − 1 from the state before t0 (by the fused loop where the cell has one, which gives the same
    /// states bit for bit); returns the first step that is not finite, or -1. The fused loop checks the values it stores
    /// as it stores them (<see cref="FusedLoop.Check{TS, TV}"/>), and the chunk is scanned only when that check does not
    /// pass; other cells' chunks are checked once, after the loop, in one SIMD pass (a scalar check per step cost about a
    /// tenth of a GRU step at n = 32). Steps after a non-finite one are computed and then reported as the failure they follow.
    /// </summary>
    private static int RunLoop<TCell, T>(in TCell cell, SequenceWorkspace<T> ws, ReadOnlySpan<T> projections, int t0, int count, Span<T> states)
        where TCell : IRecurrentCell<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = cell.StateSize;
        int p = cell.ProjectionSize;
        ReadOnlySpan<T> previous = t0 == 0 ? ws.InitialState.AsSpan(0, s) : states.Slice((t0 - 1) * s, s);
        Span<T> chunk = states.Slice(t0 * s, count * s);
        if (FusedLoop.TryRun(cell, previous, projections, chunk, count, out bool finite))
        {
            if (finite)
            {
                return -1;
            }
        }
        else
        {
            Span<T> scratch = ws.CellScratch.AsSpan(0, cell.WorkspaceSize);
            for (int i = 0; i < count; i++)
            {
                Span<T> current = chunk.Slice(i * s, s);
                cell.Evaluate(previous, projections.Slice(i * p, p), current, scratch);
                previous = current;
            }
        }

        int bad = FirstNonFinite<T>(chunk);
        return bad < 0 ? -1 : t0 + bad / s;
    }

    /// <summary>The index of the first value that is not finite, or -1.</summary>
    internal static int FirstNonFinite<T>(ReadOnlySpan<T> values)
        where T : unmanaged, IFloatingPointIeee754<T> => NonFinite.IndexOf(values);
}
