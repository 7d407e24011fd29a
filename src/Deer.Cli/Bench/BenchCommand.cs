using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Text;
using System.Text.Json;
using DeerSharp.Scan;

namespace DeerSharp.Cli.Bench;

/// <summary>
/// `deer bench`: measures Deer and its peers side by side in one run: the diagonal scan against a memory copy of the same
/// bytes, GRU and LSTM with every method against PyTorch's modules on the same weights and inputs, and the speedup of
/// the parallel methods over the sequential loop against sequence length. Writes bench.md, bench.json, bench.png and bench.svg.
/// </summary>
internal static partial class BenchCommand
{
    private sealed record Options(string OutDir, bool Quick, int Repeats, bool Peers, string? Python, TextWriter Log, string? Only = null, string? OrtPeer = null)
    {
        public bool Runs(string section) => Only is null || Only == section;
    }

    private sealed record ScanRow(string Name, long Elements, double Seconds, double BytesMoved, double GigabytesPerSecond, string Ceiling, double Fraction);

    private sealed record RnnRow(string Case, string Method, double Seconds, int Iterations, bool Converged, double MaxDiff, double VsSequential, double? VsTorch,
        Stopwatches.Timing? Timing = null);

    private sealed record SweepRow(int Hidden, int Length, double Sequential, double Deer, double QuasiDeer, int DeerIterations, int QuasiIterations)
    {
        public double Best => Math.Min(Deer, QuasiDeer);

        public double Speedup => Sequential / Best;
    }

    public static Command Create(TextWriter stdout)
    {
        var outDir = new Option<string>("--out-dir") { Description = "Where to write bench.md, bench.json, bench.png and bench.svg.", DefaultValueFactory = _ => "bench-results" };
        var quick = new Option<bool>("--quick") { Description = "Small sizes: a smoke run of every section in seconds, not a measurement to quote." };
        var repeats = new Option<int>("--repeats") { Description = "Timed runs per measurement (after one warm-up); the median is reported.", DefaultValueFactory = _ => 5 };
        var noPeers = new Option<bool>("--no-peers") { Description = "Skip the PyTorch peer." };
        var ortPeer = new Option<string?>("--ort-peer") { Description = "The ONNX Runtime peer's ort-peer.dll (default: DEER_ORT_PEER, or benchmarks/peers/OrtPeer's build beside these sources)." };
        var python = new Option<string?>("--python") { Description = "Python with torch for the PyTorch peer (default: DEER_PYTHON, /usr/bin/python3, python3)." };
        var device = new Option<string>("--device")
        {
            Description = "cpu (default), or gpu (cuda is a synonym): the GPU bench (scan against device copy; GRU against the GPU loop, the CPU, cuDNN and JAX DEER); emulated runs it on ILGPU's CPU accelerator (a smoke run, not a measurement).",
            DefaultValueFactory = _ => "cpu",
        };
        device.AcceptOnlyFromAmong("cpu", "gpu", "cuda", "emulated");
        var only = new Option<string?>("--only")
        {
            Description = "Run one section of the CPU bench: scan, rnn, sweep, structured, cold (`deer run` as fresh processes against the warm solve and PyTorch), onnx-cold (`deer run --model` against ONNX Runtime's first run, each a fresh process), ort (the warm race against ONNX Runtime in one process), train (one training step of the memorisation task against its floor), or grad (the gradient through a sequential solve against PyTorch's CPU autograd) (default: all).",
        };
        only.AcceptOnlyFromAmong("scan", "rnn", "sweep", "structured", "cold", "onnx-cold", "ort", "train", "grad");
        var chartFrom = new Option<string?>("--chart-from")
        {
            Description = "Measure nothing: redraw bench.png and bench.svg from an earlier run's bench.json (its sweep) into --out-dir.",
        };
        var command = new Command("bench", "Measure Deer against its peers (memory copy, PyTorch) in one run; write markdown, JSON and a chart (PNG, SVG).")
        {
            outDir, quick, repeats, noPeers, python, device, chartFrom, only, ortPeer,
        };
        command.SetAction(r =>
        {
            int reps = r.GetValue(repeats);
            if (reps < 1)
            {
                throw new UsageException($"--repeats must be at least 1; got {reps}.");
            }

            if (r.GetValue(chartFrom) is { } json)
            {
                return Redraw(json, r.GetValue(outDir)!, stdout);
            }

            if (r.GetValue(device) is "gpu" or "cuda" or "emulated")
            {
                return GpuBench.Run(ModuleOptions.ParseDevice(r.GetValue(device)), r.GetValue(outDir)!, r.GetValue(quick), reps, !r.GetValue(noPeers), r.GetValue(python), stdout);
            }

            return Run(new Options(r.GetValue(outDir)!, r.GetValue(quick), reps, !r.GetValue(noPeers), r.GetValue(python), stdout, r.GetValue(only), r.GetValue(ortPeer)));
        });
        return command;
    }

    /// <summary>The chart of an earlier run, from its bench.json: the machine line and the sweep are all it needs.</summary>
    private static int Redraw(string jsonPath, string outDir, TextWriter log)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllText(jsonPath));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            throw new UsageException($"--chart-from {jsonPath}: cannot read it as a bench.json ({e.Message}).");
        }

        using (doc)
        {
            JsonElement root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("machine", out JsonElement m) || !root.TryGetProperty("sweep", out JsonElement rows)
                || rows.ValueKind != JsonValueKind.Array)
            {
                throw new UsageException($"--chart-from {jsonPath}: expected a bench.json with 'machine' and 'sweep'.");
            }

            var machine = m.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.ToString());
            List<SweepRow> sweep = [.. rows.EnumerateArray().Select(r => new SweepRow(r.GetProperty("hidden").GetInt32(), r.GetProperty("length").GetInt32(),
                r.GetProperty("sequential_seconds").GetDouble(), r.GetProperty("deer_seconds").GetDouble(), r.GetProperty("quasi_deer_seconds").GetDouble(),
                r.GetProperty("deer_iterations").GetInt32(), r.GetProperty("quasi_deer_iterations").GetInt32()))];
            Directory.CreateDirectory(outDir);
            ScottPlot.Plot chart = Chart(machine, sweep);
            using var files = new AtomicFiles();
            files.Stage(Path.Combine(outDir, "bench.png"), "--out-dir", s => s.Write(Charts.Png(chart)));
            files.Stage(Path.Combine(outDir, "bench.svg"), "--out-dir", s => s.Write(Encoding.UTF8.GetBytes(Charts.Svg(chart))));
            files.Commit();
            log.WriteLine($"redrew {Path.Combine(outDir, "bench.png")} and bench.svg from {jsonPath}");
            return 0;
        }
    }

    private static int Run(Options o)
    {
        if (!Directory.Exists(o.OutDir))
        {
            Directory.CreateDirectory(o.OutDir);
        }

        var machine = Machine();
        o.Log.WriteLine($"deer bench{(o.Quick ? " --quick" : "")}: {machine["cpu"]}, {machine["cores"]} cores, {machine["simd"]}; median of {o.Repeats} runs after a warm-up.");
        List<ScanRow> scan = o.Runs("scan") ? ScanSection(o) : [];
        var peer = new TorchPeer(o.Python);
        (List<RnnRow> rnn, string? torchNote) = o.Runs("rnn") ? RnnSection(o, peer) : ([], null);
        List<SweepRow> sweep = o.Runs("sweep") ? SweepSection(o) : [];
        List<StructuredBench.Row> structured = o.Runs("structured") ? StructuredBench.Run(o.Quick, o.Repeats, o.Log) : [];
        string? coldNote = null;
        List<ColdBench.Row> cold = o.Runs("cold") ? ColdBench.Run(o.Quick, o.Repeats, o.Peers ? peer : null, o.Log, out coldNote) : [];
        string? onnxNote = o.Peers ? null : "peers skipped (--no-peers)", raceNote = onnxNote;
        string? ortPeer = o.Peers && (o.Runs("onnx-cold") || o.Runs("ort")) ? OnnxColdBench.FindPeer(o.OrtPeer) : null;
        List<OnnxColdBench.Row> onnxCold = o.Runs("onnx-cold") && o.Peers ? OnnxColdBench.Run(o.Quick, o.Repeats, peer, ortPeer, o.Log, out onnxNote) : [];
        List<OrtRaceBench.Row> race = o.Runs("ort") && o.Peers ? OrtRaceBench.Run(o.Quick, o.Repeats, peer, ortPeer, o.Log, out raceNote) : [];
        var onnx = new OnnxSections(onnxCold, o.Runs("onnx-cold") ? onnxNote : null, race, o.Runs("ort") ? raceNote : null);
        List<TrainBench.Row> train = o.Runs("train") ? TrainBench.Run(o.Quick, o.Repeats, o.Log) : [];
        string? gradNote = null;
        List<GradBench.Row> grad = o.Runs("grad") ? GradBench.Run(o.Quick, o.Repeats, o.Peers ? peer : null, o.Log, out gradNote) : [];
        var training = new TrainingSections(train, grad, gradNote);

        using var files = new AtomicFiles();
        files.Stage(Path.Combine(o.OutDir, "bench.md"), "--out-dir", s => s.Write(Encoding.UTF8.GetBytes(Markdown(o, machine, scan, rnn, torchNote, sweep, structured, cold, coldNote, onnx, training))));
        files.Stage(Path.Combine(o.OutDir, "bench.json"), "--out-dir", s => Json(s, o, machine, scan, rnn, torchNote, sweep, structured, cold, onnx, training));
        ScottPlot.Plot chart = Chart(machine, sweep);
        files.Stage(Path.Combine(o.OutDir, "bench.png"), "--out-dir", s => s.Write(Charts.Png(chart)));
        files.Stage(Path.Combine(o.OutDir, "bench.svg"), "--out-dir", s => s.Write(Encoding.UTF8.GetBytes(Charts.Svg(chart))));
        files.Commit();
        o.Log.WriteLine($"wrote {Path.Combine(o.OutDir, "bench.md")}, bench.json, bench.png and bench.svg");
        return 0;
    }

    private static Dictionary<string, string> Machine()
    {
        string cpu = "unknown";
        if (File.Exists("/proc/cpuinfo"))
        {
            cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? cpu;
        }

        string memory = "unknown";
        if (File.Exists("/proc/meminfo"))
        {
            string? total = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal", StringComparison.Ordinal));
            if (total is not null && long.TryParse(total.Split(':', 2)[1].Replace("kB", "", StringComparison.Ordinal).Trim(), out long kb))
            {
                memory = string.Create(CultureInfo.InvariantCulture, $"{kb / 1024.0 / 1024.0:F1} GiB");
            }
        }

        return new Dictionary<string, string>
        {
            ["date"] = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture),
            ["cpu"] = cpu,
            ["cores"] = Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture),
            ["memory"] = memory,
            ["simd"] = Vector512.IsHardwareAccelerated ? "AVX-512" : Vector256.IsHardwareAccelerated ? "AVX2" : "128-bit or none",
            ["vector_t_bits"] = (Vector<byte>.Count * 8).ToString(CultureInfo.InvariantCulture),
            ["os"] = RuntimeInformation.OSDescription,
            ["dotnet"] = Environment.Version.ToString(),
            ["deer"] = typeof(Deer).Assembly.GetName().Version?.ToString() ?? "unknown",
        };
    }

    // ---- diagonal scan against memory copy ----------------------------------------------------------

    private static List<ScanRow> ScanSection(Options o)
    {
        const int N = 64;
        int length = o.Quick ? 1 << 14 : 1 << 20;                  // T·n = 2^20 quick, 2^26 full
        long elements = (long)length * N;
        o.Log.WriteLine($"scan: diagonal, float32, n = {N}, T = {length} (T·n = 2^{Math.Log2(elements):F0})");
        var rnd = new Random(1);
        float[] a = new float[elements], b = new float[elements], h = new float[elements], h0 = new float[N];
        for (long i = 0; i < elements; i++)
        {
            a[i] = (float)(0.5 + 0.5 * rnd.NextDouble());
            b[i] = (float)(rnd.NextDouble() - 0.5);
        }

        // The memory-copy peer moves the same bytes a scan must read (a and b) into buffers of the same size.
        float[] copyA = new float[elements], copyB = new float[elements];
        int cores = Environment.ProcessorCount;
        var scanWorkspace = new ScanWorkspace<float>();
        Stopwatches.Timing[] t = Stopwatches.MeasureInterleaved(
        [
            () => { a.AsSpan().CopyTo(copyA); b.AsSpan().CopyTo(copyB); },
            () => Parallel.For(0, 2 * cores, k =>
            {
                float[] src = k % 2 == 0 ? a : b, dst = k % 2 == 0 ? copyA : copyB;
                int s = (int)(elements * (k / 2) / cores), e = (int)(elements * (k / 2 + 1) / cores);
                src.AsSpan(s, e - s).CopyTo(dst.AsSpan(s, e - s));
            }),
            () => LinearRecurrence.SolveDiagonalSequential<float>(a, b, h0, h, N),
            () => LinearRecurrence.Solve(a, b, h0, h, length, N, dense: false, cores, scanWorkspace),
        ], Math.Max(o.Repeats, 7));
        var (copy1, copyP, seq, par) = (t[0], t[1], t[2], t[3]);
        int chosen = LinearRecurrence.ChooseChunks(length, N, dense: false, cores);
        double copyBytes = 4.0 * elements * 4;                      // read a, b; write two copies
        double scanBytes = 12.0 * elements;                         // read a, b; write h: the least a scan can move
        double copy1Rate = copyBytes / copy1.Median / 1e9, copyPRate = copyBytes / copyP.Median / 1e9;
        var rows = new List<ScanRow>
        {
            new("memory copy, 1 core (peer)", elements, copy1.Median, copyBytes, copy1Rate, "", 1),
            new($"memory copy, {cores} cores (peer)", elements, copyP.Median, copyBytes, copyPRate, "", 1),
            new("diagonal scan, sequential loop", elements, seq.Median, scanBytes, scanBytes / seq.Median / 1e9, "copy, 1 core", scanBytes / seq.Median / 1e9 / copy1Rate),
            new("diagonal scan, sequential loop", elements, seq.Median, scanBytes, scanBytes / seq.Median / 1e9, $"copy, {cores} cores", scanBytes / seq.Median / 1e9 / copyPRate),
            new($"diagonal scan, LinearRecurrence.Solve ({(chosen > 1 ? $"blocked, {chosen} workers" : "chose the loop")})", elements, par.Median, scanBytes, scanBytes / par.Median / 1e9, $"copy, {cores} cores", scanBytes / par.Median / 1e9 / copyPRate),
        };
        foreach (ScanRow r in rows)
        {
            o.Log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {r.Name,-58} {r.Seconds * 1e3,9:F2} ms {r.GigabytesPerSecond,7:F2} GB/s{(r.Ceiling.Length > 0 ? $"  = {r.Fraction:P0} of {r.Ceiling}" : "")}"));
        }

        return rows;
    }

    // ---- GRU and LSTM with every method, against PyTorch ------------------------------------------

    private static (List<RnnRow>, string?) RnnSection(Options o, TorchPeer peer)
    {
        var rows = new List<RnnRow>();
        string? note = null;
        (string Cell, int N, int Length)[] cases = o.Quick
            ? [("gru", 32, 4096), ("lstm", 32, 4096), ("gru", 8, 8192)]
            : [("gru", 32, 65536), ("lstm", 32, 65536), ("gru", 8, 262144)];
        foreach (var (cell, n, length) in cases)
        {
            string name = string.Create(CultureInfo.InvariantCulture, $"{cell.ToUpperInvariant()} n={n} d={n} T={length} B=1 float32");
            o.Log.WriteLine($"rnn: {name}");
            var rnd = new Random(n * 7 + length);
            var weights = RecurrentWeights<float>.Random(cell == "gru" ? 3 : 4, n, n, rnd);
            var x = new float[length * n];
            for (int i = 0; i < x.Length; i++)
            {
                x[i] = (float)(rnd.NextDouble() * 2 - 1);
            }

            TorchPeer.Result? torch = o.Peers ? peer.Time(cell, weights, x, 1, length, o.Repeats) : null;
            note ??= o.Peers ? (torch is null ? peer.Why : null) : "PyTorch peer skipped (--no-peers)";
            float[]? reference = null;
            double seqSeconds = 0;
            foreach (SolveMethod method in new[] { SolveMethod.Sequential, SolveMethod.Auto, SolveMethod.Deer, SolveMethod.QuasiDeer, SolveMethod.Picard })
            {
                var options = new SolveOptions { Method = method };
                SolveResult<float>? last = null;
                var t = Stopwatches.Measure(() => last = cell == "gru"
                    ? Deer.Solve(new GruCell<float>(weights), x, 1, length, options)
                    : Deer.Solve(new LstmCell<float>(weights), x, 1, length, options), method is SolveMethod.Deer or SolveMethod.Picard ? Math.Min(3, o.Repeats) : o.Repeats);
                float[] outputs = last!.Outputs();
                reference ??= outputs;
                if (method == SolveMethod.Sequential)
                {
                    seqSeconds = t.Median;
                }

                double diff = MaxDiff(outputs, reference);
                string label = method == SolveMethod.Auto ? $"auto ({MethodNames.Name(last.Method)})" : MethodNames.Name(method);
                var row = new RnnRow(name, label, t.Median, last.Iterations, last.Converged, diff, seqSeconds / t.Median, torch is null ? null : torch.MedianSeconds / t.Median, t);
                rows.Add(row);
                o.Log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {label,-24} {t.Median * 1e3,9:F1} ms  {t.Median / length * 1e9,7:F0} ns/step  {row.Iterations,3} it  x{row.VsSequential:F2} vs sequential{(row.VsTorch is { } v ? $"  x{v:F1} vs PyTorch" : "")}"));
            }

            if (torch is not null)
            {
                double agree = MaxDiff(torch.Output, reference!);
                rows.Add(new RnnRow(name, $"PyTorch {torch.TorchVersion} ({torch.Threads} thread(s), peer)", torch.MedianSeconds, 0, true, agree, seqSeconds / torch.MedianSeconds, 1));
                o.Log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {"PyTorch (peer)",-24} {torch.MedianSeconds * 1e3,9:F1} ms  {torch.MedianSeconds / length * 1e9,7:F0} ns/step  max |Δ| vs Deer {agree:G2}"));
            }
        }

        return (rows, note);
    }

    // ---- speedup against sequence length ------------------------------------------------------------

    private static List<SweepRow> SweepSection(Options o)
    {
        int[] hidden = o.Quick ? [1, 8] : [1, 4, 16, 32];
        int[] lengths = o.Quick ? [256, 1024, 4096] : [1024, 4096, 16384, 65536, 262144];
        var rows = new List<SweepRow>();
        o.Log.WriteLine("sweep: GRU, float32, d = n, B = 1: best of DEER and quasi-DEER against the sequential loop");
        foreach (int n in hidden)
        {
            var rnd = new Random(n);
            var cell = new GruCell<float>(RecurrentWeights<float>.Random(3, n, n, rnd));
            foreach (int length in lengths)
            {
                if (n >= 16 && length > 65536)
                {
                    continue;                                          // DEER's T·n² Jacobians: minutes per point on 2 cores
                }

                var x = new float[length * n];
                for (int i = 0; i < x.Length; i++)
                {
                    x[i] = (float)(rnd.NextDouble() * 2 - 1);
                }

                int reps = Math.Max(1, Math.Min(o.Repeats, length >= 65536 ? 3 : o.Repeats));
                SolveResult<float>? deer = null, quasi = null;
                var s = Stopwatches.Measure(() => Deer.Solve(cell, x, 1, length, new SolveOptions { Method = SolveMethod.Sequential }), reps);
                var d = Stopwatches.Measure(() => deer = Deer.Solve(cell, x, 1, length, new SolveOptions { Method = SolveMethod.Deer }), reps);
                var q = Stopwatches.Measure(() => quasi = Deer.Solve(cell, x, 1, length, new SolveOptions { Method = SolveMethod.QuasiDeer }), reps);
                var row = new SweepRow(n, length, s.Median, d.Median, q.Median, deer!.Iterations, quasi!.Iterations);
                rows.Add(row);
                o.Log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  n={n,-3} T={length,-7} sequential {s.Median * 1e3,8:F2} ms  deer {d.Median * 1e3,8:F2} ms ({row.DeerIterations} it)  quasi {q.Median * 1e3,8:F2} ms ({row.QuasiIterations} it)  speedup {row.Speedup:F2}"));
            }
        }

        return rows;
    }

    /// <summary>max |a − b| in double, NaN if any difference is NaN, ∞ when the lengths differ: every comparison the commands print.</summary>
    internal static double MaxDiff<T>(T[] a, T[] b)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (a.Length != b.Length)
        {
            return double.PositiveInfinity;
        }

        double max = 0;
        for (int i = 0; i < a.Length; i++)
        {
            max = Math.Max(max, Math.Abs(double.CreateTruncating(a[i]) - double.CreateTruncating(b[i])));
        }

        return max;
    }

    // ---- outputs -------------------------------------------------------------------------------------
}
