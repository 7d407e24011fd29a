namespace DeerSharp.Cli;

/// <summary>The CLI's spelling of each method.</summary>
internal static class MethodNames
{
    public static readonly string[] All = ["auto", "sequential", "deer", "quasi-deer", "quasi-elk", "picard", "scan"];

    public static string Name(SolveMethod method) => method switch
    {
        SolveMethod.Auto => "auto",
        SolveMethod.Sequential => "sequential",
        SolveMethod.Deer => "deer",
        SolveMethod.QuasiDeer => "quasi-deer",
        SolveMethod.Picard => "picard",
        SolveMethod.QuasiElk => "quasi-elk",
        SolveMethod.Scan => "scan",
        _ => method.ToString(),
    };

    public static SolveMethod Parse(string name) => name switch
    {
        "auto" => SolveMethod.Auto,
        "sequential" => SolveMethod.Sequential,
        "deer" => SolveMethod.Deer,
        "quasi-deer" => SolveMethod.QuasiDeer,
        "picard" => SolveMethod.Picard,
        "quasi-elk" => SolveMethod.QuasiElk,
        "scan" => SolveMethod.Scan,
        _ => throw new UsageException($"--method must be one of {string.Join(", ", All)}; got '{name}'."),
    };
}
