using System.Globalization;
using System.Text;

namespace DeerSharp.Cli.Bench;

/// <summary>
/// A log-log line chart in plain SVG, in the style of the DEER paper's Figure 2: speedup over the sequential loop
/// against sequence length, one line per hidden size, with the break-even line y = 1 dashed.
/// </summary>
internal static class SvgChart
{
    private static readonly string[] Colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"];

    public static string Render(string title, string xLabel, string yLabel, IReadOnlyList<(string Name, IReadOnlyList<(double X, double Y)> Points)> series, string footnote)
    {
        const double W = 720, H = 460, L = 80, R = 150, Top = 50, B = 70;
        var all = series.SelectMany(s => s.Points).Where(p => p.X > 0 && p.Y > 0).ToList();
        double x0 = Math.Floor(Math.Log10(all.Min(p => p.X))), x1 = Math.Ceiling(Math.Log10(all.Max(p => p.X)));
        double y0 = Math.Floor(Math.Log10(Math.Min(1, all.Min(p => p.Y)))), y1 = Math.Ceiling(Math.Log10(Math.Max(1, all.Max(p => p.Y))));
        if (y1 <= y0)
        {
            y1 = y0 + 1;
        }

        double Px(double x) => L + (Math.Log10(x) - x0) / (x1 - x0) * (W - L - R);
        double Py(double y) => H - B - (Math.Log10(y) - y0) / (y1 - y0) * (H - Top - B);
        var c = CultureInfo.InvariantCulture;
        var svg = new StringBuilder();
        svg.Append(c, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\n");
        svg.Append(c, $"<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n");
        svg.Append(c, $"<text x=\"{W / 2}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{Escape(title)}</text>\n");
        for (double e = x0; e <= x1; e++)
        {
            double x = Px(Math.Pow(10, e));
            svg.Append(c, $"<line x1=\"{x:F1}\" y1=\"{Top}\" x2=\"{x:F1}\" y2=\"{H - B}\" stroke=\"#ddd\"/><text x=\"{x:F1}\" y=\"{H - B + 18}\" text-anchor=\"middle\">10^{e}</text>\n");
        }

        for (double e = y0; e <= y1; e++)
        {
            double y = Py(Math.Pow(10, e));
            svg.Append(c, $"<line x1=\"{L}\" y1=\"{y:F1}\" x2=\"{W - R}\" y2=\"{y:F1}\" stroke=\"#ddd\"/><text x=\"{L - 8}\" y=\"{y + 4:F1}\" text-anchor=\"end\">{Math.Pow(10, e).ToString("G", c)}</text>\n");
        }

        svg.Append(c, $"<line x1=\"{L}\" y1=\"{Py(1):F1}\" x2=\"{W - R}\" y2=\"{Py(1):F1}\" stroke=\"#333\" stroke-dasharray=\"6,4\"/>\n");
        svg.Append(c, $"<rect x=\"{L}\" y=\"{Top}\" width=\"{W - L - R}\" height=\"{H - Top - B}\" fill=\"none\" stroke=\"#333\"/>\n");
        svg.Append(c, $"<text x=\"{(L + W - R) / 2}\" y=\"{H - B + 40}\" text-anchor=\"middle\">{Escape(xLabel)}</text>\n");
        svg.Append(c, $"<text transform=\"translate(22,{(Top + H - B) / 2}) rotate(-90)\" text-anchor=\"middle\">{Escape(yLabel)}</text>\n");
        svg.Append(c, $"<text x=\"{L}\" y=\"{H - 10}\" font-size=\"10\" fill=\"#555\">{Escape(footnote)}</text>\n");
        for (int i = 0; i < series.Count; i++)
        {
            string colour = Colours[i % Colours.Length];
            var pts = series[i].Points.Where(p => p.X > 0 && p.Y > 0).OrderBy(p => p.X).ToList();
            string path = string.Join(" ", pts.Select(p => string.Create(c, $"{Px(p.X):F1},{Py(p.Y):F1}")));
            svg.Append(c, $"<polyline points=\"{path}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>\n");
            foreach (var p in pts)
            {
                svg.Append(c, $"<circle cx=\"{Px(p.X):F1}\" cy=\"{Py(p.Y):F1}\" r=\"3\" fill=\"{colour}\"/>\n");
            }

            double ly = Top + 10 + i * 20;
            svg.Append(c, $"<line x1=\"{W - R + 15}\" y1=\"{ly}\" x2=\"{W - R + 40}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"2\"/><text x=\"{W - R + 46}\" y=\"{ly + 4}\">{Escape(series[i].Name)}</text>\n");
        }

        svg.Append("</svg>\n");
        return svg.ToString();
    }

    private static string Escape(string s) => s.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal).Replace(">", "&gt;", StringComparison.Ordinal);
}
