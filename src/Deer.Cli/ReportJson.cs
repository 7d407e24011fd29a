using System.Text.Json;

namespace DeerSharp.Cli;

/// <summary>
/// Numbers in the JSON reports. JSON has no NaN or infinity, and a failed iterate's residual is one of them (a fallback
/// that then succeeded leaves it in the history): such values are written as null rather than failing the report.
/// </summary>
internal static class ReportJson
{
    public static void Number(Utf8JsonWriter w, string name, double value)
    {
        if (double.IsFinite(value))
        {
            w.WriteNumber(name, value);
        }
        else
        {
            w.WriteNull(name);
        }
    }

    public static void NumberValue(Utf8JsonWriter w, double value)
    {
        if (double.IsFinite(value))
        {
            w.WriteNumberValue(value);
        }
        else
        {
            w.WriteNullValue();
        }
    }
}
