using System.Diagnostics;
using System.Globalization;

namespace DeerSharp.Cli;

/// <summary>
/// A one-line progress display on stderr for long solves, redrawn at most ten times a second and only after the first
/// half second, so short runs print nothing. Only on a terminal: when stderr is redirected (a pipe, a file, a test) it
/// is never created, and the tool stays quiet.
/// </summary>
internal sealed class TerminalProgress : IProgress<SolveProgress>, IDisposable
{
    private readonly TextWriter _stderr;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Lock _gate = new();
    private long _lastDraw = -1;
    private int _width;

    private TerminalProgress(TextWriter stderr) => _stderr = stderr;

    /// <summary>A display when <paramref name="stderr"/> is the console's and the console is a terminal; null otherwise.</summary>
    public static TerminalProgress? Create(TextWriter stderr) =>
        ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected ? new TerminalProgress(stderr) : null;

    public void Report(SolveProgress value)
    {
        long now = _clock.ElapsedMilliseconds;
        if (now < 500)
        {
            return;
        }

        lock (_gate)
        {
            if (_lastDraw >= 0 && now - _lastDraw < 100)
            {
                return;
            }

            _lastDraw = now;
            string line = string.Create(CultureInfo.InvariantCulture,
                $"deer: {MethodNames.Name(value.Method)} layer {value.Layer}, sequence {value.Sequence}{(value.Window > 0 ? $", window {value.Window}" : "")}, iteration {value.Iteration}, residual {value.Residual:G3} ({now / 1000.0:F1} s)");
            _stderr.Write("\r" + line.PadRight(_width));
            _width = line.Length;
        }
    }

    /// <summary>Clears the line, so what follows starts on a clean one.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_width > 0)
            {
                _stderr.Write("\r" + new string(' ', _width) + "\r");
                _width = 0;
            }
        }
    }
}
