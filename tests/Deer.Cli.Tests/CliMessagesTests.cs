using System.Text.RegularExpressions;
using DeerSharp.Cells;
using DeerSharp.IO;

namespace DeerSharp.Cli.Tests;

/// <summary>
/// What the command line says names the command line: a solve that did not converge suggests flags (--max-iter,
/// --method, --fallback), never API names (MaxIterations, SolveMethod.Deer), and never the method that just failed; a
/// mistyped command or flag gets "did you mean".
/// </summary>
public sealed partial class CliMessagesTests
{
    [GeneratedRegex(@"SolveMethod|MaxIterations|FallbackPolicy|SolveOptions|AdjointMethod|Device = ")]
    private static partial Regex ApiName();

    [Theory]
    [InlineData("deer")]
    [InlineData("quasi-deer")]
    [InlineData("picard")]
    [InlineData("quasi-elk")]
    public void A_solve_that_did_not_converge_suggests_flags_and_another_method(string method)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        using var dir = new TempDir();
        const int N = 8, D = 3, T = 400;
        RecurrentWeights<float> w = RecurrentWeights<float>.Random(3, N, D, random);
        SafetensorsFile.Write(dir.File("gru.safetensors"), new Dictionary<string, TensorData>
        {
            ["weight_ih_l0"] = TensorData.FromSingle(w.WeightIH, 3 * N, D),
            ["weight_hh_l0"] = TensorData.FromSingle(w.WeightHH, 3 * N, N),
        });
        Npy.Write(dir.File("x.npy"), TensorData.FromSingle([.. Enumerable.Range(0, T * D).Select(_ => (float)((random.NextDouble() * 4) - 2))], T, D));
        Cli.Outcome r = Cli.Run("run", "--cell", "gru", "--weights", dir.File("gru.safetensors"), "--inputs", dir.File("x.npy"), "--method", method,
            "--max-iter", "1", "--out", dir.File("y.npy"));
        Assert.True(r.ExitCode == 3, $"seed {seed}: {r}");
        Assert.DoesNotMatch(ApiName(), r.Stderr);
        Assert.Contains("--max-iter", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("--fallback sequential", r.Stderr, StringComparison.Ordinal);
        string suggestions = r.Stderr[r.Stderr.IndexOf("or use ", StringComparison.Ordinal)..];
        Assert.DoesNotMatch($"--method {Regex.Escape(method)}(?![\\w-])", suggestions);
        Assert.Contains("--method sequential", suggestions, StringComparison.Ordinal);
    }

    [Fact]
    public void Memory_and_device_advice_names_flags()
    {
        string[] library =
        [
            "One step of Deer needs 800 bytes of working memory, over the memory budget of 10 bytes; raise SolveOptions.MemoryBudgetBytes or use SolveMethod.QuasiDeer.",
            "One step of the Scan adjoint needs 800 bytes of working memory, over the memory budget of 10 bytes; raise SolveOptions.MemoryBudgetBytes or use AdjointMethod.Sequential.",
            "One step of Deer on the Gpu backend needs 800 bytes of device memory, over the budget of 10 bytes; raise SolveOptions.MemoryBudgetBytes or use Device = Cpu.",
            "Gpu: no CUDA device. Use Device = Cpu or Auto.",
            "Diverged: an iterate became NaN or infinite at iteration 3. Newton iterations can diverge on non-contractive recurrences; use SolveMethod.QuasiElk (damped), SolveMethod.Sequential, or FallbackPolicy.Sequential.",
        ];
        foreach (string message in library)
        {
            string cli = CliTerms.Translate(message);
            Assert.DoesNotMatch(ApiName(), cli);
            Assert.Contains("--", cli, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("run --cell gru --weights w.safetensors --input x.npy --out y.npy", "Did you mean --inputs (not --input)?")]
    [InlineData("run --cell gru --weights w.safetensors --inputs x.npy --max-iters 3 --out y.npy", "Did you mean --max-iter (not --max-iters)?")]
    [InlineData("run --cell gru --weigths w.safetensors --inputs x.npy --out y.npy", "Did you mean --weights (not --weigths)?")]
    [InlineData("ode --sytem van-der-pol --y0 y0.npy --times t.npy --out y.npy", "Did you mean --system (not --sytem)?")]
    [InlineData("rnu --cell gru", "Did you mean 'deer run'?")]
    [InlineData("exprot --cell gru", "Did you mean 'deer export'?")]
    public void A_mistyped_command_or_flag_gets_did_you_mean(string line, string expected)
    {
        Cli.Outcome r = Cli.Run(line.Split(' '));
        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains(expected, r.Stderr, StringComparison.Ordinal);
        Assert.Single(r.Stderr.Trim().Split('\n'));
    }
}
