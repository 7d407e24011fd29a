using System.Text.RegularExpressions;

namespace DeerSharp.Tests;

/// <summary>
/// The layout docs/architecture.md describes, checked on the source: the library's namespaces (below the root, which
/// holds the public vocabulary and the entry points) use each other without a cycle, and no source file is over 400
/// lines. A namespace uses another when one of its files names a top-level type declared there (comments and strings
/// aside).
/// </summary>
public sealed partial class ArchitectureTests
{
    [Fact]
    public void The_namespaces_form_no_cycle()
    {
        Dictionary<string, HashSet<string>> uses = Dependencies(Path.Combine(Root(), "src", "DeerSharp"));
        Assert.True(uses.Count >= 8, $"found only {uses.Count} namespaces: {string.Join(", ", uses.Keys)}");
        var cycles = new List<string>();
        foreach (string start in uses.Keys)
        {
            // Depth-first from each namespace: reaching it again is a cycle.
            var stack = new Stack<(string Node, string Path)>([(start, start)]);
            var seen = new HashSet<string>();
            while (stack.Count > 0)
            {
                (string node, string path) = stack.Pop();
                foreach (string next in uses[node])
                {
                    if (next == start)
                    {
                        cycles.Add($"{path} → {start}");
                    }
                    else if (seen.Add(next))
                    {
                        stack.Push((next, $"{path} → {next}"));
                    }
                }
            }
        }

        Assert.True(cycles.Count == 0, "namespace cycles:\n" + string.Join('\n', cycles.Distinct()));
        // The dependencies the architecture promises, so the check cannot pass by finding nothing.
        Assert.Contains("Engines", uses["Driver"]);
        Assert.Contains("Cpu", uses["Driver"]);
        Assert.Contains("Gpu", uses["Driver"]);
        Assert.Contains("Engines", uses["Gpu"]);
        Assert.Contains("Cells", uses["Gpu"]);
        Assert.DoesNotContain("Gpu", uses["Cells"]);
        Assert.DoesNotContain("Driver", uses["Cells"]);
    }

    [Fact]
    public void No_source_file_is_over_400_lines()
    {
        string[] long_ = [.. Directory.EnumerateFiles(Path.Combine(Root(), "src"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .Select(f => (File: f, Lines: File.ReadLines(f).Count()))
            .Where(f => f.Lines > 400)
            .Select(f => $"{Path.GetRelativePath(Root(), f.File)}: {f.Lines} lines")];
        Assert.True(long_.Length == 0, string.Join('\n', long_));
    }

    /// <summary>For each namespace below DeerSharp (by its last part), the other such namespaces its files name a top-level type of.</summary>
    private static Dictionary<string, HashSet<string>> Dependencies(string library)
    {
        var files = Directory.EnumerateFiles(library, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .Select(f => (Namespace: NamespaceOf(File.ReadAllText(f)), Code: Strip(File.ReadAllText(f))))
            .Where(f => f.Namespace is not null)
            .ToList();
        var owners = new Dictionary<string, string>();
        foreach ((string? ns, string code) in files)
        {
            foreach (Match m in TopLevelType().Matches(code))
            {
                owners[m.Groups["name"].Value] = ns!;
            }
        }

        var uses = files.Select(f => f.Namespace!).Distinct().ToDictionary(n => n, _ => new HashSet<string>());
        foreach ((string? ns, string code) in files)
        {
            foreach (Match m in Identifier().Matches(code))
            {
                if (owners.TryGetValue(m.Value, out string? owner) && owner != ns)
                {
                    uses[ns!].Add(owner);
                }
            }
        }

        uses.Remove("");
        foreach (HashSet<string> targets in uses.Values)
        {
            targets.Remove("");
        }

        return uses;
    }

    /// <summary>The part after "DeerSharp." of a file's namespace; "" for the root; null for a file with none.</summary>
    private static string? NamespaceOf(string source)
    {
        Match m = FileNamespace().Match(source);
        return !m.Success ? null : m.Groups["ns"].Value == "DeerSharp" ? "" : m.Groups["ns"].Value["DeerSharp.".Length..];
    }

    /// <summary>The code without comments, strings and characters, whose words name nothing.</summary>
    private static string Strip(string source) => Comments().Replace(source, " ");

    private static string Root()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Deer.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException("Deer.sln was not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"^namespace\s+(?<ns>DeerSharp(\.\w+)*)\s*;", RegexOptions.Multiline)]
    private static partial Regex FileNamespace();

    [GeneratedRegex(@"^(public|internal)\s+(static\s+|sealed\s+|abstract\s+|readonly\s+|partial\s+|ref\s+)*(class|struct|interface|enum|record(\s+struct|\s+class)?)\s+(?<name>\w+)", RegexOptions.Multiline)]
    private static partial Regex TopLevelType();

    [GeneratedRegex(@"\b[A-Z]\w*\b")]
    private static partial Regex Identifier();

    [GeneratedRegex(@"//[^\n]*|/\*.*?\*/|@""(?:[^""]|"""")*""|\$?""(?:\\.|[^""\\\n])*""|'(?:\\.|[^'\\\n])'", RegexOptions.Singleline)]
    private static partial Regex Comments();
}
