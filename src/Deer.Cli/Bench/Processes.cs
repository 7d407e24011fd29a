using System.Diagnostics;

namespace DeerSharp.Cli.Bench;

/// <summary>Fresh processes for the cold benches: this `deer` itself, or a peer program, timed from start to exit.</summary>
internal static class Processes
{
    /// <summary>Runs this executable (or `dotnet deer.dll` when launched that way) with the arguments; returns the process's wall time in seconds.</summary>
    public static double RunSelf(string[] args)
    {
        string self = Environment.ProcessPath ?? throw new InvalidOperationException("cannot find this process's executable to run it cold");
        string[] prefix = Path.GetFileNameWithoutExtension(self) == "dotnet" ? [Path.Combine(AppContext.BaseDirectory, "deer.dll")] : [];
        return Run(self, [.. prefix, .. args], "deer", out _);
    }

    /// <summary>
    /// Runs a .NET program's dll with the dotnet host that runs this process (or `dotnet`), with <paramref name="environment"/>
    /// added to its environment; returns its wall time in seconds.
    /// </summary>
    public static double RunDotnet(string dll, string[] args, out string stdout, params (string Name, string Value)[] environment)
    {
        string host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } h ? h
            : Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet" ? Environment.ProcessPath! : "dotnet";
        return Run(host, [dll, .. args], Path.GetFileNameWithoutExtension(dll), out stdout, environment);
    }

    /// <summary>Runs <paramref name="file"/> to its end; throws, with its output, when it fails.</summary>
    private static double Run(string file, string[] args, string name, out string stdout, params (string Name, string Value)[] environment)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach ((string key, string value) in environment)
        {
            info.Environment[key] = value;
        }

        foreach (string a in args)
        {
            info.ArgumentList.Add(a);
        }

        long start = Stopwatch.GetTimestamp();
        using Process p = Process.Start(info)!;
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"the cold `{name} {string.Join(' ', args)}` failed (exit {p.ExitCode}): {(stderr.Result + stdout).Trim()}");
        }

        return seconds;
    }
}
