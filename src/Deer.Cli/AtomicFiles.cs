namespace DeerSharp.Cli;

/// <summary>
/// Outputs written to temporary files beside their destinations and renamed into place only once every one of them is
/// complete, so a failed run leaves no output and no partial file behind.
/// </summary>
internal sealed class AtomicFiles : IDisposable
{
    private readonly List<(string Temp, string Final)> _pending = [];

    /// <summary>Creates a temporary file for <paramref name="destination"/> and lets <paramref name="write"/> fill it.</summary>
    public void Stage(string destination, string option, Action<Stream> write)
    {
        string full = Path.GetFullPath(destination);
        string? directory = Path.GetDirectoryName(full);
        if (directory is null || !Directory.Exists(directory))
        {
            throw new UsageException($"{option} {destination}: the directory '{directory}' does not exist.");
        }

        if (Directory.Exists(full))
        {
            throw new UsageException($"{option} {destination}: is a directory.");
        }

        string temp = Path.Combine(directory, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        _pending.Add((temp, full));
        using var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write);
        write(stream);
        stream.Flush(flushToDisk: true);
    }

    /// <summary>Renames every staged file into place.</summary>
    public void Commit()
    {
        foreach (var (temp, final) in _pending)
        {
            File.Move(temp, final, overwrite: true);
        }

        _pending.Clear();
    }

    /// <summary>Deletes whatever was staged and not committed.</summary>
    public void Dispose()
    {
        foreach (var (temp, _) in _pending)
        {
            try
            {
                File.Delete(temp);
            }
            catch (IOException)
            {
                // Best effort: the temporary name starts with '.', so a leftover is hidden and never mistaken for output.
            }
        }

        _pending.Clear();
    }
}
