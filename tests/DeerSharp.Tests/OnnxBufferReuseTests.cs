using DeerSharp.Cells;
using DeerSharp.IO;
using DeerSharp.Onnx;

namespace DeerSharp.Tests;

/// <summary>
/// A disposed <see cref="OnnxRunResult"/> gives its arrays (the solve's states, an LSTM's Y) back to the model, and the
/// next run writes into them: its outputs must still equal the loop's on its own inputs, exactly, with nothing left over
/// from the run before.
/// </summary>
public class OnnxBufferReuseTests
{
    /// <remarks>
    /// T = 12,000 makes the LSTM's Y (B·T·N values, copied out of the states) large enough to be copied on two cores.
    /// </remarks>
    [Theory]
    [InlineData(RecurrentKind.Gru, 700)]
    [InlineData(RecurrentKind.Lstm, 700)]
    [InlineData(RecurrentKind.Lstm, 12_000)]
    public void Runs_after_a_disposed_run_give_the_loops_numbers(RecurrentKind kind, int T) => Seeded.Run(rnd =>
    {
        const int B = 3, D = 5, N = 16;
        var weights = RecurrentWeights<float>.Random(kind == RecurrentKind.Gru ? 3 : 4, N, D, rnd);
        string path = Path.Combine(Path.GetTempPath(), $"deer-reuse-{Guid.NewGuid():N}.onnx");
        try
        {
            OnnxExport.Write(path, kind, [[weights]]);
            OnnxModel model = OnnxModel.Load(path);
            var options = new SolveOptions { Method = SolveMethod.Sequential };
            for (int round = 0; round < 3; round++)
            {
                float[] x = Numbers.As<float>(Numbers.Uniform(rnd, B * T * D, 1.0 + round));
                using OnnxRunResult run = model.Run(new Dictionary<string, TensorData> { [model.Inputs[0].Name] = TensorData.FromSingle(x, B, T, D) }, options);
                float[] y = run.Outputs[model.Outputs[0].Name].ToArray<float>();
                SolveResult<float> loop = kind == RecurrentKind.Gru
                    ? Deer.Solve(new GruCell<float>(weights), x.AsSpan(), B, T, options)
                    : Deer.Solve(new LstmCell<float>(weights), x.AsSpan(), B, T, options);
                float[] expected = loop.Outputs();
                Assert.Equal(expected.Length, y.Length);
                for (int i = 0; i < y.Length; i++)
                {
                    Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(y[i]),
                        $"{kind} round {round}: output {i} is {y[i]:R}, the loop's is {expected[i]:R}");
                }
            }
        }
        finally
        {
            File.Delete(path);
        }
    });
}
