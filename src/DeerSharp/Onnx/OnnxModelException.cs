namespace DeerSharp.Onnx;

/// <summary>
/// An ONNX model Deer cannot run as it is: a malformed or non-ONNX file, an operator or attribute it does not implement,
/// or an input of the wrong shape. The message names the file, the node (its name and operator), the attribute or the
/// input, and what was expected against what was found.
/// </summary>
public sealed class OnnxModelException : FormatException
{
    /// <summary>Creates the exception.</summary>
    public OnnxModelException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public OnnxModelException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    public OnnxModelException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
