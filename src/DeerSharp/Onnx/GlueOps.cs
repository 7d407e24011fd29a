using Onnx;

namespace DeerSharp.Onnx;

/// <summary>
/// The operators PyTorch's exporter writes around recurrent nodes (docs/onnx.md): they move, reshape, slice and join
/// tensors, and compute shapes. Transpose, Squeeze, Unsqueeze, Slice, Identity and (where the strides allow) Reshape view
/// their input's storage; the rest copy.
/// Semantics follow the ONNX operator specification for opsets 7 to 23 (Squeeze and Unsqueeze take axes as attributes before
/// opset 13 and as inputs after; Slice its bounds as attributes before opset 10).
/// </summary>
internal static class GlueOps
{
    /// <summary>The operators this file runs.</summary>
    public static readonly IReadOnlySet<string> Names = new HashSet<string>(StringComparer.Ordinal)
    {
        "Constant", "ConstantOfShape", "Identity", "Cast", "Shape", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Concat", "Slice", "Gather",
    };

    public static OnnxTensor Run(OnnxNode node, Func<int, OnnxTensor?> input, int opset) => node.Op switch
    {
        "Constant" => Constant(node),
        "ConstantOfShape" => ConstantOfShape(node, Required(node, input, 0)),
        "Identity" => Required(node, input, 0),
        "Cast" => Cast(node, Required(node, input, 0)),
        "Shape" => Shape(node, Required(node, input, 0)),
        "Transpose" => Transpose(node, Required(node, input, 0)),
        "Reshape" => Reshape(node, Required(node, input, 0), Required(node, input, 1)),
        "Squeeze" => Squeeze(node, Required(node, input, 0), opset >= 13 ? input(1)?.AsIntegers($"{node.Label}: axes") : node.Ints("axes")),
        "Unsqueeze" => Unsqueeze(node, Required(node, input, 0), opset >= 13 ? Required(node, input, 1).AsIntegers($"{node.Label}: axes") : node.Ints("axes")),
        "Concat" => Concat(node, [.. Enumerable.Range(0, node.Inputs.Count).Select(k => Required(node, input, k))]),
        "Slice" => Slice(node, input, opset),
        "Gather" => Gather(node, Required(node, input, 0), Required(node, input, 1)),
        _ => throw node.Error($"Deer does not run the operator {node.Op}."),
    };

    private static OnnxTensor Required(OnnxNode node, Func<int, OnnxTensor?> input, int k) =>
        input(k) ?? throw node.Error($"input {k} is missing.");

    private static OnnxTensor Constant(OnnxNode node)
    {
        if (node.Attribute("value") is { } value)
        {
            return OnnxTensor.FromProto(value.T, $"{node.Label}, attribute 'value'");
        }

        if (node.Attribute("value_int") is not null)
        {
            return OnnxTensor.Ints([], [node.Int("value_int", 0)]);
        }

        if (node.Ints("value_ints") is { } ints)
        {
            return OnnxTensor.Ints([ints.Length], ints);
        }

        if (node.Attribute("value_float") is not null)
        {
            return OnnxTensor.Real(OnnxElement.Float, [], [node.Float("value_float", 0)]);
        }

        if (node.Attribute("value_floats") is { } floats)
        {
            return OnnxTensor.Of([.. floats.Floats], [floats.Floats.Count]);
        }

        throw node.Error("a Constant needs 'value', 'value_int(s)' or 'value_float(s)'; Deer reads those.");
    }

    /// <summary>A tensor of the given shape filled with the one value of attribute 'value' (float 0 by default).</summary>
    private static OnnxTensor ConstantOfShape(OnnxNode node, OnnxTensor shape)
    {
        long[] dims = shape.AsIntegers($"{node.Label}: input");
        OnnxTensor fill = node.Attribute("value") is { } value ? OnnxTensor.FromProto(value.T, $"{node.Label}, attribute 'value'") : OnnxTensor.Real(OnnxElement.Float, [1], [0]);
        if (fill.Count != 1)
        {
            throw node.Error($"must hold one value; it holds {fill.Count}.", "value");
        }

        long count = OnnxTensor.Elements(dims);
        return fill.Integers is { } i ? OnnxTensor.Ints(dims, [.. Enumerable.Repeat(i[0], (int)count)])
            : OnnxTensor.Real(fill.Type, dims, [.. Enumerable.Repeat(fill.AsDoubles()[0], (int)count)]);
    }

    private static OnnxTensor Cast(OnnxNode node, OnnxTensor x)
    {
        var to = (TensorProto.Types.DataType)node.Int("to", 0);
        OnnxElement target = to switch
        {
            TensorProto.Types.DataType.Float => OnnxElement.Float,
            TensorProto.Types.DataType.Double => OnnxElement.Double,
            TensorProto.Types.DataType.Int64 or TensorProto.Types.DataType.Int32 => OnnxElement.Int64,
            _ => throw node.Error($"casting to {to} is not supported (float, double, int32 and int64 are).", "to"),
        };
        if (target == OnnxElement.Int64)
        {
            return x.Integers is not null ? x : OnnxTensor.Ints(x.Shape, [.. x.AsDoubles().Select(v => (long)Math.Truncate(v))]);
        }

        return x.Type == target ? x : OnnxTensor.Real(target, x.Shape, x.AsDoubles());
    }

    private static OnnxTensor Shape(OnnxNode node, OnnxTensor x)
    {
        int rank = x.Rank;
        int start = Axis(node, node.Int("start", 0), rank, clamp: true), end = Axis(node, node.Int("end", rank), rank, clamp: true);
        long[] dims = [.. x.Shape.Skip(start).Take(Math.Max(0, end - start))];
        return OnnxTensor.Ints([dims.Length], dims);
    }

    private static OnnxTensor Transpose(OnnxNode node, OnnxTensor x)
    {
        int rank = x.Rank;
        long[] perm = node.Ints("perm") ?? [.. Enumerable.Range(0, rank).Reverse().Select(i => (long)i)];
        if (perm.Length != rank || perm.Distinct().Count() != rank || perm.Any(p => p < 0 || p >= rank))
        {
            throw node.Error($"[{string.Join(", ", perm)}] is not a permutation of the {rank} axes of its input {x.ShapeText}.", "perm");
        }

        return x.View([.. perm.Select(p => x.Shape[p])], [.. perm.Select(p => x.Strides[p])], x.Offset);
    }

    private static OnnxTensor Reshape(OnnxNode node, OnnxTensor x, OnnxTensor target)
    {
        long[] requested = target.AsIntegers($"{node.Label}: shape");
        bool allowZero = node.Int("allowzero", 0) != 0;
        var shape = new long[requested.Length];
        int infer = -1;
        long known = 1;
        for (int i = 0; i < shape.Length; i++)
        {
            long d = requested[i];
            if (d == 0 && !allowZero)
            {
                d = i < x.Rank ? x.Shape[i] : throw node.Error($"shape {Text(requested)} copies dimension {i}, which its input {x.ShapeText} lacks.");
            }

            if (d == -1)
            {
                infer = infer < 0 ? i : throw node.Error($"shape {Text(requested)} has more than one -1.");
                continue;
            }

            shape[i] = d >= 0 ? d : throw node.Error($"shape {Text(requested)} has a negative dimension.");
            known *= d;
        }

        if (infer >= 0)
        {
            shape[infer] = known == 0 ? 0 : x.Count / known;
        }

        if (OnnxTensor.Elements(shape) != x.Count)
        {
            throw node.Error($"cannot reshape {x.ShapeText} ({x.Count} values) to {Text(requested)}.");
        }

        // A view where the storage allows one (as when a Reshape joins a direction axis of length 1 to the hidden axis).
        return x.IsContiguous ? x.With(shape, x.Values) : x.ReshapeStrides(shape) is { } strides ? x.View(shape, strides, x.Offset) : x.With(shape, x.Values);
    }

    private static OnnxTensor Squeeze(OnnxNode node, OnnxTensor x, long[]? axes)
    {
        int rank = x.Rank;
        HashSet<int> drop = axes is null ? [.. Enumerable.Range(0, rank).Where(i => x.Shape[i] == 1)] : [.. axes.Select(a => Axis(node, a, rank))];
        foreach (int a in drop)
        {
            if (x.Shape[a] != 1)
            {
                throw node.Error($"axis {a} of {x.ShapeText} has length {x.Shape[a]}, not 1: it cannot be squeezed.");
            }
        }

        return x.View([.. x.Shape.Where((_, i) => !drop.Contains(i))], [.. x.Strides.Where((_, i) => !drop.Contains(i))], x.Offset);
    }

    private static OnnxTensor Unsqueeze(OnnxNode node, OnnxTensor x, long[]? axes)
    {
        if (axes is null)
        {
            throw node.Error("Unsqueeze needs axes.", "axes");
        }

        int rank = x.Rank + axes.Length;
        HashSet<int> insert = [.. axes.Select(a => Axis(node, a, rank))];
        var shape = new long[rank];
        var strides = new long[rank];
        for (int i = 0, k = 0; i < rank; i++)
        {
            (shape[i], strides[i]) = insert.Contains(i) ? (1, 0) : (x.Shape[k], x.Strides[k++]);
        }

        return x.View(shape, strides, x.Offset);
    }

    private static OnnxTensor Concat(OnnxNode node, OnnxTensor[] parts)
    {
        OnnxTensor first = parts[0];
        int axis = Axis(node, node.Int("axis", 0), first.Rank);
        foreach (OnnxTensor p in parts)
        {
            if (p.Rank != first.Rank || p.Type != first.Type || Enumerable.Range(0, first.Rank).Any(i => i != axis && p.Shape[i] != first.Shape[i]))
            {
                throw node.Error($"cannot join {string.Join(" and ", parts.Select(q => $"{q.Type} {q.ShapeText}"))} along axis {axis}.");
            }
        }

        long[] shape = [.. first.Shape];
        shape[axis] = parts.Sum(p => p.Shape[axis]);
        long outer = first.Shape.Take(axis).Aggregate(1L, (a, b) => a * b);
        Array values = first.NewValues(OnnxTensor.Elements(shape));
        long at = 0;
        for (long o = 0; o < outer; o++)
        {
            foreach (OnnxTensor p in parts)
            {
                long block = p.Count / Math.Max(1, outer);
                Array.Copy(p.Values, o * block, values, at, block);
                at += block;
            }
        }

        return first.With(shape, values);
    }

    private static OnnxTensor Slice(OnnxNode node, Func<int, OnnxTensor?> input, int opset)
    {
        OnnxTensor x = Required(node, input, 0);
        int rank = x.Rank;
        long[] starts, ends;
        long[]? axes, steps;
        if (opset >= 10)
        {
            starts = Required(node, input, 1).AsIntegers($"{node.Label}: starts");
            ends = Required(node, input, 2).AsIntegers($"{node.Label}: ends");
            axes = input(3)?.AsIntegers($"{node.Label}: axes");
            steps = input(4)?.AsIntegers($"{node.Label}: steps");
        }
        else
        {
            starts = node.Ints("starts") ?? throw node.Error("Slice needs starts.", "starts");
            ends = node.Ints("ends") ?? throw node.Error("Slice needs ends.", "ends");
            axes = node.Ints("axes");
            steps = null;
        }

        axes ??= [.. Enumerable.Range(0, starts.Length).Select(i => (long)i)];
        long[] begin = new long[rank], step = [.. Enumerable.Repeat(1L, rank)], shape = [.. x.Shape];
        for (int k = 0; k < axes.Length; k++)
        {
            int a = Axis(node, axes[k], rank);
            long n = x.Shape[a], s = steps is null ? 1 : steps[k];
            if (s == 0)
            {
                throw node.Error($"step 0 on axis {a}.");
            }

            long b = starts[k] < 0 ? starts[k] + n : starts[k], e = ends[k] < 0 ? ends[k] + n : ends[k];
            (b, e) = s > 0 ? (Math.Clamp(b, 0, n), Math.Clamp(e, 0, n)) : (Math.Clamp(b, -1, n - 1), Math.Clamp(e, -1, n - 1));
            begin[a] = b;
            step[a] = s;
            shape[a] = s > 0 ? Math.Max(0, (e - b + s - 1) / s) : Math.Max(0, (b - e - s - 1) / -s);
        }

        long offset = x.Offset + Enumerable.Range(0, rank).Sum(i => begin[i] * x.Strides[i]);
        return x.View(shape, [.. Enumerable.Range(0, rank).Select(i => x.Strides[i] * step[i])], offset);
    }

    private static OnnxTensor Gather(OnnxNode node, OnnxTensor x, OnnxTensor indices)
    {
        int rank = x.Rank, axis = Axis(node, node.Int("axis", 0), rank);
        long n = x.Shape[axis];
        long[] index = indices.AsIntegers($"{node.Label}: indices");
        long[] shape = [.. x.Shape.Take(axis), .. indices.Shape, .. x.Shape.Skip(axis + 1)];
        long outer = x.Shape.Take(axis).Aggregate(1L, (a, b) => a * b), inner = x.Shape.Skip(axis + 1).Aggregate(1L, (a, b) => a * b);
        Array values = x.NewValues(OnnxTensor.Elements(shape));
        long at = 0;
        for (long o = 0; o < outer; o++)
        {
            foreach (long i in index)
            {
                long k = i < 0 ? i + n : i;
                if (k < 0 || k >= n)
                {
                    throw node.Error($"index {i} is out of range for axis {axis} of {x.ShapeText}.");
                }

                Array.Copy(x.Values, ((o * n) + k) * inner, values, at, inner);
                at += inner;
            }
        }

        return x.With(shape, values);
    }

    private static int Axis(OnnxNode node, long axis, int rank, bool clamp = false)
    {
        long a = axis < 0 ? axis + rank : axis;
        if (clamp)
        {
            return (int)Math.Clamp(a, 0, rank);
        }

        return a >= 0 && a < rank ? (int)a : throw node.Error($"axis {axis} is out of range for rank {rank}.");
    }

    private static string Text(long[] values) => $"[{string.Join(", ", values)}]";
}
