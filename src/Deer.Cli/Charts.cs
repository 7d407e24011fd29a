using ScottPlot;
using ScottPlot.TickGenerators;

namespace DeerSharp.Cli;

/// <summary>
/// Every figure Deer draws, through ScottPlot: PNG for people, SVG for documents. Logarithmic axes are drawn the usual
/// ScottPlot way, by plotting log10 of the data on a linear axis whose ticks are labelled as powers of ten.
/// </summary>
internal static class Charts
{
    public const int Width = 900, Height = 500;

    /// <summary>A line per series on log-log axes, with the break-even line y = 1 dashed (the speedup chart).</summary>
    public static Plot LogLog(string title, string xLabel, string yLabel, IReadOnlyList<(string Name, IReadOnlyList<(double X, double Y)> Points)> series,
        string footnote)
    {
        var plot = new Plot();
        foreach (var (name, points) in series)
        {
            var positive = points.Where(p => p.X > 0 && p.Y > 0).ToArray();
            var line = plot.Add.Scatter(positive.Select(p => Math.Log10(p.X)).ToArray(), positive.Select(p => Math.Log10(p.Y)).ToArray());
            line.LegendText = name;
            line.MarkerSize = 6;
        }

        var breakEven = plot.Add.HorizontalLine(0);
        breakEven.LinePattern = LinePattern.Dashed;
        breakEven.LineColor = Colors.Gray;
        LogAxis(plot.Axes.Bottom);
        LogAxis(plot.Axes.Left);
        Label(plot, title, xLabel, yLabel, footnote);
        plot.ShowLegend(Edge.Right);   // many lines: outside the data
        return plot;
    }

    /// <summary>
    /// The residual of every iterate, one line per method, on a log y axis: the picture of why Newton beats Picard.
    /// Zero residuals are drawn at the smallest positive value shown.
    /// </summary>
    public static Plot Convergence(string title, IReadOnlyList<(string Name, IReadOnlyList<double> Residuals)> series, double tolerance, string footnote)
    {
        var plot = new Plot();
        double floor = series.SelectMany(s => s.Residuals).Where(r => r > 0 && double.IsFinite(r)).DefaultIfEmpty(1e-30).Min() / 10;
        foreach (var (name, residuals) in series)
        {
            double[] ys = [.. residuals.Select(r => Math.Log10(double.IsFinite(r) ? Math.Max(r, floor) : double.MaxValue / 1e10))];
            double[] xs = [.. Enumerable.Range(0, ys.Length).Select(i => (double)i)];
            var line = plot.Add.Scatter(xs, ys);
            line.LegendText = $"{name} ({residuals.Count - 1} iterations)";
            line.MarkerSize = 5;
        }

        if (tolerance > 0)
        {
            var target = plot.Add.HorizontalLine(Math.Log10(tolerance));
            target.LinePattern = LinePattern.Dashed;
            target.LineColor = Colors.Gray;
            target.LegendText = "atol (the tolerance where |f| is small)";
        }

        LogAxis(plot.Axes.Left);
        Label(plot, title, "iteration", "max residual |h_t - f(h_{t-1}, x_t)|", footnote);
        plot.ShowLegend(Alignment.UpperRight);
        plot.Axes.SetLimitsX(-0.5, Math.Max(1, series.Max(s => s.Residuals.Count) - 0.5));
        return plot;
    }

    /// <summary>The PNG bytes of <paramref name="plot"/>.</summary>
    public static byte[] Png(Plot plot) => plot.GetImageBytes(Width, Height, ImageFormat.Png);

    /// <summary>The SVG text of <paramref name="plot"/>.</summary>
    public static string Svg(Plot plot) => plot.GetSvgXml(Width, Height);

    /// <summary>Writes PNG or SVG by the path's extension.</summary>
    public static void Write(Stream stream, Plot plot, string path)
    {
        if (Path.GetExtension(path).Equals(".svg", StringComparison.OrdinalIgnoreCase))
        {
            stream.Write(System.Text.Encoding.UTF8.GetBytes(Svg(plot)));
        }
        else
        {
            stream.Write(Png(plot));
        }
    }

    private static void LogAxis(IAxis axis) => axis.TickGenerator = new NumericAutomatic
    {
        MinorTickGenerator = new LogMinorTickGenerator(),
        IntegerTicksOnly = true,
        LabelFormatter = v => $"1e{v:0}",
    };

    private static void Label(Plot plot, string title, string xLabel, string yLabel, string footnote)
    {
        plot.Title(title);
        plot.XLabel(string.IsNullOrEmpty(footnote) ? xLabel : $"{xLabel}\n{footnote}");
        plot.YLabel(yLabel);
        plot.ShowLegend(Alignment.UpperLeft);
    }
}
