// The namespaces nearly every command reads: generic math, and the library's cells.
global using System.Numerics;
global using DeerSharp.Cells;
