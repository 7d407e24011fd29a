namespace DeerSharp;

/// <summary>The trajectory an iterative method starts from, unless a warm start is passed to the solve.</summary>
public enum InitialGuess
{
    /// <summary>Every state zero.</summary>
    Zeros,

    /// <summary>Every state equal to the initial state h0.</summary>
    BroadcastInitialState,
}
