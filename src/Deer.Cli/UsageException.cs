namespace DeerSharp.Cli;

/// <summary>Bad input to the CLI: exit code 2 and the message as one line on stderr.</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>An explicitly chosen method did not converge and no fallback was asked for: exit code 3.</summary>
internal sealed class NotConvergedException(string message) : Exception(message);
