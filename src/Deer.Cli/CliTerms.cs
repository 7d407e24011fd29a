namespace DeerSharp.Cli;

/// <summary>
/// The library's messages name its API (MaxIterations, SolveMethod.Deer, FallbackPolicy.Sequential); on the command line
/// the user typed flags. Every message the CLI prints passes through <see cref="Translate"/>, which names the flag for each
/// API term that has one. The CLI tests check that no API name is left in what a failing command prints.
/// </summary>
internal static class CliTerms
{
    /// <summary>API spelling → CLI spelling, longest first so that a prefix never shadows a longer term.</summary>
    private static readonly (string Api, string Cli)[] Terms =
    [
        ("raise SolveOptions.MemoryBudgetBytes or use ", "use "),
        ("FallbackPolicy.Sequential", "--fallback sequential"),
        ("SolveMethod.QuasiDeer", "--method quasi-deer"),
        ("SolveMethod.Sequential", "--method sequential"),
        ("SolveMethod.QuasiElk", "--method quasi-elk"),
        ("SolveMethod.Picard", "--method picard"),
        ("SolveMethod.Deer", "--method deer"),
        ("AdjointMethod.Sequential", "--method sequential (then the adjoint is backpropagation through time)"),
        ("Use Device = Cpu or Auto.", "Use --device cpu or --device auto."),
        ("use Device = Cpu.", "use --device cpu."),
        ("Raise MaxIterations", "Raise --max-iter"),
        ("loosen the tolerances", "loosen --atol and --rtol"),
        ("MaxIterations", "--max-iter"),
    ];

    /// <summary>The message with every API term that has a flag replaced by the flag.</summary>
    public static string Translate(string message)
    {
        foreach ((string api, string cli) in Terms)
        {
            message = message.Replace(api, cli, StringComparison.Ordinal);
        }

        return message;
    }
}
