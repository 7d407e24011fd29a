namespace DeerSharp;

/// <summary>How the adjoint recurrence v_t = ∂L/∂h_t + J_{t+1}ᵀ v_{t+1} is solved (reference §7). Both give the exact gradient.</summary>
public enum AdjointMethod
{
    /// <summary>The scan when the forward pass used an iterative method, backpropagation through time after the loop.</summary>
    Auto,

    /// <summary>
    /// All Jacobians at once (in parallel), the reverse-time linear recurrence with Jᵀ by the scan, then every step's
    /// parameter and input gradients at once as block matrix products. O(T n²) memory, like DEER.
    /// </summary>
    Scan,

    /// <summary>
    /// Backpropagation through time: one vector-Jacobian product per step, from the last step back. The reference. For
    /// the tanh RNN, the GRU and the LSTM only W_hhᵀ δ and the gates' derivatives are done step by step; W_hh h, the gates and every
    /// parameter and input gradient are block matrix products over the cores; for a cell that declares Jacobian blocks, the
    /// blocks of every step are formed in parallel and only J_{t+1}ᵀ v_{t+1} over them is done step by step (docs/gradients.md).
    /// </summary>
    Sequential,
}
