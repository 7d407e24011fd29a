namespace DeerSharp.IO;

/// <summary>What every tensor file reader does before it parses: open the file, and check the stream can say how long it is.</summary>
internal static class TensorFiles
{
    /// <summary>Reads the file at <paramref name="path"/> with <paramref name="read"/>, naming it by its path in errors.</summary>
    public static TResult Read<TResult>(string path, Func<Stream, string, TResult> read)
    {
        ArgumentNullException.ThrowIfNull(path);
        using FileStream stream = File.OpenRead(path);
        return read(stream, path);
    }

    /// <summary>The bytes left in a seekable <paramref name="stream"/>, so a header's claims can be checked before reading.</summary>
    public static long Remaining(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanSeek)
        {
            throw new ArgumentException("The stream must be seekable, so its length can be checked before reading.", nameof(stream));
        }

        return stream.Length - stream.Position;
    }
}
