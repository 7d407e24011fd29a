namespace DeerSharp.Training;

/// <summary>
/// One GILR-LSTM layer's weights laid out for <see cref="GilrLstmChunk"/>: the hidden size padded to a whole number of
/// vectors (np), and the input rows [U; V; W_ih] stacked as six segments of np (gate, impulse, i, f, z, o), each in the
/// orientation its product reads. Padding is zero, so padded units stay zero forward and get zero gradients.
/// </summary>
internal sealed class GilrLstmPacked
{
    private static readonly string[] Names = ["surrogate.gate.weight", "surrogate.gate.bias", "surrogate.impulse.weight",
        "surrogate.impulse.bias", "weight_ih", "weight_hh", "bias"];

    public GilrLstmPacked(int inputSize, int hiddenSize, int lanes, bool oneHot)
    {
        (D, N, OneHot) = (inputSize, hiddenSize, oneHot);
        Np = (hiddenSize + lanes - 1) / lanes * lanes;
        // A one-hot layer's rows are gathered by symbol; a dense layer reads the layer below, padded to np.
        Rows = oneHot ? inputSize : Np;
        InputT = new float[Rows * 6 * Np];
        Input = oneHot ? [] : new float[6 * Np * Rows];
        HiddenT = new float[Np * 4 * Np];
        Hidden = new float[4 * Np * Np];
        Bias = new float[6 * Np];
    }

    public int D { get; }

    public int N { get; }

    public int Np { get; }

    public bool OneHot { get; }

    /// <summary>Rows of <see cref="InputT"/>: d for a one-hot layer, np for one that reads a layer below.</summary>
    public int Rows { get; }

    /// <summary>[Rows, 6np]: row k holds column k of [U; V; W_ih].</summary>
    public float[] InputT { get; }

    /// <summary>[6np, Rows]: [U; V; W_ih] itself, for ∂x (dense layers only).</summary>
    public float[] Input { get; }

    /// <summary>[np, 4np]: W_hhᵀ.</summary>
    public float[] HiddenT { get; }

    /// <summary>[4np, np]: W_hh.</summary>
    public float[] Hidden { get; }

    /// <summary>[6np]: [b_g; b_i; bias].</summary>
    public float[] Bias { get; }

    /// <summary>Copies layer <paramref name="layer"/>'s current values from <paramref name="parameters"/>.</summary>
    public void Load(ParameterSet<float> parameters, int layer)
    {
        float[][] p = [.. Names.Select(name => parameters[LayerNames.Of(name, layer)])];
        int n = N, d = D, np = Np;
        for (int s = 0; s < 6; s++)
        {
            for (int j = 0; j < n; j++)
            {
                for (int k = 0; k < d; k++)
                {
                    float w = InputWeight(p, s, j, k);
                    InputT[k * 6 * np + s * np + j] = w;
                    if (!OneHot)
                    {
                        Input[(s * np + j) * Rows + k] = w;
                    }
                }

                Bias[s * np + j] = s switch { 0 => p[1][j], 1 => p[3][j], _ => p[6][(s - 2) * n + j] };
            }
        }

        for (int g = 0; g < 4; g++)
        {
            for (int j = 0; j < n; j++)
            {
                for (int k = 0; k < n; k++)
                {
                    float w = p[5][(g * n + j) * n + k];
                    HiddenT[k * 4 * np + g * np + j] = w;
                    Hidden[(g * np + j) * np + k] = w;
                }
            }
        }
    }

    /// <summary>Adds gradients in this layout (<see cref="InputT"/>'s, <see cref="HiddenT"/>'s, <see cref="Bias"/>'s) to layer <paramref name="layer"/>'s arrays.</summary>
    public void Scatter(float[] inputT, float[] hiddenT, float[] bias, ParameterSet<float> gradients, int layer)
    {
        float[][] g = [.. Names.Select(name => gradients[LayerNames.Of(name, layer)])];
        int n = N, d = D, np = Np;
        for (int s = 0; s < 6; s++)
        {
            for (int j = 0; j < n; j++)
            {
                for (int k = 0; k < d; k++)
                {
                    float v = inputT[k * 6 * np + s * np + j];
                    switch (s)
                    {
                        case 0: g[0][j * d + k] += v; break;
                        case 1: g[2][j * d + k] += v; break;
                        default: g[4][((s - 2) * n + j) * d + k] += v; break;
                    }
                }

                float b = bias[s * np + j];
                switch (s)
                {
                    case 0: g[1][j] += b; break;
                    case 1: g[3][j] += b; break;
                    default: g[6][(s - 2) * n + j] += b; break;
                }
            }
        }

        for (int r = 0; r < 4; r++)
        {
            for (int j = 0; j < n; j++)
            {
                for (int k = 0; k < n; k++)
                {
                    g[5][(r * n + j) * n + k] += hiddenT[k * 4 * np + r * np + j];
                }
            }
        }
    }

    private float InputWeight(float[][] p, int segment, int j, int k) => segment switch
    {
        0 => p[0][j * D + k],
        1 => p[2][j * D + k],
        _ => p[4][((segment - 2) * N + j) * D + k],
    };
}
