using Xunit.Sdk;

namespace DeerSharp.Tests;

/// <summary>
/// Fresh random inputs that can be reproduced: every randomised test draws its seed here (or takes DEER_TEST_SEED from the
/// environment), and a failure is rethrown with the seed in its message, so the failing case can be run again exactly.
/// </summary>
internal static class Seeded
{
    /// <summary>A fresh seed, or DEER_TEST_SEED when it is set.</summary>
    public static int NextSeed() =>
        int.TryParse(Environment.GetEnvironmentVariable("DEER_TEST_SEED"), out int fixedSeed) ? fixedSeed : Random.Shared.Next();

    /// <summary>Runs <paramref name="body"/> on a seeded generator; a failure names the seed.</summary>
    public static void Run(Action<Random> body)
    {
        int seed = NextSeed();
        try
        {
            body(new Random(seed));
        }
        catch (Exception e) when (e is not SkipException)
        {
            throw new SeededFailure(seed, e);
        }
    }

    /// <summary>A test failure that carries the seed it happened with.</summary>
    public sealed class SeededFailure(int seed, Exception inner)
        : XunitException($"Failed with seed {seed} (rerun with DEER_TEST_SEED={seed}): {inner.Message}", inner)
    {
        public int Seed { get; } = seed;
    }
}
