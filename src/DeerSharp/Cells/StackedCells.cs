using System.Globalization;

namespace DeerSharp.Cells;

/// <summary>
/// Layers of the same cell type stacked as in PyTorch's num_layers: layer k+1 reads layer k's outputs.
/// Each layer is solved over the whole sequence before the next one starts.
/// </summary>
public sealed class StackedCells<TCell, T>
    where TCell : IRecurrentCell<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly TCell[] _layers;

    /// <summary>Stacks <paramref name="layers"/>, bottom first; each layer's InputSize must equal the previous layer's OutputSize.</summary>
    public StackedCells(params TCell[] layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        if (layers.Length == 0)
        {
            throw new ArgumentException("A stack needs at least one layer.", nameof(layers));
        }

        foreach (TCell layer in layers)
        {
            CellCheck.Require(layer, nameof(layers));
        }

        for (int k = 1; k < layers.Length; k++)
        {
            if (layers[k].InputSize != layers[k - 1].OutputSize)
            {
                throw new ArgumentException(
                    string.Create(CultureInfo.InvariantCulture,
                        $"Layer {k} reads {layers[k].InputSize} inputs, but layer {k - 1} outputs {layers[k - 1].OutputSize}."),
                    nameof(layers));
            }
        }

        _layers = (TCell[])layers.Clone();
    }

    /// <summary>The layers, bottom first.</summary>
    public IReadOnlyList<TCell> Layers => _layers;
}
