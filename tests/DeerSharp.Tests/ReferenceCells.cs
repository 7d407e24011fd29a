using System.Numerics;
using DeerSharp.Cells;

namespace DeerSharp.Tests;

/// <summary>
/// PyTorch's RNN, GRU and LSTM equations written out plainly, generic over the number type: an implementation
/// independent of the library's cells. On double it is the sequential oracle; on Dual it gives AD Jacobians.
/// </summary>
internal readonly struct ReferenceCell(string kind, RecurrentWeights<double> w) : IRecurrence
{
    public int StateSize => kind == "lstm" ? 2 * w.HiddenSize : w.HiddenSize;

    public int InputSize => w.InputSize;

    public void Apply<TNum>(ReadOnlySpan<TNum> state, ReadOnlySpan<TNum> input, Span<TNum> next)
        where TNum : IFloatingPointIeee754<TNum>
    {
        int n = w.HiddenSize;
        int g = w.Gates;
        // pre_ih[r] = W_ih[r] x + b_ih[r], pre_hh[r] = W_hh[r] h + b_hh[r], for all G·n rows.
        Span<TNum> ih = new TNum[g * n], hh = new TNum[g * n];
        for (int r = 0; r < g * n; r++)
        {
            TNum a = TNum.CreateTruncating(w.BiasIH[r]);
            for (int j = 0; j < w.InputSize; j++)
            {
                a += TNum.CreateTruncating(w.WeightIH[r * w.InputSize + j]) * input[j];
            }

            TNum b = TNum.CreateTruncating(w.BiasHH[r]);
            for (int j = 0; j < n; j++)
            {
                b += TNum.CreateTruncating(w.WeightHH[r * n + j]) * state[j];
            }

            ih[r] = a;
            hh[r] = b;
        }

        for (int i = 0; i < n; i++)
        {
            switch (kind)
            {
                case "rnn":
                    next[i] = TNum.Tanh(ih[i] + hh[i]);
                    break;
                case "gru":
                    TNum r = Sigmoid(ih[i] + hh[i]);
                    TNum z = Sigmoid(ih[n + i] + hh[n + i]);
                    TNum nn = TNum.Tanh(ih[2 * n + i] + r * hh[2 * n + i]);
                    next[i] = (TNum.One - z) * nn + z * state[i];
                    break;
                default:
                    TNum ig = Sigmoid(ih[i] + hh[i]);
                    TNum fg = Sigmoid(ih[n + i] + hh[n + i]);
                    TNum gg = TNum.Tanh(ih[2 * n + i] + hh[2 * n + i]);
                    TNum og = Sigmoid(ih[3 * n + i] + hh[3 * n + i]);
                    TNum c = fg * state[n + i] + ig * gg;
                    next[n + i] = c;
                    next[i] = og * TNum.Tanh(c);
                    break;
            }
        }
    }

    private static TNum Sigmoid<TNum>(TNum x)
        where TNum : IFloatingPointIeee754<TNum> => TNum.One / (TNum.One + TNum.Exp(-x));
}

/// <summary>A built-in cell of either element type, with the same weights as a <see cref="ReferenceCell"/>.</summary>
internal static class Cells
{
    public static readonly string[] Kinds = ["rnn", "gru", "lstm"];

    public static int Gates(string kind) => kind switch { "rnn" => 1, "gru" => 3, _ => 4 };

    public static RecurrentWeights<double> Weights(string kind, int d, int n, Random random, double scale = 1.0, bool bias = true) =>
        RecurrentWeights<double>.Random(Gates(kind), n, d, random, scale, bias);

    public static RecurrentWeights<T> Convert<T>(RecurrentWeights<double> w)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        static T[] C(double[] v) => [.. v.Select(T.CreateTruncating)];
        return new RecurrentWeights<T>(w.Gates, w.HiddenSize, w.InputSize, C(w.WeightIH), C(w.WeightHH), C(w.BiasIH), C(w.BiasHH));
    }

    /// <summary>Runs <paramref name="body"/> with the built-in cell of <paramref name="kind"/> as a struct type argument.</summary>
    public static TResult With<T, TResult>(string kind, RecurrentWeights<double> w, ICellFunc<T, TResult> body)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        RecurrentWeights<T> wt = Convert<T>(w);
        return kind switch
        {
            "rnn" => body.Invoke(new TanhRnnCell<T>(wt)),
            "gru" => body.Invoke(new GruCell<T>(wt)),
            _ => body.Invoke(new LstmCell<T>(wt)),
        };
    }

    /// <summary>The sequential reference, in double, from the independent equations.</summary>
    public static double[] ReferenceStates(string kind, RecurrentWeights<double> w, double[] x, int length, double[]? h0 = null)
    {
        var cell = new ReferenceCell(kind, w);
        int s = cell.StateSize, d = cell.InputSize;
        var states = new double[length * s];
        double[] previous = h0 ?? new double[s];
        for (int t = 0; t < length; t++)
        {
            cell.Apply<double>(previous, x.AsSpan(t * d, d), states.AsSpan(t * s, s));
            previous = states[(t * s)..((t + 1) * s)];
        }

        return states;
    }
}

/// <summary>A generic callback over the cell type, so tests run the same body on each struct cell.</summary>
internal interface ICellFunc<T, out TResult>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    TResult Invoke<TCell>(TCell cell)
        where TCell : IRecurrentCell<T>;
}
