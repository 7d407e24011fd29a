using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using DeerSharp.Gpu;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace DeerSharp.Cli.Bench;

/// <summary>
/// `deer bench --device gpu` (or `emulated`, for a smoke run on ILGPU's CPU accelerator): the ILGPU backend measured in one
/// run against (1) the device's own copy bandwidth, for the
/// diagonal scan; (2) cuBLAS, for the recurrent product, where it loads; (3) its own sequential kernel, the CPU backend, PyTorch's cuDNN nn.GRU and a JAX DEER
/// (benchmarks/peers/jax_deer.py), for GRUs of batch 16. Writes bench-gpu.md and bench-gpu.json.
/// </summary>
/// <remarks>
/// Deer's GPU times are end to end: they include copying the inputs to the device and the states back, which the
/// peers' times (inputs already on the device) do not. Every figure is the median of the timed runs after a warm-up.
/// </remarks>
internal static class GpuBench
{
    private sealed record ScanRow(long Elements, int N, double ScanSeconds, double CopySeconds)
    {
        public double ScanGBs => 12.0 * Elements / ScanSeconds / 1e9;

        public double CopyGBs => 8.0 * Elements / CopySeconds / 1e9;
    }

    private sealed record ProductRow(int N, int Rows, double KernelSeconds, double CuBlasSeconds, double MaxDifference, string Note);

    private sealed record GruRow(int N, int Length, string Runner, double Seconds, double Speedup, double MaxDifference, int Iterations, string Note);

    public static int Run(ComputeDevice device, string outDir, bool quick, int repeats, bool peers, string? python, TextWriter log)
    {
        (Accelerator? accelerator, string description) = IlgpuBackend.Open(device);
        if (accelerator is null)
        {
            throw new NotSupportedException($"no GPU to benchmark: {description}. `deer bench --device emulated --quick` runs the same code on ILGPU's CPU accelerator.");
        }

        Directory.CreateDirectory(outDir);
        string flag = device == ComputeDevice.Emulated ? "emulated" : "gpu";
        log.WriteLine($"deer bench --device {flag}{(quick ? " --quick" : "")}: {description}; median of {repeats} runs after a warm-up.");
        List<ScanRow> scans = Scans(accelerator, quick, repeats, log);
        List<ProductRow> products = Products(accelerator, quick, repeats, log);
        (List<GruRow> grus, string? peerNote) = Grus(device == ComputeDevice.Emulated ? ComputeDevice.Emulated : ComputeDevice.Gpu, quick, repeats,
            peers && device != ComputeDevice.Emulated, python, log);
        string date = DateTime.UtcNow.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        using var files = new AtomicFiles();
        files.Stage(Path.Combine(outDir, "bench-gpu.md"), "--out-dir", s => s.Write(Encoding.UTF8.GetBytes(Markdown(description, flag, date, repeats, scans, products, grus, peerNote))));
        files.Stage(Path.Combine(outDir, "bench-gpu.json"), "--out-dir", s =>
        {
            using var w = new Utf8JsonWriter(s, new JsonWriterOptions { Indented = true });
            w.WriteStartObject();
            w.WriteString("date", date);
            w.WriteString("device", description);
            w.WriteNumber("repeats", repeats);
            w.WriteString("note", "Deer's GPU times include host-device transfers; the peers' do not.");
            ReportJson.Rows(w, "scan", scans, r => [("Elements", r.Elements), ("N", r.N), ("ScanSeconds", r.ScanSeconds), ("CopySeconds", r.CopySeconds),
                ("ScanGBs", r.ScanGBs), ("CopyGBs", r.CopyGBs), ("fraction", r.ScanGBs / r.CopyGBs)]);
            ReportJson.Rows(w, "recurrent_product", products, r => [("N", r.N), ("Rows", r.Rows), ("KernelSeconds", r.KernelSeconds),
                ("CuBlasSeconds", r.CuBlasSeconds), ("MaxDifference", r.MaxDifference), ("Note", r.Note)]);
            ReportJson.Rows(w, "gru", grus, r => [("N", r.N), ("Length", r.Length), ("Runner", r.Runner), ("Seconds", r.Seconds), ("Speedup", r.Speedup),
                ("MaxDifference", r.MaxDifference), ("Iterations", r.Iterations), ("Note", r.Note)]);
            if (peerNote is not null)
            {
                w.WriteString("peer_note", peerNote);
            }

            w.WriteEndObject();
        });
        files.Commit();
        log.WriteLine($"wrote {Path.Combine(outDir, "bench-gpu.md")} and bench-gpu.json");
        return 0;
    }

    private static List<ScanRow> Scans(Accelerator accelerator, bool quick, int repeats, TextWriter log)
    {
        var rows = new List<ScanRow>();
        long[] sizes = quick ? [1L << (accelerator.AcceleratorType == AcceleratorType.CPU ? 12 : 20)] : [1L << 24, 1L << 26, 1L << 28];
        var random = new Random(1);
        var scanner = new DiagonalScan<float>(accelerator);
        foreach (long elements in sizes)
        {
            foreach (int n in new[] { 1, 32 })
            {
                int length = (int)(elements / n);
                var host = new float[elements];
                for (long i = 0; i < elements; i++)
                {
                    host[i] = (float)(random.NextDouble() * 1.8 - 0.9);
                }

                using MemoryBuffer1D<float, Stride1D.Dense> a = accelerator.Allocate1D(host), b = accelerator.Allocate1D(host),
                    h0 = accelerator.Allocate1D(new float[n]), h = accelerator.Allocate1D<float>(elements);
                int chunks = DiagonalScan<float>.Chunks(1, length, n, threads: (long)accelerator.MaxNumThreads * 8);
                double scan = Median(repeats, () => scanner.Solve(a.View, b.View, h0.View, h.View, 1, length, n, chunks), accelerator);
                double copy = Median(repeats, () => h.View.CopyFrom(a.View), accelerator);
                var row = new ScanRow(elements, n, scan, copy);
                rows.Add(row);
                log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  diagonal scan T·n = 2^{Math.Log2(elements):F0} (n = {n}): {scan * 1e3:F3} ms, {row.ScanGBs:F0} GB/s; device copy {row.CopyGBs:F0} GB/s; {row.ScanGBs / row.CopyGBs:P0} of copy"));
            }
        }

        return rows;
    }

    /// <summary>
    /// The GRU's recurrent product hh = H W_hhᵀ (G = 3n rows of W_hh, float32) for many rows at once, as every DEER
    /// iteration computes it: Deer's kernel (one thread per output) against cuBLAS's GEMM where cuBLAS loads, with the
    /// largest difference between the two.
    /// </summary>
    private static List<ProductRow> Products(Accelerator accelerator, bool quick, int repeats, TextWriter log)
    {
        var rows = new List<ProductRow>();
        using CuBlasProducts? blas = CuBlasProducts.TryCreate(accelerator, out string why);
        var kernel = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(DenseKernels.RecurrentProduct<float>);
        int count = quick ? (accelerator.AcceleratorType == AcceleratorType.CPU ? 256 : 4096) : 65_536;
        var random = new Random(3);
        foreach (int n in quick ? new[] { 8 } : [8, 32, 64, 128, 256])
        {
            int gates = 3 * n;
            float[] weights = [.. Enumerable.Range(0, gates * n).Select(_ => (float)((random.NextDouble() * 2) - 1))];
            float[] states = [.. Enumerable.Range(0, count * n).Select(_ => (float)((random.NextDouble() * 2) - 1))];
            using MemoryBuffer1D<float, Stride1D.Dense> whh = accelerator.Allocate1D(weights), prev = accelerator.Allocate1D(states),
                ours = accelerator.Allocate1D<float>((long)count * gates), theirs = accelerator.Allocate1D<float>((long)count * gates);
            double kernelSeconds = Median(repeats, () => kernel(count * gates, whh.View, prev.View, ours.View, n, n, gates), accelerator);
            double blasSeconds = double.NaN, diff = double.NaN;
            string note = blas is null ? why : "";
            if (blas is not null)
            {
                try
                {
                    blasSeconds = Median(repeats, () => blas.RecurrentProduct(whh.View, prev.View, theirs.View, n, n, gates, count), accelerator);
                    diff = BenchCommand.MaxDiff(ours.GetAsArray1D(), theirs.GetAsArray1D());
                }
                catch (Exception e) when (e is CuBlasException or InvalidOperationException or NotSupportedException or EntryPointNotFoundException)
                {
                    note = $"cuBLAS failed: {e.GetType().Name}: {e.Message}";
                }
            }

            rows.Add(new ProductRow(n, count, kernelSeconds, blasSeconds, diff, note));
            log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  recurrent product n = {n}, {count} rows: kernel {kernelSeconds * 1e3:F3} ms, cuBLAS {(double.IsNaN(blasSeconds) ? "-" : $"{blasSeconds * 1e3:F3} ms")}, max |Δ| {diff:G2} {note}"));
        }

        return rows;
    }

    private static (List<GruRow>, string?) Grus(ComputeDevice device, bool quick, int repeats, bool peers, string? python, TextWriter log)
    {
        var rows = new List<GruRow>();
        string? note = null;
        var peer = peers ? new TorchPeer(python) : null;
        const int batch = 16;
        int[] hidden = quick ? [8] : [1, 8, 32, 64];
        int[] lengths = quick ? [device == ComputeDevice.Emulated ? 64 : 4096] : [65_536, 1_048_576];
        var random = new Random(2);
        foreach (int length in lengths)
        {
            foreach (int n in hidden)
            {
                var gru = GruCell<float>.Random(n, n, random);
                var x = new float[(long)batch * length * n];
                for (long i = 0; i < x.Length; i++)
                {
                    x[i] = (float)(random.NextDouble() * 2 - 1);
                }

                SolveResult<float>? loop = null;
                double loopSeconds = Median(repeats, () => loop = Deer.Solve(gru, x, batch, length, new SolveOptions { Method = SolveMethod.Sequential, Device = device }), null);
                void Add(string runner, double seconds, float[] states, int iterations, string extra) =>
                    rows.Add(new GruRow(n, length, runner, seconds, loopSeconds / seconds, BenchCommand.MaxDiff(states, loop!.States), iterations, extra));
                rows.Add(new GruRow(n, length, "gpu sequential kernel", loopSeconds, 1, 0, 0, ""));
                foreach (SolveMethod method in n <= DeviceCell<float>.MaxDenseState ? new[] { SolveMethod.Deer, SolveMethod.QuasiDeer } : [SolveMethod.QuasiDeer])
                {
                    SolveResult<float>? r = null;
                    double seconds = Median(repeats, () => r = Deer.Solve(gru, x, batch, length, new SolveOptions { Method = method, Device = device, Fallback = FallbackPolicy.None }), null);
                    Add($"gpu {MethodNames.Name(method)}", seconds, r!.States, r.Iterations, r.Converged ? "" : "not converged: " + r.Message);
                }

                if (length <= 65_536)
                {
                    SolveResult<float>? cpu = null;
                    double seconds = Median(Math.Min(repeats, 3), () => cpu = Deer.Solve(gru, x, batch, length, new SolveOptions { Method = SolveMethod.Auto }), null);
                    Add($"cpu auto ({MethodNames.Name(cpu!.Method)}, {Environment.ProcessorCount} cores)", seconds, cpu.States, cpu.Iterations, "");
                }

                if (peer is not null)
                {
                    TorchPeer.Result? torch = peer.Time("gru", gru.Weights, x, batch, length, repeats, "cuda");
                    if (torch is not null)
                    {
                        Add($"torch cuDNN nn.GRU ({torch.TorchVersion})", torch.MedianSeconds, Outputs(torch.Output), 0, "");
                    }
                    else
                    {
                        note = peer.Why;
                    }

                    // The JAX peer forms dense Jacobians [B, T, n, n] like DEER; skip sizes that cannot fit in memory.
                    if ((long)batch * length * n * n * 4 * 6 < 60L << 30)
                    {
                        TorchPeer.Result? jax = peer.Time("gru", gru.Weights, x, batch, length, repeats, "cuda", "jax_deer.py");
                        if (jax is not null)
                        {
                            Add($"jax DEER ({jax.TorchVersion})", jax.MedianSeconds, Outputs(jax.Output), 0, "");
                        }
                        else
                        {
                            note = (note is null ? "" : note + "; ") + peer.Why;
                        }
                    }
                }

                foreach (GruRow row in rows.Where(r => r.N == n && r.Length == length))
                {
                    log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"  GRU B = {batch} n = {n} T = {length}: {row.Runner,-40} {row.Seconds * 1e3,10:F2} ms  {row.Speedup,8:F2}× the GPU loop  max |Δ| {row.MaxDifference:G2} {row.Note}"));
                }
            }
        }

        return (rows, note);
    }

    /// <summary>The GRU's states are its outputs (S = n), so peers' outputs compare directly.</summary>
    private static float[] Outputs(float[] output) => output;
    private static double Median(int repeats, Action run, Accelerator? sync)
    {
        run();
        sync?.Synchronize();
        var times = new double[repeats];
        for (int i = 0; i < repeats; i++)
        {
            long start = Stopwatch.GetTimestamp();
            run();
            sync?.Synchronize();
            times[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
        }

        Array.Sort(times);
        return times[repeats / 2];
    }

    private static string Markdown(string description, string flag, string date, int repeats, List<ScanRow> scans, List<ProductRow> products, List<GruRow> grus,
        string? peerNote)
    {
        var md = new StringBuilder();
        md.AppendLine(CultureInfo.InvariantCulture, $"# deer bench --device {flag} ({date})");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"Device: {description}. Median of {repeats} runs after a warm-up. Deer's GPU times include host-device transfers; the peers' do not.");
        md.AppendLine();
        md.AppendLine("## Diagonal scan against the device-to-device copy (float32, B = 1)");
        md.AppendLine();
        md.AppendLine("| T·n | n | scan ms | scan GB/s (12 B/element) | copy GB/s (8 B/element) | scan / copy |");
        md.AppendLine("|---|---|---|---|---|---|");
        foreach (ScanRow r in scans)
        {
            md.AppendLine(CultureInfo.InvariantCulture, $"| 2^{Math.Log2(r.Elements):F0} | {r.N} | {r.ScanSeconds * 1e3:F3} | {r.ScanGBs:F0} | {r.CopyGBs:F0} | {r.ScanGBs / r.CopyGBs:P0} |");
        }

        md.AppendLine();
        md.AppendLine("## The recurrent product H W_hhᵀ (GRU, G = 3n, float32): Deer's kernel against cuBLAS");
        md.AppendLine();
        md.AppendLine("| n | rows | kernel ms | cuBLAS ms | kernel / cuBLAS | max abs diff | note |");
        md.AppendLine("|---|---|---|---|---|---|---|");
        foreach (ProductRow r in products)
        {
            md.AppendLine(CultureInfo.InvariantCulture,
                $"| {r.N} | {r.Rows} | {r.KernelSeconds * 1e3:F3} | {(double.IsNaN(r.CuBlasSeconds) ? "-" : (r.CuBlasSeconds * 1e3).ToString("F3", CultureInfo.InvariantCulture))} | {(double.IsNaN(r.CuBlasSeconds) ? "-" : (r.KernelSeconds / r.CuBlasSeconds).ToString("F2", CultureInfo.InvariantCulture))} | {r.MaxDifference:G2} | {r.Note} |");
        }

        md.AppendLine();
        md.AppendLine("## GRU, batch 16, float32, input size = hidden size");
        md.AppendLine();
        md.AppendLine("| n | T | runner | ms | speedup over the GPU loop | max abs diff from the GPU loop | iterations | note |");
        md.AppendLine("|---|---|---|---|---|---|---|---|");
        foreach (GruRow r in grus)
        {
            md.AppendLine(CultureInfo.InvariantCulture, $"| {r.N} | {r.Length} | {r.Runner} | {r.Seconds * 1e3:F2} | {r.Speedup:F2}× | {r.MaxDifference:G2} | {r.Iterations} | {r.Note} |");
        }

        if (peerNote is not null)
        {
            md.AppendLine();
            md.AppendLine(CultureInfo.InvariantCulture, $"Peers: {peerNote}");
        }

        return md.ToString();
    }
}
