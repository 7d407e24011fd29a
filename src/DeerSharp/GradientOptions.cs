namespace DeerSharp;

/// <summary>Options for <see cref="Deer"/>.Gradient.</summary>
public sealed record GradientOptions
{
    /// <summary>The defaults.</summary>
    public static GradientOptions Default { get; } = new();

    /// <summary>How to solve the adjoint recurrence. Default: <see cref="AdjointMethod.Auto"/>.</summary>
    public AdjointMethod Adjoint { get; init; } = AdjointMethod.Auto;
}
