using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace DeerSharp.Cli.Bench;

/// <summary>
/// This core's limits, measured by microbenchmarks, and the floor they put under a recurrent step (docs/benchmarks.md,
/// "Roofline"): the FMA throughput of a register-resident loop (eight independent chains of 512-bit FMAs, 256-bit where
/// the CPU has no 512-bit vectors), the latency of one dependent FMA, the read bandwidth from a buffer that fits in L2
/// but not L1, and the throughput of the fused loops' σ and tanh (eight independent chains). Each is the best of several short runs, so the figure is what the core can do, not what it did while
/// the VM was busy.
/// </summary>
internal static class Roofline
{
    /// <summary>
    /// Per core: FMA lanes per second, seconds per dependent FMA, L2 read bytes per second, the vector width used, and the
    /// seconds per lane of one σ or tanh (the fused loops' own, <c>SimdMath</c>) at full throughput.
    /// </summary>
    public sealed record Peak(double FmaPerSecond, double FmaLatencySeconds, double L2BytesPerSecond, int Bits, double ActivationSeconds);

    /// <summary>
    /// A floor per sequence-step: the larger of the throughput and latency bounds, and which one binds: "latency" (the
    /// step's chain), "L2" (W_hh streamed from L2) or "compute" (the FMAs and activations at their throughput).
    /// </summary>
    public sealed record Floor(double Seconds, double ThroughputSeconds, double LatencySeconds, string Bound);

    /// <summary>L1 data cache assumed when deciding whether W_hh streams from L2 (48 KB here; smaller on most CPUs).</summary>
    private const int L1Bytes = 32 << 10;

    /// <summary>Dependent operations (FMA latencies) in one σ or tanh of <see cref="Activations"/>' single-precision exp.</summary>
    private const int ActivationChain = 16;

    public static Peak Measure()
    {
        bool wide = Vector512.IsHardwareAccelerated;
        double fma = Best(() => wide ? Throughput<Simd512, Vector512<float>>(2_000_000) : Throughput<Simd256, Vector256<float>>(2_000_000), 2_000_000 * 8 * (wide ? 16 : 8));
        double latency = 1 / Best(() => Latency(4_000_000), 4_000_000);
        var buffer = new float[64 << 10];                              // 256 KB: past L1, inside a 512 KB or larger L2
        Array.Fill(buffer, 1f);
        // Fifteen tries of 64 passes: with five of 16, the figure ranged 115-188 GB/s between runs, at times below what the
        // n = 128 GRU's loop streamed.
        double bandwidth = Best(() => wide ? Read<Simd512, Vector512<float>>(buffer, 64) : Read<Simd256, Vector256<float>>(buffer, 64), 64.0 * buffer.Length * sizeof(float), 15);
        double activations = Best(() => wide ? Activations<Simd512, Vector512<float>>(200_000) : Activations<Simd256, Vector256<float>>(200_000),
            200_000 * 8 * (wide ? 16 : 8));
        return new Peak(fma, latency, bandwidth, wide ? 512 : 256, 1 / activations);
    }

    /// <summary>
    /// The floor under one sequence-step of a dense cell (G gate blocks, n hidden, d inputs) with B sequences on
    /// <paramref name="cores"/> cores, the way Deer's loop runs them: the recurrent product G·n² and the projection G·n·d
    /// FMAs at the peak rate, plus the step's activations (n for an RNN, 3n for a GRU, 5n for an LSTM: its four gates and
    /// tanh(c')) at their measured throughput, added because both run on the same FP pipes (a scratch program measured 8
    /// activations with 40 FMAs at 38.0 ns an iteration, the sum of the two alone); for one sequence, the projection runs
    /// on the second core beside the loop, for a batch both on every core. W_hh streams from L2 each step when it is larger
    /// than L1, and, when there is at most one sequence per core, the step's dependency chain (the n-term reduction, then two
    /// activations one after the other) at the FMA latency, which one sequence cannot overlap. Loads, stores and the
    /// elementwise gate arithmetic are not counted: the floor is below the truth.
    /// </summary>
    public static Floor For(int gates, int n, int d, int batch, int cores, Peak peak)
    {
        double recurrent = (double)gates * n * n, projection = (double)gates * n * d;
        double activations = (gates == 4 ? 5 : gates) * (double)n * peak.ActivationSeconds;
        double weights = recurrent * sizeof(float);
        double stream = weights > L1Bytes ? weights / peak.L2BytesPerSecond : 0;
        int parallel = Math.Min(batch, cores);
        bool beside = batch == 1 && cores >= 2;                          // the projection on the other core
        double compute = beside
            ? Math.Max((recurrent / peak.FmaPerSecond) + activations, projection / peak.FmaPerSecond)
            : (((recurrent + projection) / peak.FmaPerSecond) + activations) / parallel;
        double streamed = beside ? stream : stream / parallel;
        double throughput = Math.Max(compute, streamed);
        // One sequence per core waits on its step's chain; with more sequences than cores, a core can interleave them.
        double latency = batch <= cores ? (n + (2 * ActivationChain)) * peak.FmaLatencySeconds : 0;
        return new Floor(Math.Max(throughput, latency), throughput, latency,
            latency >= throughput ? "latency" : streamed >= compute ? "L2" : "compute");
    }

    /// <summary>The fastest rate over <paramref name="tries"/> runs: units / the shortest time.</summary>
    private static double Best(Func<double> run, double units, int tries = 5)
    {
        double best = double.MaxValue;
        for (int i = 0; i < tries; i++)
        {
            long start = Stopwatch.GetTimestamp();
            double sink = run();
            best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
            GC.KeepAlive(sink);
        }

        return units / best;
    }

    /// <summary>Eight independent chains of FMAs, each at its own register.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static double Throughput<TS, TV>(int iterations)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        TV m = TS.Create(0.999f), c = TS.Create(1e-3f);
        TV a0 = TS.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (int i = 0; i < iterations; i++)
        {
            a0 = TS.Fma(a0, m, c);
            a1 = TS.Fma(a1, m, c);
            a2 = TS.Fma(a2, m, c);
            a3 = TS.Fma(a3, m, c);
            a4 = TS.Fma(a4, m, c);
            a5 = TS.Fma(a5, m, c);
            a6 = TS.Fma(a6, m, c);
            a7 = TS.Fma(a7, m, c);
        }

        Span<float> first = stackalloc float[TS.Count];
        TS.Store(TS.Add(TS.Add(TS.Add(a0, a1), TS.Add(a2, a3)), TS.Add(TS.Add(a4, a5), TS.Add(a6, a7))), ref first[0], 0);
        return first[0];
    }

    /// <summary>Eight independent chains of activations, four σ and four tanh, each feeding itself (values stay in (−1, 1)).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static double Activations<TS, TV>(int iterations)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        TV a0 = TS.Create(0.1f), a1 = TS.Create(0.2f), a2 = TS.Create(0.3f), a3 = TS.Create(0.4f);
        TV a4 = TS.Create(-0.5f), a5 = TS.Create(0.6f), a6 = TS.Create(-0.7f), a7 = TS.Create(0.8f);
        for (int i = 0; i < iterations; i++)
        {
            a0 = SimdMath.Sigmoid<TS, TV>(a0);
            a1 = SimdMath.Sigmoid<TS, TV>(a1);
            a2 = SimdMath.Sigmoid<TS, TV>(a2);
            a3 = SimdMath.Sigmoid<TS, TV>(a3);
            a4 = SimdMath.Tanh<TS, TV>(a4);
            a5 = SimdMath.Tanh<TS, TV>(a5);
            a6 = SimdMath.Tanh<TS, TV>(a6);
            a7 = SimdMath.Tanh<TS, TV>(a7);
        }

        Span<float> first = stackalloc float[TS.Count];
        TS.Store(TS.Add(TS.Add(TS.Add(a0, a1), TS.Add(a2, a3)), TS.Add(TS.Add(a4, a5), TS.Add(a6, a7))), ref first[0], 0);
        return first[0];
    }

    /// <summary>One chain of dependent FMAs: each waits for the one before.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static double Latency(int iterations)
    {
        Vector256<float> m = Vector256.Create(0.999f), c = Vector256.Create(1e-3f), a = Vector256.Create(1f);
        for (int i = 0; i < iterations; i++)
        {
            a = Vector256.FusedMultiplyAdd(a, m, c);
        }

        return a[0];
    }

    /// <summary>Sums the buffer <paramref name="passes"/> times with eight vector accumulators of one width.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static double Read<TS, TV>(float[] buffer, int passes)
        where TS : struct, ISimd<TV>
        where TV : struct
    {
        int v = TS.Count;
        TV total = default;
        ref float b = ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(buffer);
        for (int p = 0; p < passes; p++)
        {
            TV s0 = default, s1 = default, s2 = default, s3 = default, s4 = default, s5 = default, s6 = default, s7 = default;
            for (nuint i = 0; i + (nuint)(8 * v) <= (nuint)buffer.Length; i += (nuint)(8 * v))
            {
                s0 = TS.Add(s0, TS.Load(ref b, i));
                s1 = TS.Add(s1, TS.Load(ref b, i + (nuint)v));
                s2 = TS.Add(s2, TS.Load(ref b, i + (nuint)(2 * v)));
                s3 = TS.Add(s3, TS.Load(ref b, i + (nuint)(3 * v)));
                s4 = TS.Add(s4, TS.Load(ref b, i + (nuint)(4 * v)));
                s5 = TS.Add(s5, TS.Load(ref b, i + (nuint)(5 * v)));
                s6 = TS.Add(s6, TS.Load(ref b, i + (nuint)(6 * v)));
                s7 = TS.Add(s7, TS.Load(ref b, i + (nuint)(7 * v)));
            }

            total = TS.Add(total, TS.Add(TS.Add(TS.Add(s0, s1), TS.Add(s2, s3)), TS.Add(TS.Add(s4, s5), TS.Add(s6, s7))));
        }

        Span<float> first = stackalloc float[v];
        TS.Store(total, ref first[0], 0);
        return first[0];
    }
}
