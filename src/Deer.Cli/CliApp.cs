using System.CommandLine;
using DeerSharp.IO;

namespace DeerSharp.Cli;

/// <summary>
/// The deer command line. Exit codes: 0 success; 2 bad input (one line on stderr naming the file, key or shape);
/// 3 an explicitly chosen method did not converge; 1 an internal error.
/// </summary>
public static class CliApp
{
    /// <summary>Runs the CLI in-process with the given arguments and writers; returns the exit code.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        var root = new RootCommand("deer: parallel-in-time evaluation of nonlinear recurrences (DEER). 'deer demo' gives a tour.")
        {
            DemoCommand.Create(stdout),
            RunCommand.Create(stdout, stderr),
            ExportCommand.Create(stdout),
            GradCommand.Create(stdout),
            OdeCommand.Create(stdout),
            InfoCommand.Create(stdout),
            SelftestCommand.Create(stdout),
            Bench.BenchCommand.Create(stdout),
        };

        ParseResult parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            string command = parse.CommandResult.Command.Name;
            stderr.WriteLine($"deer: {OneLine(parse.Errors[0].Message)}{Suggestions.For(parse, root, args)} (see 'deer {(command == root.Name ? "" : command + " ")}--help').");
            return 2;
        }

        try
        {
            return parse.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
        }
        catch (UsageException e)
        {
            return Fail(stderr, e.Message, 2);
        }
        catch (NotConvergedException e)
        {
            return Fail(stderr, e.Message, 3);
        }
        catch (Exception e) when (e is TensorFormatException or Onnx.OnnxModelException or IOException or UnauthorizedAccessException or ArgumentException
                                      or NotSupportedException or InsufficientMemoryException or OutOfMemoryException)
        {
            return Fail(stderr, e.Message, 2);
        }
#pragma warning disable CA1031 // The CLI's contract: no stack trace ever reaches the user.
        catch (Exception e)
#pragma warning restore CA1031
        {
            return Fail(stderr, $"internal error ({e.GetType().Name}): {e.Message}. Please report it.", 1);
        }
    }

    private static int Fail(TextWriter stderr, string message, int code)
    {
        stderr.WriteLine($"deer: {OneLine(CliTerms.Translate(message))}");
        return code;
    }

    private static string OneLine(string text) => text.ReplaceLineEndings(" ").Trim();
}
