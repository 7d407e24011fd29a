namespace DeerSharp.Cells;

/// <summary>
/// A cell struct that needs its constructor to run. <c>default(GruCell&lt;float&gt;)</c> (or <c>new GruCell&lt;float&gt;()</c>)
/// holds no weights; the solvers ask this before touching the cell, and turn a default struct into an ArgumentException
/// instead of a NullReferenceException deep inside a solve.
/// </summary>
internal interface IConstructedCell
{
    /// <summary>True for a default struct, whose constructor never ran.</summary>
    bool IsDefault { get; }
}

/// <summary>The check every entry point runs on a cell.</summary>
internal static class CellCheck
{
    public static void Require<TCell>(TCell cell, string name)
    {
        if (cell is null)
        {
            throw new ArgumentNullException(name);
        }

        if (cell is IConstructedCell { IsDefault: true })
        {
            throw new ArgumentException(
                $"{name} is a default {TypeName(typeof(TCell))} with no weights: build it with a constructor (e.g. new {TypeName(typeof(TCell))}(weights)) or its Random factory.",
                name);
        }
    }

    private static string TypeName(Type type) =>
        type.IsGenericType ? $"{type.Name[..type.Name.IndexOf('`', StringComparison.Ordinal)]}<{string.Join(", ", type.GetGenericArguments().Select(TypeName))}>" : type.Name;
}
