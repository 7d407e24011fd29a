using System.Runtime.Intrinsics;

namespace DeerSharp.Training;

/// <summary>
/// One core's share of a <see cref="GilrLstmTrainer"/> call: whole sequences, one after another, each forward over its
/// chunks (saving every layer's h~ and c at each chunk's start) and then back from the last chunk, recomputing each
/// chunk's forward from its checkpoint. Its rows and gradient accumulators live as long as the trainer.
/// </summary>
internal sealed class GilrLstmWorker
{
    private readonly GilrLstmPacked[] _layers;
    private readonly GilrLstmBuffers[] _buffers;
    private readonly float[][] _carryHs, _carryC;
    private readonly int _steps, _np;
    private readonly bool _wide;

    public GilrLstmWorker(GilrLstmPacked[] layers, int steps, int lanes)
    {
        (_layers, _steps, _np, _wide) = (layers, steps, layers[0].Np, lanes == Simd512.Count && Simd512.IsAccelerated);
        _buffers = [.. layers.Select(l => new GilrLstmBuffers(l, steps))];
        _carryHs = [.. layers.Select(_ => new float[_np])];
        _carryC = [.. layers.Select(_ => new float[_np])];
    }

    public void ClearGradients()
    {
        foreach (GilrLstmBuffers b in _buffers)
        {
            b.ClearGradients();
        }
    }

    /// <summary>Adds this worker's gradients to <paramref name="gradients"/>.</summary>
    public void Scatter(ParameterSet<float> gradients)
    {
        for (int l = 0; l < _layers.Length; l++)
        {
            _layers[l].Scatter(_buffers[l].GradInputT, _buffers[l].GradHiddenT, _buffers[l].GradBias, gradients, l);
        }
    }

    /// <summary>Sequence <paramref name="b"/>: its loss and accuracy into <paramref name="head"/>, and its gradient into this worker's sums.</summary>
    public void Run(OneHotSequences inputs, int b, int label, Head head, bool withGradient, float[] checkpoints, CancellationToken cancellationToken)
    {
        int length = inputs.Length, chunks = (length + _steps - 1) / _steps;
        var symbols = new ReadOnlyMemory<int>(inputs.Symbols, b * length, length);
        var values = new ReadOnlyMemory<float>(inputs.Values, b * length, length);
        Memory<float> saved = checkpoints.AsMemory((int)((long)b * chunks * _layers.Length * 2 * _np), chunks * _layers.Length * 2 * _np);
        for (int l = 0; l < _layers.Length; l++)
        {
            Array.Clear(_carryHs[l]);
            Array.Clear(_carryC[l]);
        }

        for (int k = 0; k < chunks; k++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            ForwardChunk(k, symbols, values, saved.Span, fromCheckpoint: false);
        }

        int last = length - (chunks - 1) * _steps;
        float[] top = _buffers[^1].H;
        ReadOnlySpan<float> dh = head.Forward(b, label, top.AsSpan((last - 1) * _np, _layers[^1].N));
        if (!withGradient)
        {
            return;
        }

        foreach (GilrLstmBuffers buffer in _buffers)
        {
            Array.Clear(buffer.DHs);
            Array.Clear(buffer.DC);
        }

        for (int k = chunks - 1; k >= 0; k--)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int count = Math.Min(_steps, length - k * _steps);
            if (k != chunks - 1)
            {
                ForwardChunk(k, symbols, values, saved.Span, fromCheckpoint: true);
            }

            GilrLstmBuffers topBuffer = _buffers[^1];
            Array.Clear(topBuffer.DH, 0, count * _np);
            if (k == chunks - 1)
            {
                dh.CopyTo(topBuffer.DH.AsSpan((count - 1) * _np));
            }

            for (int l = _layers.Length - 1; l >= 0; l--)
            {
                ReadOnlySpan<float> below = l > 0 ? _buffers[l - 1].H : default;
                Span<float> belowAdjoint = l > 0 ? _buffers[l - 1].DH : default;
                ReadOnlySpan<int> s = symbols.Span.Slice(k * _steps, count);
                ReadOnlySpan<float> v = values.Span.Slice(k * _steps, count);
                if (_wide)
                {
                    GilrLstmChunk.Backward<Simd512, Vector512<float>>(_layers[l], _buffers[l], s, v, below, belowAdjoint, count);
                }
                else
                {
                    GilrLstmChunk.Backward<Simd256, Vector256<float>>(_layers[l], _buffers[l], s, v, below, belowAdjoint, count);
                }
            }
        }
    }

    /// <summary>Chunk <paramref name="k"/> through every layer: from the carries (saving them), or from its checkpoint.</summary>
    private void ForwardChunk(int k, ReadOnlyMemory<int> symbols, ReadOnlyMemory<float> values, Span<float> saved, bool fromCheckpoint)
    {
        int count = Math.Min(_steps, symbols.Length - k * _steps);
        ReadOnlySpan<int> s = symbols.Span.Slice(k * _steps, count);
        ReadOnlySpan<float> v = values.Span.Slice(k * _steps, count);
        for (int l = 0; l < _layers.Length; l++)
        {
            GilrLstmBuffers b = _buffers[l];
            Span<float> at = saved.Slice((k * _layers.Length + l) * 2 * _np, 2 * _np);
            if (fromCheckpoint)
            {
                at[.._np].CopyTo(b.Hs);
                at[_np..].CopyTo(b.C);
            }
            else
            {
                _carryHs[l].CopyTo(b.Hs, 0);
                _carryC[l].CopyTo(b.C, 0);
                _carryHs[l].CopyTo(at);
                _carryC[l].CopyTo(at[_np..]);
            }

            ReadOnlySpan<float> below = l > 0 ? _buffers[l - 1].H : default;
            if (_wide)
            {
                GilrLstmChunk.Forward<Simd512, Vector512<float>>(_layers[l], b, s, v, below, count);
            }
            else
            {
                GilrLstmChunk.Forward<Simd256, Vector256<float>>(_layers[l], b, s, v, below, count);
            }

            if (!fromCheckpoint)
            {
                b.Hs.AsSpan(count * _np, _np).CopyTo(_carryHs[l]);
                b.C.AsSpan(count * _np, _np).CopyTo(_carryC[l]);
            }
        }
    }
}

/// <summary>The linear head and softmax cross-entropy over a batch: one slot per sequence, so workers never share one.</summary>
internal sealed class Head(float[] weight, float[] bias, int hidden, int classes, int batch)
{
    private readonly double[] _loss = new double[batch];
    private readonly bool[] _correct = new bool[batch];
    private readonly double[] _dLogits = new double[batch * classes];
    private readonly float[] _h = new float[batch * hidden];
    private readonly float[][] _dh = [.. Enumerable.Range(0, batch).Select(_ => new float[hidden])];

    public double Loss => _loss.Sum();

    public double Accuracy => (double)_correct.Count(c => c) / batch;

    /// <summary>Sequence <paramref name="b"/>'s loss share from its last output <paramref name="h"/>; returns ∂loss/∂h.</summary>
    public ReadOnlySpan<float> Forward(int b, int label, ReadOnlySpan<float> h)
    {
        h.CopyTo(_h.AsSpan(b * hidden));
        Span<double> logits = _dLogits.AsSpan(b * classes, classes);
        for (int k = 0; k < classes; k++)
        {
            double z = bias[k];
            for (int j = 0; j < hidden; j++)
            {
                z += (double)weight[k * hidden + j] * h[j];
            }

            logits[k] = z;
        }

        double max = double.NegativeInfinity, sum = 0;
        int best = 0;
        for (int k = 0; k < classes; k++)
        {
            (max, best) = logits[k] > max ? (logits[k], k) : (max, best);
        }

        for (int k = 0; k < classes; k++)
        {
            sum += Math.Exp(logits[k] - max);
        }

        _loss[b] = -(logits[label] - max - Math.Log(sum)) / batch;
        _correct[b] = best == label;
        float[] dh = _dh[b];
        Array.Clear(dh);
        for (int k = 0; k < classes; k++)
        {
            logits[k] = (Math.Exp(logits[k] - max) / sum - (k == label ? 1 : 0)) / batch;
            for (int j = 0; j < hidden; j++)
            {
                dh[j] += (float)(logits[k] * weight[k * hidden + j]);
            }
        }

        return dh;
    }

    /// <summary>Adds the head's own gradient: ∂logits ⊗ h and ∂logits.</summary>
    public void Scatter(ParameterSet<float> gradients)
    {
        float[] gw = gradients["head.weight"], gb = gradients["head.bias"];
        for (int b = 0; b < batch; b++)
        {
            for (int k = 0; k < classes; k++)
            {
                double dz = _dLogits[b * classes + k];
                gb[k] += (float)dz;
                for (int j = 0; j < hidden; j++)
                {
                    gw[k * hidden + j] += (float)(dz * _h[b * hidden + j]);
                }
            }
        }
    }
}
