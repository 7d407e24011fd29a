"""PyTorch peer for `deer bench`: times nn.GRU / nn.LSTM on the CPU on the same weights and inputs as Deer.

Usage: python3 torch_rnn.py --cell gru|lstm --weights W.safetensors --inputs X.npy --out Y.npy --repeats N [--device cpu|cuda]
       python3 torch_rnn.py --cell gru|lstm --weights W.safetensors --inputs X.npy --out G.npy --repeats N --backward C.npy
       python3 torch_rnn.py --cell gru|lstm --weights W.safetensors --inputs X.npy --export-onnx M.onnx
The second form writes the module with torch.onnx.export (opset 14, input "input" [B, T, d] with symbolic B and T,
outputs "output", "h_n" and for the LSTM "c_n"), the file `deer bench --only cold` gives to `deer run --model` and to
ONNX Runtime, and times nothing.
With --backward C.npy (the cotangent of the output, shaped like it) each timed run is the forward pass and autograd's
backward of sum(C * output) (`deer bench --only grad`), and --out receives the parameter gradient of the last run, flat
in Deer's order: weight_ih, weight_hh, bias_ih, bias_hh.
With --device cuda the module and inputs live on the GPU (cuDNN's RNN kernels) and each timed run ends with
torch.cuda.synchronize(); the inputs are moved to the device before timing.
Reads the state_dict with a minimal safetensors reader (no extra package needed), runs the batch_first module once to
warm up and N times timed, writes the output (for an agreement check) and prints one JSON line:
{"median_seconds": ..., "min_seconds": ..., "threads": ..., "torch": ...}.
"""
import argparse
import json
import os
import struct
import time

import numpy as np
import torch


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        dtype = {"F32": np.float32, "F64": np.float64}[e["dtype"]]
        b, t = e["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[b:t], dtype=dtype).reshape(e["shape"]).copy())
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cell", choices=["gru", "lstm"], required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--inputs", required=True)
    p.add_argument("--out")
    p.add_argument("--export-onnx")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--backward")
    a = p.parse_args()
    state = read_safetensors(a.weights)
    x = torch.from_numpy(np.load(a.inputs))
    layers = sum(1 for k in state if k.startswith("weight_ih_l"))
    hidden = state["weight_hh_l0"].shape[1]
    cls = torch.nn.GRU if a.cell == "gru" else torch.nn.LSTM
    module = cls(x.shape[-1], hidden, num_layers=layers, batch_first=True).to(x.dtype)
    module.load_state_dict(state)
    if a.export_onnx:
        outputs = ["output", "h_n", "c_n"] if a.cell == "lstm" else ["output", "h_n"]
        axes = {"input": {0: "B", 1: "T"}, "output": {0: "B", 1: "T"}}
        with torch.no_grad():
            torch.onnx.export(module.eval(), (x[:, : min(x.shape[1], 16)],), a.export_onnx, input_names=["input"],
                              output_names=outputs, dynamic_axes=axes, opset_version=14)
        print(json.dumps({"exported": a.export_onnx, "torch": torch.__version__}))
        return
    if not a.out:
        p.error("--out is required unless --export-onnx is given")
    device = torch.device(a.device)
    module = module.to(device)
    x = x.to(device)
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    if a.backward:
        backward(module, x, torch.from_numpy(np.load(a.backward)).to(device), a)
        return
    times = []
    with torch.no_grad():
        y, _ = module(x[..., : min(x.shape[-2], 256), :])
        sync()
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            y, _ = module(x)
            sync()
            times.append(time.perf_counter() - t0)
    np.save(a.out, y.cpu().numpy())
    times.sort()
    print(json.dumps({"median_seconds": times[len(times) // 2], "min_seconds": times[0],
                      "threads": torch.get_num_threads(), "torch": torch.__version__}))


def backward(module, x, c, a):
    """Times forward + backward of sum(c * output) and writes the last run's flat parameter gradient. On every core: this
    torch build defaults to one thread on the 2-vCPU VM, and Deer's gradient uses both."""
    torch.set_num_threads(os.cpu_count() or 1)
    params = [module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0]

    def run():
        for q in params:
            q.grad = None
        y, _ = module(x)
        (y * c).sum().backward()

    run()
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    np.save(a.out, torch.cat([q.grad.reshape(-1) for q in params]).numpy())
    times.sort()
    print(json.dumps({"median_seconds": times[len(times) // 2], "min_seconds": times[0],
                      "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
