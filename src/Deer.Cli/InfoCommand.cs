using System.CommandLine;
using System.Reflection;
using System.Runtime.Intrinsics;

namespace DeerSharp.Cli;

/// <summary>`deer info`: version, backends, SIMD width and cores.</summary>
internal static class InfoCommand
{
    public static Command Create(TextWriter stdout)
    {
        var command = new Command("info", "Print the version, the backends found, the SIMD width and the cores.");
        command.SetAction(_ =>
        {
            string version = typeof(Deer).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
            int plus = version.IndexOf('+', StringComparison.Ordinal);
            stdout.WriteLine($"deer {(plus > 0 ? version[..plus] : version)}");
            stdout.WriteLine($"runtime:   .NET {Environment.Version} on {System.Runtime.InteropServices.RuntimeInformation.OSDescription} ({System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture})");
            stdout.WriteLine($"cores:     {Environment.ProcessorCount}");
            string widest = Vector512.IsHardwareAccelerated ? "512-bit (AVX-512)"
                : Vector256.IsHardwareAccelerated ? "256-bit (AVX2)"
                : Vector128.IsHardwareAccelerated ? "128-bit" : "none (scalar)";
            stdout.WriteLine($"simd:      {widest}; Vector<T> is {Vector<byte>.Count * 8}-bit ({Vector<float>.Count} floats, {Vector<double>.Count} doubles)");
            stdout.WriteLine("backends:  cpu (available)");
            foreach (string line in Gpu.IlgpuBackend.Describe())
            {
                stdout.WriteLine($"           {line}");
            }

            return 0;
        });
        return command;
    }
}
