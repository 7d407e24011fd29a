using System.CommandLine;
using DeerSharp.Cli;

var root = new RootCommand("deer: parallel-in-time evaluation of nonlinear recurrences (DEER). Run 'deer demo' for a tour.");
root.Add(DemoCommand.Create());
return root.Parse(args).Invoke();
