using System.Globalization;
using System.Runtime.CompilerServices;

namespace DeerSharp.Onnx;

/// <summary>
/// Runs one recurrent node: each direction is one <see cref="Deer"/>.Solve of a built-in cell over the batch (sequences of
/// equal length together; a reverse direction reads each sequence backwards from its last valid step), and Y, Y_h, Y_c
/// are assembled in the node's layout. Steps past a sequence's length are zeros in Y; Y_h holds the last valid step.
/// </summary>
internal static class RecurrentRun
{
    /// <summary>The node's outputs (Y, Y_h, Y_c; null where the node names none) and the solves that made them.</summary>
    public sealed record Outputs(OnnxTensor Y, OnnxTensor Hidden, OnnxTensor? Cell, IReadOnlyList<SolveSummary> Solves);

    public static Outputs Run(RecurrentOp op, Func<int, OnnxTensor?> input, SolveOptions options, RunBuffers buffers)
    {
        OnnxNode node = op.Node;
        OnnxTensor x = input(0) ?? throw node.Error("input X is missing.");
        return x.Type switch
        {
            OnnxElement.Float => Run<float>(op, x, input, options, buffers),
            OnnxElement.Double => Run<double>(op, x, input, options, buffers),
            _ => throw node.Error($"input X must be float or double; it is {x.Type}."),
        };
    }

    private static Outputs Run<T>(RecurrentOp op, OnnxTensor x, Func<int, OnnxTensor?> input, SolveOptions options, RunBuffers buffers)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        OnnxNode node = op.Node;
        if (x.Rank != 3)
        {
            throw node.Error($"input X must have shape {(op.Layout == 0 ? "[T, B, I]" : "[B, T, I]")}; it has {x.ShapeText}.");
        }

        int length = (int)x.Shape[op.Layout == 0 ? 0 : 1], batch = (int)x.Shape[op.Layout == 0 ? 1 : 0], inputSize = (int)x.Shape[2];
        int h = op.HiddenSize, directions = op.DirectionCount, s = op.IsLstm ? 2 * h : h;
        OnnxTensor w = input(1) ?? throw node.Error("input W is missing."), r = input(2) ?? throw node.Error("input R is missing.");
        op.CheckShape(w, "W", 3, [directions, op.Gates * h, inputSize]);
        int[] lengths = Lengths(op, input(4), batch, length);
        T[]? initialH = States<T>(op, input(5), "initial_h", batch), initialC = op.IsLstm ? States<T>(op, input(6), "initial_c", batch) : null;
        if (op.IsLstm && input(7) is { } peepholes)
        {
            op.CheckShape(peepholes, "P", 2, [directions, 3 * h]);
            if (peepholes.AsDoubles().Any(v => v != 0))
            {
                throw node.Error("LSTM peephole weights (input P) are not implemented; only zero peepholes are accepted.");
            }
        }

        T[] inputs = BatchMajor<T>(x, op.Layout, batch, length, inputSize);
        long[] yShape = op.Layout == 0 ? [length, directions, batch, h] : [batch, length, directions, h];
        long[] stateShape = op.Layout == 0 ? [directions, batch, h] : [batch, directions, h];
        // One direction, every sequence whole: Y's own array (an LSTM's h; a GRU or RNN adopts the states instead) comes
        // from the model's buffers, as do the states of every solve of the whole batch.
        var y = new YValues<T>(op, batch, length, h, directions == 1 && s != h && lengths.All(l => l == length) ? buffers : null);
        var hidden = new T[directions * batch * h];
        T[]? cell = op.IsLstm ? new T[directions * batch * h] : null;
        var solves = new List<SolveSummary>();
        for (int d = 0; d < directions; d++)
        {
            object recurrence = op.Cell<T>(w, r, input(3), d);
            var target = new Target<T>(op, d, batch, h, s, y, hidden, cell);
            var h0 = new T[batch * s];
            for (int b = 0; b < batch; b++)
            {
                for (int u = 0; u < h; u++)
                {
                    h0[(b * s) + u] = initialH is null ? T.Zero : initialH[StateIndex(op, d, b, u, batch)];
                    if (op.IsLstm)
                    {
                        h0[(b * s) + h + u] = initialC is null ? T.Zero : initialC[StateIndex(op, d, b, u, batch)];
                    }
                }
            }

            var direction = new Direction<T>(inputs, h0, lengths, length, inputSize, s, op.Reversed(d), options, target, buffers);
            solves.AddRange(recurrence switch
            {
                TanhRnnCell<T> rnn => direction.Solve(rnn),
                GruCell<T> gru => direction.Solve(gru),
                ResetBeforeGruCell<T> gru => direction.Solve(gru),
                LstmCell<T> lstm => direction.Solve(lstm),
                _ => throw new InvalidOperationException($"{node.Label}: no solve for a {recurrence.GetType().Name}."),
            });
        }

        return new Outputs(y.Tensor(yShape), OnnxTensor.Of(hidden, stateShape), cell is null ? null : OnnxTensor.Of(cell, stateShape), solves);
    }

    /// <summary>Index of (direction, sequence, unit) in a state tensor of the node's layout: [D, B, H] or [B, D, H].</summary>
    private static int StateIndex(RecurrentOp op, int d, int b, int u, int batch) =>
        op.Layout == 0 ? (((d * batch) + b) * op.HiddenSize) + u : (((b * op.DirectionCount) + d) * op.HiddenSize) + u;

    private static int[] Lengths(RecurrentOp op, OnnxTensor? lens, int batch, int length)
    {
        if (lens is null)
        {
            return [.. Enumerable.Repeat(length, batch)];
        }

        long[] values = lens.AsIntegers($"{op.Node.Label}: sequence_lens");
        if (lens.Rank != 1 || values.Length != batch)
        {
            throw op.Node.Error($"input sequence_lens must have shape [{batch}]; it has {lens.ShapeText}.");
        }

        return [.. values.Select((v, b) => v >= 0 && v <= length ? (int)v
            : throw op.Node.Error(string.Create(CultureInfo.InvariantCulture, $"sequence_lens[{b}] = {v} is outside [0, {length}].")))];
    }

    private static T[]? States<T>(RecurrentOp op, OnnxTensor? t, string name, int batch)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (t is null)
        {
            return null;
        }

        op.CheckShape(t, name, 3, op.Layout == 0 ? [op.DirectionCount, batch, op.HiddenSize] : [batch, op.DirectionCount, op.HiddenSize]);
        return t.Read<T>();
    }

    /// <summary>
    /// X as [B, T, I], the layout Deer solves in. No copy when X's storage is that already: layout 1 contiguous, or layout 0
    /// as the Transpose of a batch-first input leaves it (a view with strides [I, T·I, 1]).
    /// </summary>
    private static T[] BatchMajor<T>(OnnxTensor x, int layout, int batch, int length, int inputSize)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        long[] batchMajor = layout == 0 ? [inputSize, (long)length * inputSize, 1] : [(long)length * inputSize, inputSize, 1];
        if (x.Storage is T[] storage && x.Offset == 0 && storage.LongLength == x.Count && x.HasStrides(batchMajor))
        {
            return storage;
        }

        T[] values = x.Read<T>();   // [T, B, I] or [B, T, I], contiguous; shared with the graph value: read, never written
        if (layout == 1 || batch == 1)
        {
            return values;
        }

        var result = new T[values.Length];
        for (int t = 0; t < length; t++)
        {
            for (int b = 0; b < batch; b++)
            {
                Array.Copy(values, ((long)t * batch + b) * inputSize, result, ((long)b * length + t) * inputSize, inputSize);
            }
        }

        return result;
    }

    /// <summary>Where one direction's states go: Y at (t, d, b) in the node's layout, and Y_h (and Y_c) at (d, b).</summary>
    private sealed class Target<T>(RecurrentOp op, int d, int batch, int h, int s, YValues<T> y, T[] hidden, T[]? cell)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        /// <summary>
        /// Y at every step of each sequence members[q] from its states, [q, steps, s] in <paramref name="states"/> (step u is
        /// time steps − 1 − u when reversed). A large Y (an LSTM's h out of [h; c]: 8 MB at T = 65,536, n = 32) is copied on
        /// two cores when <paramref name="parallel"/>, in pieces of whole rows, each run of one sequence's rows by one
        /// strided copy (<see cref="Kernels.CopyRows"/>).
        /// </summary>
        public void WriteSequences(int[] members, T[] states, int steps, bool reversed, bool parallel)
        {
            long rows = (long)members.Length * steps;
            int pieces = parallel && rows * h >= ParallelCopy ? 8 : 1;
            Helpers.ForEachPiece(pieces, parallel, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (int k) =>
            {
                for (long row = rows * k / pieces, end = rows * (k + 1) / pieces; row < end;)
                {
                    int q = (int)(row / steps), u = (int)(row % steps), run = (int)Math.Min(end - row, steps - u);
                    y.WriteRows(d, members[q], reversed ? steps - 1 - u : u, run, reversed, states.AsSpan((int)(row * s)), s);
                    row += run;
                }
            });
        }

        /// <summary>Values of Y from which it is copied on two cores.</summary>
        private const long ParallelCopy = 1 << 19;

        /// <summary>Takes the whole batch's states [B, T, s] for Y, which then views them (no copy), where Y can.</summary>
        public bool TryAdopt(T[] states) => y.TryAdopt(states, s);

        public void Last(int b, ReadOnlySpan<T> state)
        {
            int at = StateIndex(op, d, b, 0, batch);
            state[..h].CopyTo(hidden.AsSpan(at, h));
            if (cell is not null)
            {
                state.Slice(h, h).CopyTo(cell.AsSpan(at, h));
            }
        }

        public int StateSize => s;
    }

    /// <summary>
    /// Y's values. With one direction they are kept batch-major, [B, T, width], and Y is a view of them (so the usual
    /// Squeeze and Transpose back to [B, T, n] give a contiguous output, no copy): the solve's own states (width s) when
    /// it solved the whole batch in one piece and a state is h, else an array of h per step (width h). With two
    /// directions, an array in the node's layout.
    /// </summary>
    private sealed class YValues<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        private readonly RecurrentOp _op;
        private readonly int _batch, _length, _h;
        private T[]? _values;
        private int _width;

        /// <summary>Y's values for <paramref name="batch"/> sequences of <paramref name="length"/> steps of <paramref name="h"/>.</summary>
        /// <param name="op">The node.</param>
        /// <param name="batch">B.</param>
        /// <param name="length">T.</param>
        /// <param name="h">The hidden size.</param>
        /// <param name="buffers">Where to rent Y's array, written whole by the solve's every step; null to make it on demand.</param>
        public YValues(RecurrentOp op, int batch, int length, int h, RunBuffers? buffers)
        {
            (_op, _batch, _length, _h) = (op, batch, length, h);
            if (buffers is not null)
            {
                _values = buffers.Rent<T>((long)batch * length * h);
                _width = h;
            }
        }

        private bool BatchMajor => _op.DirectionCount == 1;

        private T[] Values
        {
            get
            {
                if (_values is null)
                {
                    _values = new T[(long)_batch * _length * _op.DirectionCount * _h];
                    _width = _h;
                }

                return _values;
            }
        }

        /// <summary>
        /// Y at (t, d, b) for <paramref name="count"/> times from <paramref name="t"/> on (backward: t, t − 1, ...), from the
        /// first h values of each row of <paramref name="rows"/> (row stride <paramref name="rowStride"/>).
        /// </summary>
        public void WriteRows(int d, int b, int t, int count, bool backward, ReadOnlySpan<T> rows, int rowStride)
        {
            int directions = _op.DirectionCount;
            (long at, long perStep) = BatchMajor ? (((long)b * _length + t) * _h, _h)
                : _op.Layout == 0 ? (((((long)t * directions) + d) * _batch + b) * _h, (long)directions * _batch * _h)
                : (((((long)b * _length) + t) * directions + d) * _h, (long)directions * _h);
            Kernels.CopyRows<T>(rows, rowStride, Values, at, backward ? -perStep : perStep, _h, count);
        }

        public bool TryAdopt(T[] states, int s)
        {
            if (!BatchMajor || _values is not null || s != _h)
            {
                return false;
            }

            (_values, _width) = (states, s);
            return true;
        }

        /// <summary>Y in the node's layout: element (t, 0, b, u) of layout 0, or (b, t, 0, u) of layout 1, is values[(b·T + t)·width + u] when batch-major.</summary>
        public OnnxTensor Tensor(long[] yShape)
        {
            T[] values = Values;
            if (!BatchMajor)
            {
                return OnnxTensor.Of(values, yShape);
            }

            long w = _width, row = _length * w;
            return OnnxTensor.View(values, yShape, _op.Layout == 0 ? [w, 0, row, 1] : [row, w, 0, 1]);
        }
    }

    /// <summary>One direction of the node over the batch, solved in groups of sequences of equal length.</summary>
    private sealed class Direction<T>(T[] inputs, T[] h0, int[] lengths, int full, int inputSize, int s, bool reversed, SolveOptions options, Target<T> target,
        RunBuffers buffers)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        public List<SolveSummary> Solve<TCell>(TCell cell)
            where TCell : IRecurrentCell<T>
        {
            var summaries = new List<SolveSummary>();
            foreach (IGrouping<int, int> group in Enumerable.Range(0, lengths.Length).GroupBy(b => lengths[b]))
            {
                int[] members = [.. group];
                int steps = group.Key;
                if (steps == 0)
                {
                    // Nothing to run: Y and Y_h stay zero, as ONNX Runtime leaves them for an empty sequence.
                    continue;
                }

                bool whole = steps == full && !reversed && members.Length == lengths.Length;
                T[] x = whole ? inputs : new T[members.Length * steps * inputSize];
                T[] start = whole ? h0 : new T[members.Length * s];
                if (!whole)
                {
                    for (int q = 0; q < members.Length; q++)
                    {
                        int b = members[q];
                        h0.AsSpan(b * s, s).CopyTo(start.AsSpan(q * s, s));
                        for (int u = 0; u < steps; u++)
                        {
                            int t = reversed ? steps - 1 - u : u;
                            Array.Copy(inputs, ((long)b * full + t) * inputSize, x, ((long)q * steps + u) * inputSize, inputSize);
                        }
                    }
                }

                // The whole batch's states go to a rented array (the solve writes every one of them: solved, or NaN past a failure).
                SolveResult<T> result = Driver.SolveDriver.Solve(cell, x, members.Length, steps, start, default, options,
                    states: whole ? buffers.Rent<T>((long)members.Length * steps * s) : null);
                summaries.Add(new SolveSummary(result.Method, result.FallbackMethod, result.Status, result.Iterations, result.MaxResidual, result.Message,
                    members.Length, steps));
                if (!(whole && target.TryAdopt(result.States)))
                {
                    target.WriteSequences(members, result.States, steps, reversed, Engines.SolverSettings<T>.Cores(options) >= 2);
                }

                for (int q = 0; q < members.Length; q++)
                {
                    target.Last(members[q], result.State(q, steps - 1));
                }
            }

            return summaries;
        }
    }
}

/// <summary>What one solve inside an ONNX run did: the method, its fallback, the status, the residual, and its sequences and steps.</summary>
/// <param name="Method">The method that ran (Auto resolved).</param>
/// <param name="FallbackMethod">The loop, where the method failed on some sequences; else null.</param>
/// <param name="Status">How it ended.</param>
/// <param name="Iterations">Updates applied.</param>
/// <param name="MaxResidual">The residual of the returned states.</param>
/// <param name="Message">The solve's message.</param>
/// <param name="Sequences">Sequences solved together.</param>
/// <param name="Steps">Their length.</param>
public sealed record SolveSummary(SolveMethod Method, SolveMethod? FallbackMethod, SolveStatus Status, int Iterations, double MaxResidual, string Message,
    int Sequences, int Steps);
