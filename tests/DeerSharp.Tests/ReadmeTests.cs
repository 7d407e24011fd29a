using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace DeerSharp.Tests;

/// <summary>
/// Every ```csharp block in README.md compiles against the library, as a user's Program.cs would: top-level statements,
/// the block's own usings plus the SDK's implicit ones, nullable on, warnings as errors. The README's placeholders for the
/// user's own data (LoadInputs, h0, y0, times, DLossDy, ...) are declared here, and nothing else is.
/// </summary>
public partial class ReadmeTests
{
    /// <summary>The usings a console project gets from ImplicitUsings.</summary>
    private const string ImplicitUsings = """
        global using System;
        global using System.Collections.Generic;
        global using System.IO;
        global using System.Linq;
        global using System.Net.Http;
        global using System.Threading;
        global using System.Threading.Tasks;
        global using static ReadmePlaceholders;
        """;

    /// <summary>Stand-ins for the data a reader brings.</summary>
    private const string Placeholders = """
        public static class ReadmePlaceholders
        {
            public static T[,] LoadInputs<T>() where T : struct => new T[64, 4];
            public static float[] h0 => new float[16];
            public static double[,] inputs => new double[64, 1];
            public static double[] y0 => new double[4];
            public static double[] times => [0.0, 0.5, 1.0];
            public static double[] DLossDy(double[] states) => new double[states.Length];
        }
        """;

    [GeneratedRegex(@"```csharp\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex CSharpBlock();

    /// <summary>The READMEs with C# in them: the repository's, and the library package's (shown on NuGet).</summary>
    private static readonly string[] Files = ["README.md", "src/DeerSharp/README.md"];

    public static TheoryData<string, int> Blocks()
    {
        var data = new TheoryData<string, int>();
        foreach (string file in Files)
        {
            for (int i = 0; i < CSharpBlock().Count(Readme(file)); i++)
            {
                data.Add(file, i);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Blocks))]
    public void Readme_block_compiles(string file, int index)
    {
        string block = CSharpBlock().Matches(Readme(file))[index].Groups[1].Value;
        var parse = new CSharpParseOptions(LanguageVersion.Preview);
        SyntaxTree[] trees =
        [
            CSharpSyntaxTree.ParseText(block, parse, path: $"{file} block {index + 1}"),
            CSharpSyntaxTree.ParseText(ImplicitUsings, parse),
            CSharpSyntaxTree.ParseText(Placeholders, parse),
        ];
        var options = new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable,
            generalDiagnosticOption: ReportDiagnostic.Error);
        // Hidden and informational diagnostics (unused usings, unused variables in a sample) are not errors.
        CSharpCompilation compilation = CSharpCompilation.Create("Readme", trees, References(), options);
        string[] errors = [.. compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).Select(d => d.ToString())];
        Assert.True(errors.Length == 0, $"{file} block {index + 1} does not compile:\n{string.Join('\n', errors)}\n---\n{block}");
    }

    [Fact]
    public void Readme_has_csharp_blocks() => Assert.True(CSharpBlock().Count(Readme("README.md")) >= 4 && CSharpBlock().Count(Readme("src/DeerSharp/README.md")) >= 2);

    private static IEnumerable<MetadataReference> References()
    {
        string platform = (string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!;
        return platform.Split(Path.PathSeparator).Where(p => p.Length > 0).Select(p => MetadataReference.CreateFromFile(p))
            .Append(MetadataReference.CreateFromFile(typeof(Deer).Assembly.Location));
    }

    private static string Readme(string file)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string path = Path.Combine(dir.FullName, file);
            if (File.Exists(path) && File.Exists(Path.Combine(dir.FullName, "Deer.sln")))
            {
                return File.ReadAllText(path).Replace("\r\n", "\n", StringComparison.Ordinal);
            }
        }

        throw new FileNotFoundException($"{file} (under the folder of Deer.sln) was not found above {AppContext.BaseDirectory}");
    }
}
