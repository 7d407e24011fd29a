using System.CommandLine;

namespace DeerSharp.Cli;

/// <summary>
/// "Did you mean": for a command line that did not parse, the nearest command or flag to what was typed (an edit
/// distance of at most 2, or a prefix), including a flag that exists but is not the one a missing required flag is
/// spelled like (`--input` where `--inputs` is required).
/// </summary>
internal static class Suggestions
{
    public static string For(ParseResult parse, RootCommand root, IReadOnlyList<string> args)
    {
        Command command = parse.CommandResult.Command;
        if (command == root && args.Count > 0 && !args[0].StartsWith('-') && root.Subcommands.All(c => c.Name != args[0]))
        {
            return Nearest(args[0], root.Subcommands.Select(c => c.Name)) is { } name ? $" Did you mean 'deer {name}'?" : "";
        }

        string[] flags = [.. command.Options.SelectMany(o => o.Aliases.Prepend(o.Name)).Where(n => n.StartsWith("--", StringComparison.Ordinal)).Distinct()];
        string[] typed = [.. args.Where(a => a.StartsWith("--", StringComparison.Ordinal)).Select(a => a.Split('=')[0]).Distinct()];
        foreach (string t in typed.Where(t => !flags.Contains(t)))
        {
            if (Nearest(t, flags) is { } flag)
            {
                return $" Did you mean {flag} (not {t})?";
            }
        }

        foreach (Option missing in command.Options.Where(o => o.Required && !typed.Contains(o.Name)))
        {
            if (Nearest(missing.Name, typed) is { } t)
            {
                return $" Did you mean {missing.Name} (not {t})?";
            }
        }

        return "";
    }

    /// <summary>The candidate closest to <paramref name="typed"/>, if one is within 2 edits or extends it; else null.</summary>
    private static string? Nearest(string typed, IEnumerable<string> candidates) =>
        candidates.Where(c => c != typed)
            .Select(c => (Name: c, Distance: Distance(typed, c)))
            .Where(c => c.Distance <= 2 || (typed.Length >= 4 && c.Name.StartsWith(typed, StringComparison.Ordinal)))
            .OrderBy(c => c.Distance)
            .Select(c => c.Name)
            .FirstOrDefault();

    /// <summary>Levenshtein distance.</summary>
    private static int Distance(string a, string b)
    {
        int[] previous = [.. Enumerable.Range(0, b.Length + 1)], current = new int[b.Length + 1];
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                current[j] = Math.Min(Math.Min(current[j - 1], previous[j]) + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }
}
