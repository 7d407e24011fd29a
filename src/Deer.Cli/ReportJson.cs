using System.Text.Json;

namespace DeerSharp.Cli;

/// <summary>
/// The JSON reports (bench, selftest), written field by field with no reflection, so the commands also work in a Native
/// AOT build. A row is a list of (name, value) fields. JSON has no NaN or infinity, and a failed iterate's residual is one
/// of them (a fallback that then succeeded leaves it in the history): such values are written as null rather than failing
/// the report.
/// </summary>
internal static class ReportJson
{
    /// <summary>
    /// Indented, and readable: messages keep their "+", "·" and "≥" rather than \u escapes (the reports are files for
    /// people and JSON parsers, never embedded in HTML).
    /// </summary>
    public static readonly JsonWriterOptions WriterOptions = new() { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>An array property <paramref name="name"/> with one object per row, its fields from <paramref name="fields"/>.</summary>
    public static void Rows<TRow>(Utf8JsonWriter w, string name, IEnumerable<TRow> rows, Func<TRow, IEnumerable<(string Name, object? Value)>> fields)
    {
        w.WriteStartArray(name);
        foreach (TRow row in rows)
        {
            w.WriteStartObject();
            foreach ((string field, object? value) in fields(row))
            {
                Field(w, field, value);
            }

            w.WriteEndObject();
        }

        w.WriteEndArray();
    }

    /// <summary>One field: a string, bool, whole number or floating-point number (null when not finite), or null.</summary>
    public static void Field(Utf8JsonWriter w, string name, object? value)
    {
        switch (value)
        {
            case null:
                w.WriteNull(name);
                break;
            case string s:
                w.WriteString(name, s);
                break;
            case bool b:
                w.WriteBoolean(name, b);
                break;
            case int or long:
                w.WriteNumber(name, Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture));
                break;
            default:
                Number(w, name, Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture));
                break;
        }
    }

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
