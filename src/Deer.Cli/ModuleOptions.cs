using System.CommandLine;

namespace DeerSharp.Cli;

/// <summary>
/// The options `deer run` and `deer grad` share: the module (cell, weights, prefix), its inputs and initial states, and
/// the solve (method, dtype, tolerances, limit, fallback), plus --out.
/// </summary>
internal sealed class ModuleOptions
{
    private readonly Option<string> _cell = new("--cell") { Description = "The module type.", Required = true };
    private readonly Option<string> _weights = new("--weights") { Description = "The module's state_dict as safetensors (weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k}; weight_hh_l{k} is [G·n, k] for the structured cells).", Required = true };
    private readonly Option<string> _inputs = new("--inputs") { Description = "Inputs as .npy, [T, d] or [B, T, d] (batch first).", Required = true };
    private readonly Option<string?> _h0 = new("--h0") { Description = "Initial hidden state as .npy, [num_layers, B, n] or [num_layers, n] when unbatched." };
    private readonly Option<string?> _c0 = new("--c0") { Description = "Initial LSTM cell state as .npy, shaped like --h0." };
    private readonly Option<string> _method = new("--method") { Description = "Solution method of the forward pass.", DefaultValueFactory = _ => "auto" };
    private readonly Option<string?> _dtype = new("--dtype") { Description = "Element type of the solve and the output; defaults to the inputs' type." };
    private readonly Option<double?> _atol = new("--atol") { Description = "Absolute tolerance on the fixed-point residual (default 1e-5 float32, 1e-10 float64)." };
    private readonly Option<double?> _rtol = new("--rtol") { Description = "Relative tolerance on the fixed-point residual (same defaults)." };
    private readonly Option<int?> _maxIter = new("--max-iter") { Description = "Most iterations of an iterative method (default 100 DEER, 500 others, capped at T)." };
    private readonly Option<string> _prefix = new("--prefix") { Description = "Key prefix of the module inside a larger state_dict (e.g. 'encoder.rnn.').", DefaultValueFactory = _ => "" };
    private readonly Option<string?> _fallback = new("--fallback") { Description = "If the chosen method does not converge, use this one instead of exiting with code 3." };
    private readonly Option<string> _device = new("--device")
    {
        Description = "cpu (default); gpu (the ILGPU backend on the first CUDA GPU; fails clearly without one; cuda is a synonym); emulated (the GPU kernels on ILGPU's CPU accelerator: slow, for checking); or auto (the GPU when present and the problem is large).",
        DefaultValueFactory = _ => "cpu",
    };
    private readonly Option<int?> _blockSize = new("--block-size")
    {
        Description = "indrnn, diag-gru, diag-lstm: k, the units per block of weight_hh [G·n, k]; inferred from that shape when omitted, checked against it when given.",
    };
    private readonly Option<string> _out;
    private readonly Option<string?> _model = new("--model")
    {
        Description = "An ONNX model (torch.onnx.export of nn.RNN, nn.GRU or nn.LSTM, or RNN/GRU/LSTM nodes) to run instead of --cell and --weights; --inputs feeds its first input.",
    };
    private readonly Option<string[]> _input = new("--input")
    {
        Description = "With --model: another graph input, as NAME=FILE.npy (repeat for each, e.g. --input h0=h0.npy).",
        AllowMultipleArgumentsPerToken = false,
    };
    private readonly Option<bool> _timeMajor = new("--time-major")
    {
        Description = "rnn, gru, lstm: inputs [T, B, d] and output [T, B, D·n], as PyTorch's default batch_first=False; without it [B, T, d] (batch_first=True).",
    };
    private readonly bool _models;

    public ModuleOptions(string outDescription, bool models = false)
    {
        _models = models;
        _cell.Required = !models;
        _weights.Required = !models;
        _cell.AcceptOnlyFromAmong("rnn", "gru", "lstm", "gilr", "gilr-lstm", "indrnn", "diag-gru", "diag-lstm");
        _method.AcceptOnlyFromAmong(MethodNames.All);
        _dtype.AcceptOnlyFromAmong("float32", "float64");
        _fallback.AcceptOnlyFromAmong("sequential");
        _device.AcceptOnlyFromAmong("cpu", "gpu", "cuda", "emulated", "auto");
        _out = new Option<string>("--out") { Description = outDescription, Required = true };
    }

    public void AddTo(Command command)
    {
        foreach (Option option in new Option[] { _cell, _weights, _inputs, _h0, _c0, _method, _dtype, _atol, _rtol, _maxIter, _out, _prefix, _fallback, _device, _blockSize })
        {
            command.Add(option);
        }

        if (_models)
        {
            command.Add(_model);
            command.Add(_input);
            command.Add(_timeMajor);
        }
    }

    public RunCommand.Request Read(ParseResult r, string? report) => new(
        r.GetValue(_cell) ?? "", r.GetValue(_weights) ?? "", r.GetValue(_inputs)!, r.GetValue(_h0), r.GetValue(_c0), MethodNames.Parse(r.GetValue(_method)!),
        r.GetValue(_dtype), r.GetValue(_atol), r.GetValue(_rtol), r.GetValue(_maxIter), r.GetValue(_out)!, report,
        r.GetValue(_prefix) ?? "", r.GetValue(_fallback) == "sequential", ParseDevice(r.GetValue(_device)), BlockSize: r.GetValue(_blockSize))
    {
        Model = _models ? r.GetValue(_model) : null,
        NamedInputs = _models ? r.GetValue(_input) ?? [] : [],
        TimeMajor = _models && r.GetValue(_timeMajor),
    };

    public static ComputeDevice ParseDevice(string? name) => name switch
    {
        "gpu" or "cuda" => ComputeDevice.Gpu,
        "emulated" => ComputeDevice.Emulated,
        "auto" => ComputeDevice.Auto,
        _ => ComputeDevice.Cpu,
    };
}
