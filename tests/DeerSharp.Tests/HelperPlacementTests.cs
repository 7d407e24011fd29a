namespace DeerSharp.Tests;

/// <summary>
/// A helper thread is kept off its caller's core (<see cref="CpuPlacement"/>): where a woken helper shared the caller's
/// core, a batch solve ran at one core's speed. The helper's own affinity, read inside its job, must be every allowed
/// core but the one the caller named; checked for each allowed core in turn, so the mask must change between jobs.
/// </summary>
public class HelperPlacementTests
{
    [Fact]
    public void A_helper_runs_anywhere_allowed_but_on_its_callers_core()
    {
        int[]? allowed = CpuPlacement.Affinity(0);
        if (!OperatingSystem.IsLinux() || allowed is null || allowed.Length < 2 || Environment.ProcessorCount < 2)
        {
            return;                                             // nothing to place: one core, or not Linux
        }

        foreach (int caller in allowed.Take(4))
        {
            int[]? seen = null;
            int ranOn = -1;
            Helpers.Helper[] started = [];
            // Another test's solve may hold the helpers for a while: try again until one is free.
            for (int attempt = 0; attempt < 2000 && started.Length == 0; attempt++)
            {
                started = Helpers.Start(() => (seen, ranOn) = (CpuPlacement.Affinity(0), CpuPlacement.CurrentCpu()), 1, caller);
                if (started.Length == 0)
                {
                    Thread.Sleep(5);
                }
            }

            Assert.NotEmpty(started);
            Helpers.Wait(started);
            Assert.NotNull(seen);
            Assert.Equal(allowed.Where(c => c != caller), seen);
            Assert.NotEqual(caller, ranOn);
        }
    }
}
