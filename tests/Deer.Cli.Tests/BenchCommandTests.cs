using System.Text.Json;
using System.Xml.Linq;

namespace DeerSharp.Cli.Tests;

/// <summary>`deer bench --quick` writes its three outputs, well formed. It asserts nothing about speed: benchmarks measure that.</summary>
public sealed class BenchCommandTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Quick_bench_writes_markdown_json_and_svg()
    {
        Cli.Outcome r = Cli.Run("bench", "--quick", "--no-peers", "--repeats", "1", "--out-dir", _dir.Path);
        Assert.True(r.ExitCode == 0, r.ToString());
        string md = File.ReadAllText(_dir.File("bench.md"));
        Assert.Contains("Diagonal scan against a memory copy", md, StringComparison.Ordinal);
        Assert.Contains("PyTorch peer skipped", md, StringComparison.Ordinal);
        using JsonDocument json = JsonDocument.Parse(File.ReadAllText(_dir.File("bench.json")));
        Assert.True(json.RootElement.GetProperty("quick").GetBoolean());
        Assert.True(json.RootElement.GetProperty("scan").GetArrayLength() >= 4);
        Assert.True(json.RootElement.GetProperty("rnn").GetArrayLength() >= 10);
        Assert.True(json.RootElement.GetProperty("sweep").GetArrayLength() >= 4);
        foreach (JsonElement row in json.RootElement.GetProperty("rnn").EnumerateArray())
        {
            Assert.True(row.GetProperty("converged").GetBoolean(), row.ToString());
            Assert.True(row.GetProperty("max_abs_diff_vs_sequential").GetDouble() <= 1e-4, row.ToString());
        }

        // The cold section ran this very deer as fresh processes; their states equal the in-process solve's (same code,
        // same inputs, the deterministic loop: 0 expected, 1e-6 allowed).
        Assert.Equal(2, json.RootElement.GetProperty("cold").GetArrayLength());
        foreach (JsonElement row in json.RootElement.GetProperty("cold").EnumerateArray())
        {
            Assert.True(row.GetProperty("cold_solve_seconds_median").GetDouble() > 0 && row.GetProperty("warm_solve_seconds_median").GetDouble() > 0, row.ToString());
            Assert.True(row.GetProperty("max_abs_diff_cold_vs_warm").GetDouble() <= 1e-6, row.ToString());
        }

        Assert.Contains("Cold start: `deer run` as a fresh process", md, StringComparison.Ordinal);

        // The training step: the trainer, the general path and the LSTM, the GILR-LSTM rows with their floor.
        Assert.Equal(3, json.RootElement.GetProperty("train").GetArrayLength());
        foreach (JsonElement row in json.RootElement.GetProperty("train").EnumerateArray().Take(2))
        {
            Assert.True(row.GetProperty("seconds_median").GetDouble() > 0 && row.GetProperty("floor_seconds").GetDouble() > 0, row.ToString());
        }

        Assert.Contains("One training step of the memorisation task", md, StringComparison.Ordinal);

        // The gradient section: five cases with a peer and three linear surrogates, each with its floor, no peer under --no-peers.
        Assert.Equal(8, json.RootElement.GetProperty("grad").GetArrayLength());
        foreach (JsonElement row in json.RootElement.GetProperty("grad").EnumerateArray())
        {
            Assert.True(row.GetProperty("gradient_seconds_median").GetDouble() > 0 && row.GetProperty("floor_seconds").GetDouble() > 0, row.ToString());
            Assert.Equal(JsonValueKind.Null, row.GetProperty("torch_seconds_median").ValueKind);
        }

        Assert.Contains("The gradient through a sequential solve (BPTT)", md, StringComparison.Ordinal);
        XDocument svg = XDocument.Load(_dir.File("bench.svg"));
        Assert.Equal("svg", svg.Root!.Name.LocalName);
        byte[] png = File.ReadAllBytes(_dir.File("bench.png"));
        Assert.True(png.Length > 4096 && png.AsSpan(0, 8).SequenceEqual(PngSignature), $"bench.png: {png.Length} bytes");

        // The chart redrawn from the run's JSON alone.
        string again = Path.Combine(_dir.Path, "again");
        Cli.Outcome redraw = Cli.Run("bench", "--chart-from", _dir.File("bench.json"), "--out-dir", again);
        Assert.True(redraw.ExitCode == 0, redraw.ToString());
        Assert.True(File.ReadAllBytes(Path.Combine(again, "bench.png")).AsSpan(0, 8).SequenceEqual(PngSignature));
        Assert.Equal(2, Cli.Run("bench", "--chart-from", _dir.File("bench.md"), "--out-dir", again).ExitCode);
    }

    [Fact]
    public void Onnx_cold_bench_runs_deer_and_OnnxRuntime_as_processes_and_they_agree()
    {
        // PyTorch exports the models where it is installed, Deer otherwise; either way both programs read the same file.
        Cli.Outcome r = Cli.Run("bench", "--only", "onnx-cold", "--quick", "--repeats", "1", "--out-dir", _dir.Path);
        Assert.True(r.ExitCode == 0, r.ToString());
        using JsonDocument json = JsonDocument.Parse(File.ReadAllText(_dir.File("bench.json")));
        Assert.Equal(2, json.RootElement.GetProperty("onnx_cold").GetArrayLength());
        foreach (JsonElement row in json.RootElement.GetProperty("onnx_cold").EnumerateArray())
        {
            Assert.True(row.GetProperty("max_abs_diff").GetDouble() <= 1e-5, row.ToString());   // float32, T = 4096
            Assert.True(row.GetProperty("deer_first_inference_seconds_median").GetDouble() > 0 && row.GetProperty("ort_first_inference_seconds_median").GetDouble() > 0, row.ToString());
            Assert.Equal("1.32.0", row.GetProperty("onnxruntime").GetString());
        }

        Assert.Contains("Cold start with an ONNX model", File.ReadAllText(_dir.File("bench.md")), StringComparison.Ordinal);
    }

    /// <summary>
    /// `deer bench --only grad` with PyTorch: Deer's float32 gradient through the loop and BPTT against autograd's on the
    /// same weights, inputs and cotangent (an independent implementation), every case within 1e-4 of the largest entry.
    /// </summary>
    [TorchFact]
    public void Grad_bench_agrees_with_PyTorch_autograd()
    {
        Cli.Outcome r = Cli.Run("bench", "--only", "grad", "--quick", "--repeats", "1", "--out-dir", _dir.Path);
        Assert.True(r.ExitCode == 0, r.ToString());
        using JsonDocument json = JsonDocument.Parse(File.ReadAllText(_dir.File("bench.json")));
        // PyTorch ships no GILR, GILR-LSTM or SRU: those rows have no peer.
        JsonElement[] peered = [.. json.RootElement.GetProperty("grad").EnumerateArray().Where(row => row.GetProperty("case").GetString()!.Split(' ')[0] is "GRU" or "LSTM")];
        Assert.Equal(5, peered.Length);
        foreach (JsonElement row in peered)
        {
            Assert.True(row.GetProperty("torch_seconds_median").ValueKind == JsonValueKind.Number, row.ToString());
            Assert.True(row.GetProperty("max_relative_diff").GetDouble() <= 1e-4, row.ToString());
        }
    }

    private static readonly byte[] PngSignature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    [Fact]
    public void Bad_repeats_are_refused()
    {
        Cli.Outcome r = Cli.Run("bench", "--repeats", "0", "--out-dir", _dir.Path);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--repeats", r.Stderr, StringComparison.Ordinal);
    }
}

/// <summary>The bench's statistics (MathNet.Numerics) on samples whose answers are known by hand.</summary>
public sealed class BenchStatisticsTests
{
    [Fact]
    public void Median_quartiles_and_the_median_confidence_interval()
    {
        // Ten runs 1..10 (shuffled): median 5.5; P(1 ≤ Binomial(10, ½) ≤ 8) = 0.979 ≥ 0.95 but P(2 ≤ B ≤ 7) = 0.891, so the
        // 95% interval for the median is [x(2), x(9)] = [2, 9] in 1-based order statistics.
        var t = Bench.Stopwatches.Timing.Of([7, 3, 10, 1, 5, 9, 2, 8, 4, 6]);
        Assert.Equal(5.5, t.Median);
        Assert.Equal(1, t.Min);
        Assert.Equal(10, t.Runs);
        Assert.Equal((2.0, 9.0), (t.MedianCiLow, t.MedianCiHigh));
        Assert.True(t.LowerQuartile is > 2 and < 4 && t.UpperQuartile is > 7 and < 9, $"{t.LowerQuartile}, {t.UpperQuartile}");

        // Three runs are too few for a 95% interval: it is the whole range.
        var three = Bench.Stopwatches.Timing.Of([0.3, 0.1, 0.2]);
        Assert.Equal((0.1, 0.3), (three.MedianCiLow, three.MedianCiHigh));
        Assert.Equal(0.2, three.Median);
    }
}
