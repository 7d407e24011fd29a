using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace DeerSharp.Samples;

/// <summary>
/// The samples' command lines, on System.CommandLine: `--help` prints the options with their defaults, and a bad value
/// or an unknown option is one line on stderr with exit code 2. Linked into every sample project.
/// </summary>
internal static class SampleCommand
{
    /// <summary>
    /// Parses <paramref name="args"/>. Returns an exit code when the program should stop here (2 after a bad command line,
    /// 0 after --help), or null to go on and read the options from <paramref name="parse"/>.
    /// </summary>
    public static int? Parse(string name, string description, string[] args, Option[] options, out ParseResult parse)
    {
        var root = new RootCommand(description);
        foreach (Option option in options)
        {
            root.Options.Add(option);
        }

        parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            Console.Error.WriteLine($"{name}: {parse.Errors[0].Message.ReplaceLineEndings(" ").Trim()} (see --help).");
            return 2;
        }

        // The root has no action of its own, so an action here is --help's (or --version's).
        return parse.Action is null ? null : parse.Invoke();
    }

    /// <summary>An integer option with a default and a lower bound, checked at parse time.</summary>
    public static Option<int> Int(string name, string description, int defaultValue, int minimum)
    {
        var option = new Option<int>(name) { Description = $"{description} (at least {minimum})", DefaultValueFactory = _ => defaultValue };
        option.Validators.Add(result =>
        {
            if (!Converts(result, static t => int.TryParse(t, CultureInfo.InvariantCulture, out _)))
            {
                return;
            }

            int value = result.GetValueOrDefault<int>();
            if (value < minimum)
            {
                result.AddError($"{name} must be at least {minimum}; it is {value}.");
            }
        });
        return option;
    }

    /// <summary>A positive real option with a default, checked at parse time.</summary>
    public static Option<double> Positive(string name, string description, double defaultValue)
    {
        var option = new Option<double>(name) { Description = description, DefaultValueFactory = _ => defaultValue };
        option.Validators.Add(result =>
        {
            if (!Converts(result, static t => double.TryParse(t, CultureInfo.InvariantCulture, out _)))
            {
                return;
            }

            double value = result.GetValueOrDefault<double>();
            if (!(value > 0) || !double.IsFinite(value))
            {
                result.AddError($"{name} must be a positive number; it is {value}.");
            }
        });
        return option;
    }

    /// <summary>Whether the option's value converts; when it does not, System.CommandLine reports that itself.</summary>
    private static bool Converts(OptionResult result, Func<string, bool> tryParse) => result.Tokens.All(t => tryParse(t.Value));
}
