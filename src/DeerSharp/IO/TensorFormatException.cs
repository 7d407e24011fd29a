namespace DeerSharp.IO;

/// <summary>
/// A tensor file is malformed, truncated, of an unsupported type or layout, or lacks a requested key. The message names
/// the file (and key) and what was expected against what was found. The readers throw this, <see cref="IOException"/>
/// and <see cref="UnauthorizedAccessException"/>, and nothing else.
/// </summary>
public sealed class TensorFormatException : FormatException
{
    /// <summary>Creates the exception.</summary>
    public TensorFormatException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public TensorFormatException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    public TensorFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
