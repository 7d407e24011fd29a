using Xunit.Abstractions;
using DeerSharp.Tests;
using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using DeerSharp.Cells;
using DeerSharp.IO;

namespace DeerSharp.Cli.Tests;

/// <summary>
/// `deer run` on files made here: agreement with the library, every kind of bad input (exit 2, one line on stderr naming
/// the problem, nothing written), non-convergence (exit 3 unless --fallback), and `deer info`.
/// </summary>
public sealed class RunCommandTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly RecurrentWeights<double> _layer0, _layer1;
    private readonly double[] _x;

    private const int T = 120, D = 3, N = 5;

    public RunCommandTests(ITestOutputHelper output)
    {
        // xunit prints a failed test's output: the seed that made this class's weights and inputs.
        int seed = Seeded.NextSeed();
        output.WriteLine($"seed {seed} (rerun with DEER_TEST_SEED={seed})");
        var rnd = new Random(seed);
        _layer0 = RecurrentWeights<double>.Random(3, N, D, rnd);
        _layer1 = RecurrentWeights<double>.Random(3, N, N, rnd);
        _x = [.. Enumerable.Range(0, 2 * T * D).Select(_ => rnd.NextDouble() * 2 - 1)];
        WriteWeights("gru.safetensors", "", (_layer0, 0), (_layer1, 1));
        Npy.Write(_dir.File("x.npy"), TensorData.FromDouble(_x, 2, T, D));
        Npy.Write(_dir.File("x1.npy"), TensorData.FromDouble(_x[..(T * D)], T, D));
    }

    public void Dispose() => _dir.Dispose();

    private void WriteWeights(string name, string prefix, params (RecurrentWeights<double> W, int K)[] layers)
    {
        var tensors = new Dictionary<string, TensorData>();
        foreach (var (w, k) in layers)
        {
            tensors[$"{prefix}weight_ih_l{k}"] = TensorData.FromDouble(w.WeightIH, 3 * N, w.InputSize);
            tensors[$"{prefix}weight_hh_l{k}"] = TensorData.FromDouble(w.WeightHH, 3 * N, N);
            tensors[$"{prefix}bias_ih_l{k}"] = TensorData.FromDouble(w.BiasIH, 3 * N);
            tensors[$"{prefix}bias_hh_l{k}"] = TensorData.FromDouble(w.BiasHH, 3 * N);
        }

        SafetensorsFile.Write(_dir.File(name), tensors);
    }

    private string[] Args(params string[] extra) =>
        ["run", "--cell", "gru", "--weights", _dir.File("gru.safetensors"), "--inputs", _dir.File("x.npy"), "--out", _dir.File("h.npy"), .. extra];

    [Fact]
    public void Run_draws_the_convergence_figure()
    {
        Cli.Outcome r = Cli.Run(Args("--plot", _dir.File("conv.png")));
        Assert.True(r.ExitCode == 0, r.ToString());
        byte[] png = File.ReadAllBytes(_dir.File("conv.png"));
        Assert.True(png.Length > 4096 && png.AsSpan(0, 4).SequenceEqual((byte[])[0x89, 0x50, 0x4E, 0x47]), $"conv.png: {png.Length} bytes");
        Assert.True(Cli.Run(Args("--plot", _dir.File("conv.svg"))).ExitCode == 0);
        Assert.Contains("<svg", File.ReadAllText(_dir.File("conv.svg")), StringComparison.Ordinal);

        Cli.Outcome bad = Cli.Run(Args("--plot", _dir.File("conv.jpg")));
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("--plot", bad.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Run_matches_the_library_and_writes_a_report()
    {
        Cli.Outcome r = Cli.Run(Args("--method", "deer", "--report", _dir.File("r.json")));
        Assert.True(r.ExitCode == 0, r.ToString());
        TensorData h = Npy.Read(_dir.File("h.npy"));
        Assert.Equal([2, T, N], h.Shape);
        Assert.True(h.IsDouble);

        var stack = new StackedCells<GruCell<double>, double>(new GruCell<double>(_layer0), new GruCell<double>(_layer1));
        SolveResult<double> expected = Deer.Solve(stack, _x, 2, T, new SolveOptions { Method = SolveMethod.Sequential });
        double[] got = h.ToArray<double>();
        Assert.True(got.Zip(expected.Outputs()).Max(p => Math.Abs(p.First - p.Second)) <= 1e-9);

        using JsonDocument report = JsonDocument.Parse(File.ReadAllText(_dir.File("r.json")));
        Assert.Equal("deer", report.RootElement.GetProperty("method").GetString());
        Assert.Equal("cpu", report.RootElement.GetProperty("backend").GetString());
        Assert.True(report.RootElement.GetProperty("converged").GetBoolean());
        Assert.True(report.RootElement.GetProperty("solve_seconds").GetDouble() > 0);
        Assert.Equal(2, report.RootElement.GetProperty("layers").GetArrayLength());
        Assert.Empty(Directory.GetFiles(_dir.Path, "*.tmp"));
    }

    [Fact]
    public void Unbatched_inputs_give_unbatched_output_and_dtype_follows_the_option()
    {
        Cli.Outcome r = Cli.Run(["run", "--cell", "gru", "--weights", _dir.File("gru.safetensors"), "--inputs", _dir.File("x1.npy"),
            "--out", _dir.File("h1.npy"), "--dtype", "float32", "--method", "quasi-deer"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        TensorData h = Npy.Read(_dir.File("h1.npy"));
        Assert.Equal([T, N], h.Shape);
        Assert.False(h.IsDouble);
    }

    [Fact]
    public void Prefixed_keys_are_found_with_prefix()
    {
        WriteWeights("nested.safetensors", "encoder.rnn.", (_layer0, 0));
        string[] args = ["run", "--cell", "gru", "--weights", _dir.File("nested.safetensors"), "--inputs", _dir.File("x.npy"), "--out", _dir.File("p.npy")];
        Cli.Outcome without = Cli.Run(args);
        Assert.Equal(2, without.ExitCode);
        Assert.Contains("check the prefix", without.Stderr, StringComparison.Ordinal);
        Cli.Outcome with = Cli.Run([.. args, "--prefix", "encoder.rnn."]);
        Assert.True(with.ExitCode == 0, with.ToString());
    }

    public static TheoryData<string, string> BadInputs() => new()
    {
        { "missing-inputs", "no such file" },
        { "truncated-inputs", "truncated" },
        { "int-inputs", "'<i8'" },
        { "rank1-inputs", "expected shape [T, d] or [B, T, d]" },
        { "wrong-width", "input weights (…) expect 3" },
        { "nan-inputs", "NaN or infinity at [1, 7, 2]" },
        { "missing-key", "no tensor 'weight_hh_l0'" },
        { "int-weights", "dtype I64" },
        { "nan-weights", "'bias_hh_l1' holds NaN or infinity" },
        { "truncated-weights", "--weights" },
        { "not-safetensors", "not a readable safetensors file" },
        { "wrong-h0", "expected shape [2, 2, 5]" },
        { "c0-for-gru", "--c0 is only meaningful for --cell lstm, gilr-lstm or diag-lstm" },
        { "unknown-option", "--bogus" },
        { "unknown-method", "newton" },
        { "bad-number", "abc" },
        { "negative-atol", "--atol must be finite and non-negative" },
        { "missing-out-dir", "does not exist" },
        { "missing-required", "--out" },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void Bad_input_exits_2_with_one_line_and_writes_nothing(string scenario, string expected)
    {
        string[] args = Scenario(scenario);
        Cli.Outcome r = Cli.Run(args);
        Assert.True(r.ExitCode == 2, $"{scenario}: {r}");
        string[] lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"{scenario}: stderr should be one line: {r.Stderr}");
        Assert.Contains(expected, lines[0], StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", r.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(_dir.File("h.npy")), $"{scenario}: an output file was written");
        Assert.Empty(Directory.GetFiles(_dir.Path, "*.tmp"));
    }

    private string[] Scenario(string scenario)
    {
        string Bad(string name, byte[] bytes)
        {
            File.WriteAllBytes(_dir.File(name), bytes);
            return _dir.File(name);
        }

        string Replace(string option, string value)
        {
            string[] a = Args();
            a[Array.IndexOf(a, option) + 1] = value;
            return string.Join('\u0001', a);
        }

        string[] With(string option, string value) => Replace(option, value).Split('\u0001');
        byte[] x = File.ReadAllBytes(_dir.File("x.npy"));
        switch (scenario)
        {
            case "missing-inputs": return With("--inputs", _dir.File("nope.npy"));
            case "truncated-inputs": return With("--inputs", Bad("t.npy", x[..(x.Length - 9)]));
            case "int-inputs":
                string header = Encoding.Latin1.GetString(x, 0, 128).Replace("<f8", "<i8", StringComparison.Ordinal);
                return With("--inputs", Bad("i.npy", [.. Encoding.Latin1.GetBytes(header), .. x[128..]]));
            case "rank1-inputs":
                Npy.Write(_dir.File("r1.npy"), TensorData.FromDouble(new double[6], 6));
                return With("--inputs", _dir.File("r1.npy"));
            case "wrong-width":
                Npy.Write(_dir.File("w.npy"), TensorData.FromDouble(new double[2 * T * 4], 2, T, 4));
                return With("--inputs", _dir.File("w.npy"));
            case "nan-inputs":
                double[] nan = (double[])_x.Clone();
                nan[(1 * T + 7) * D + 2] = double.NaN;
                Npy.Write(_dir.File("nan.npy"), TensorData.FromDouble(nan, 2, T, D));
                return With("--inputs", _dir.File("nan.npy"));
            case "missing-key":
                SafetensorsFile.Write(_dir.File("mk.safetensors"), new Dictionary<string, TensorData> { ["weight_ih_l0"] = TensorData.FromDouble(_layer0.WeightIH, 3 * N, D) });
                return With("--weights", _dir.File("mk.safetensors"));
            case "int-weights":
                return With("--weights", Bad("iw.safetensors", Handmade("weight_ih_l0", "I64", [15, 3], 15 * 3 * 8)));
            case "nan-weights":
                var broken = RecurrentWeights<double>.Random(3, N, N, new Random(1));
                broken.BiasHH[4] = double.PositiveInfinity;
                WriteWeights("nw.safetensors", "", (_layer0, 0), (broken, 1));
                return With("--weights", _dir.File("nw.safetensors"));
            case "truncated-weights":
                byte[] w = File.ReadAllBytes(_dir.File("gru.safetensors"));
                return With("--weights", Bad("tw.safetensors", w[..(w.Length / 2)]));
            case "not-safetensors": return With("--weights", _dir.File("x.npy"));
            case "wrong-h0":
                Npy.Write(_dir.File("h0.npy"), TensorData.FromDouble(new double[2 * N], 2, N));
                return [.. Args(), "--h0", _dir.File("h0.npy")];
            case "c0-for-gru":
                Npy.Write(_dir.File("c0.npy"), TensorData.FromDouble(new double[2 * 2 * N], 2, 2, N));
                return [.. Args(), "--c0", _dir.File("c0.npy")];
            case "unknown-option": return [.. Args(), "--bogus", "1"];
            case "unknown-method": return [.. Args(), "--method", "newton"];
            case "bad-number": return [.. Args(), "--atol", "abc"];
            case "negative-atol": return [.. Args(), "--atol", "-1"];
            case "missing-out-dir": return With("--out", Path.Combine(_dir.Path, "no", "such", "h.npy"));
            case "missing-required": return ["run", "--cell", "gru", "--weights", _dir.File("gru.safetensors"), "--inputs", _dir.File("x.npy")];
            default: throw new ArgumentException(scenario);
        }
    }

    private static byte[] Handmade(string key, string dtype, int[] shape, int bytes)
    {
        byte[] header = Encoding.UTF8.GetBytes($"{{\"{key}\":{{\"dtype\":\"{dtype}\",\"shape\":[{string.Join(",", shape)}],\"data_offsets\":[0,{bytes}]}}}}");
        var b = new byte[8 + header.Length + bytes];
        BinaryPrimitives.WriteUInt64LittleEndian(b, (ulong)header.Length);
        header.CopyTo(b, 8);
        return b;
    }

    [Fact]
    public void An_explicit_method_that_does_not_converge_exits_3_and_writes_nothing()
    {
        Cli.Outcome r = Cli.Run(Args("--method", "picard", "--max-iter", "2", "--report", _dir.File("r.json")));
        Assert.True(r.ExitCode == 3, r.ToString());
        Assert.Contains("did not converge", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("--fallback sequential", r.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(_dir.File("h.npy")));
        Assert.False(File.Exists(_dir.File("r.json")));
    }

    [Fact]
    public void With_a_fallback_the_sequential_result_is_written_and_reported()
    {
        Cli.Outcome r = Cli.Run(Args("--method", "picard", "--max-iter", "2", "--fallback", "sequential", "--report", _dir.File("r.json")));
        Assert.True(r.ExitCode == 0, r.ToString());
        using JsonDocument report = JsonDocument.Parse(File.ReadAllText(_dir.File("r.json")));
        Assert.True(report.RootElement.GetProperty("fallback_used").GetBoolean());
        Assert.True(report.RootElement.GetProperty("fallback_sequences").GetInt32() > 0);
        Assert.True(report.RootElement.GetProperty("converged").GetBoolean());
        Assert.Equal("picard", report.RootElement.GetProperty("method").GetString());
        Assert.Equal("picard", report.RootElement.GetProperty("requested_method").GetString());
        Assert.Contains("did not converge", report.RootElement.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public void An_existing_output_is_replaced_only_on_success()
    {
        File.WriteAllText(_dir.File("h.npy"), "previous");
        Cli.Outcome bad = Cli.Run(Args("--method", "picard", "--max-iter", "1"));
        Assert.Equal(3, bad.ExitCode);
        Assert.Equal("previous", File.ReadAllText(_dir.File("h.npy")));
        Cli.Outcome good = Cli.Run(Args());
        Assert.Equal(0, good.ExitCode);
        Assert.Equal([2, T, N], Npy.Read(_dir.File("h.npy")).Shape);
    }

    [Fact]
    public void Grad_writes_one_tensor_per_weight_key_plus_inputs_and_refuses_bad_cotangents()
    {
        Npy.Write(_dir.File("c.npy"), TensorData.FromDouble([.. Enumerable.Range(0, 2 * T * N).Select(i => Math.Sin(i))], 2, T, N));
        string[] args = ["grad", "--cell", "gru", "--weights", _dir.File("gru.safetensors"), "--inputs", _dir.File("x.npy"),
            "--cotangent", _dir.File("c.npy"), "--out", _dir.File("g.safetensors")];
        Cli.Outcome r = Cli.Run(args);
        Assert.True(r.ExitCode == 0, r.ToString());
        SafetensorsFile g = SafetensorsFile.Read(_dir.File("g.safetensors"));
        Assert.Equal(["bias_hh_l0", "bias_hh_l1", "bias_ih_l0", "bias_ih_l1", "inputs", "weight_hh_l0", "weight_hh_l1", "weight_ih_l0", "weight_ih_l1"],
            g.Keys.Order(StringComparer.Ordinal));
        Assert.Equal([2, T, D], g.Get("inputs").Shape);
        Assert.Equal([3 * N, N], g.Get("weight_hh_l1").Shape);

        Npy.Write(_dir.File("c-bad.npy"), TensorData.FromDouble(new double[T * N], T, N));
        Cli.Outcome bad = Cli.Run([.. args[..^4], "--cotangent", _dir.File("c-bad.npy"), "--out", _dir.File("g2.safetensors")]);
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains($"expected shape [2, {T}, {N}]", bad.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(_dir.File("g2.safetensors")));

        Cli.Outcome stuck = Cli.Run([.. args[..^2], "--out", _dir.File("g3.safetensors"), "--method", "picard", "--max-iter", "1"]);
        Assert.Equal(3, stuck.ExitCode);
        Assert.False(File.Exists(_dir.File("g3.safetensors")));
    }

    [Fact]
    public void Info_lists_version_backends_simd_and_cores()
    {
        Cli.Outcome r = Cli.Run("info");
        Assert.Equal(0, r.ExitCode);
        foreach (string s in new[] { "deer ", "cores:", "simd:", "cpu (available)", "cuda" })
        {
            Assert.Contains(s, r.Stdout, StringComparison.Ordinal);
        }
    }
}
