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

        XDocument svg = XDocument.Load(_dir.File("bench.svg"));
        Assert.Equal("svg", svg.Root!.Name.LocalName);
        byte[] png = File.ReadAllBytes(_dir.File("bench.png"));
        Assert.True(png.Length > 4096 && png.AsSpan(0, 8).SequenceEqual(PngSignature), $"bench.png: {png.Length} bytes");
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
