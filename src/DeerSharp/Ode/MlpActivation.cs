namespace DeerSharp.Ode;

/// <summary>The nonlinearity between the linear layers of an <see cref="MlpField{T}"/>.</summary>
public enum MlpActivation
{
    /// <summary>tanh (nn.Tanh).</summary>
    Tanh,

    /// <summary>softplus, log(1 + eˣ) (nn.Softplus with beta 1).</summary>
    Softplus,

    /// <summary>max(0, x) (nn.ReLU); its derivative is taken as 0 at 0. Newton's quadratic convergence needs a smooth field.</summary>
    Relu,
}
