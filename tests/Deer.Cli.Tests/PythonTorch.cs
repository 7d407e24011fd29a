using System.Diagnostics;

namespace DeerSharp.Cli.Tests;

/// <summary>
/// Finds a Python with torch and numpy (DEER_PYTHON, then Debian's /usr/bin/python3, then python3 on PATH), once.
/// .ci/run installs Debian's python3-torch; without it the PyTorch comparisons skip and say why.
/// </summary>
internal static class PythonTorch
{
    private static readonly Lazy<(string? Interpreter, string Why)> Found = new(Find);

    public static string? Interpreter => Found.Value.Interpreter;

    public static string WhyMissing => Found.Value.Why;

    private static (string?, string) Find()
    {
        var tried = new List<string>();
        foreach (string? candidate in new[] { Environment.GetEnvironmentVariable("DEER_PYTHON"), "/usr/bin/python3", "python3" })
        {
            if (string.IsNullOrEmpty(candidate))
            {
                continue;
            }

            (int code, string output) = Run(candidate, ["-c", "import torch, numpy; print(torch.__version__)"], TimeSpan.FromSeconds(60));
            if (code == 0)
            {
                return (candidate, "");
            }

            tried.Add($"{candidate}: {output.Trim().Split('\n').LastOrDefault() ?? "failed"}");
        }

        return (null, "no Python with torch and numpy was found (install Debian's python3-torch, as .ci/run does, or set DEER_PYTHON); tried "
                      + string.Join("; ", tried));
    }

    public static (int Code, string Output) Run(string file, string[] args, TimeSpan timeout)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in args)
        {
            info.ArgumentList.Add(a);
        }

        try
        {
            using Process p = Process.Start(info)!;
            Task<string> stdout = p.StandardOutput.ReadToEndAsync(), stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(timeout))
            {
                p.Kill(entireProcessTree: true);
                return (-1, "timed out");
            }

            return (p.ExitCode, stdout.Result + stderr.Result);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, e.Message);
        }
    }
}

/// <summary>A fact that needs Python with torch; skipped, with the reason, where there is none.</summary>
internal sealed class TorchFactAttribute : FactAttribute
{
    public TorchFactAttribute()
    {
        if (PythonTorch.Interpreter is null)
        {
            Skip = PythonTorch.WhyMissing;
        }
    }
}
