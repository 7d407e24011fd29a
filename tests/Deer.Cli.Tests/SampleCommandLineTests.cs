namespace DeerSharp.Cli.Tests;

/// <summary>
/// Every sample takes --help (exit 0, its options listed) and rejects a bad value, an out-of-range value and an unknown
/// option with one line on stderr and exit code 2, before any work starts. The samples run as the user runs them
/// (`dotnet Sample.dll`), from the build of this configuration.
/// </summary>
public sealed class SampleCommandLineTests
{
    public static TheoryData<string, string> Samples() => new()
    {
        { "GruClassifier", "--length" },
        { "Memorisation", "--lengths" },
        { "NeuralOde", "--steps" },
        { "StructuredGru", "--block" },
    };

    [Theory]
    [MemberData(nameof(Samples))]
    public void A_sample_takes_help_and_rejects_bad_values_in_one_line(string sample, string option)
    {
        (int code, string output) = Run(sample, "--help");
        Assert.True(code == 0, output);
        Assert.Contains(option, output, StringComparison.Ordinal);
        Assert.Contains("--batch", output, StringComparison.Ordinal);

        foreach (string[] bad in new[] { new[] { "--batch", "abc" }, ["--batch", "0"], ["--no-such-option", "1"], ["--batch"] })
        {
            (code, output) = Run(sample, bad);
            Assert.True(code == 2, $"{sample} {string.Join(' ', bad)}: exit {code}\n{output}");
            Assert.Single(output.Trim().Split('\n'));
            Assert.DoesNotContain("Exception", output, StringComparison.Ordinal);
            Assert.Contains("--help", output, StringComparison.Ordinal);
        }
    }

    /// <summary>
    /// The memorisation sample saves a checkpoint and the same command resumes from it: the second run reports the steps
    /// already done and stops at the new limit, counting them.
    /// </summary>
    [Fact]
    public void The_memorisation_sample_resumes_from_its_checkpoint()
    {
        string directory = Path.Combine(Path.GetTempPath(), "deer-memorisation-" + Guid.NewGuid().ToString("N"));
        try
        {
            string[] common = ["--lengths", "24", "--models", "gilr-lstm", "--batch", "4", "--checkpoint-dir", directory];
            (int code, string output) = Run("Memorisation", [.. common, "--max-steps", "3"]);
            Assert.True(code == 0, output);
            string checkpoint = Assert.Single(Directory.GetFiles(directory, "*.safetensors"));
            Assert.Contains("GILR-LSTM (trainer)", output, StringComparison.Ordinal);

            (code, output) = Run("Memorisation", [.. common, "--max-steps", "10"]);
            Assert.True(code == 0, output);
            Assert.Contains("3 steps done", output, StringComparison.Ordinal);
            Assert.Matches(@"GILR-LSTM \(trainer\)\s+24\s+(not converged|converged)\s+10\s", output);

            // The resumed run drew the batches an unbroken run draws, from the saved state: the same loss at step 10.
            (code, string unbroken) = Run("Memorisation", ["--lengths", "24", "--models", "gilr-lstm", "--batch", "4", "--max-steps", "10"]);
            Assert.True(code == 0, unbroken);
            static string Step10(string text) => text.Split('\n').Single(l => l.Contains("step    10 ", StringComparison.Ordinal))[..40];
            Assert.Equal(Step10(unbroken), Step10(output));
            Assert.Empty(Directory.GetFiles(directory, "*.tmp"));
            Assert.True(File.Exists(checkpoint));
        }
        finally
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
    }

    private static (int Code, string Output) Run(string sample, params string[] args)
    {
        // tests/Deer.Cli.Tests/bin/<configuration>/<framework>/ → samples/<sample>/bin/<configuration>/<framework>/<sample>.dll
        var here = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string framework = here.Name, configuration = here.Parent!.Name;
        string root = here.Parent.Parent!.Parent!.Parent!.Parent!.FullName;
        string dll = Path.Combine(root, "samples", sample, "bin", configuration, framework, sample + ".dll");
        Assert.True(File.Exists(dll), $"{dll} was not built");
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        return PythonTorch.Run(dotnet, [dll, .. args], TimeSpan.FromMinutes(1));
    }
}
