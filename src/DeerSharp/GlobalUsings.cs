// The two namespaces nearly every file of the library reads: generic math, and the cells.
global using System.Numerics;
global using DeerSharp.Cells;
