"""Writes ONNX models exported by PyTorch, with their inputs and PyTorch's own outputs, for the ONNX tests.

For each case (rnn, gru, lstm; 1 or 2 layers; uni- or bidirectional; batch_first or time-major; with or without bias;
h0 as a graph input or not; float32, and float64 for a few) it builds a torch module with random weights, exports it
with torch.onnx.export (opsets 9, 11, 13, 14 and 17 in turn, dynamic batch and time axes), and writes into OUT/<case>/:
  model.onnx              the export
  x.npy, h0.npy, c0.npy   the inputs, as the module takes them
  y.npy, h_n.npy, c_n.npy the module's outputs
  weights.safetensors     the module's state_dict (a minimal writer, independent of Deer's)
and OUT/cases.json listing the cases with their settings. Usage: python3 onnx_fixtures.py OUT SEED
"""
import json
import os
import struct
import sys
import warnings

import numpy as np
import torch

warnings.filterwarnings("ignore")


def save_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name].detach().cpu().numpy())
        dtype = {np.dtype("float32"): "F32", np.dtype("float64"): "F64"}[a.dtype]
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


class Wrapped(torch.nn.Module):
    def __init__(self, module, with_h0):
        super().__init__()
        self.rnn = module
        self.with_h0 = with_h0

    def forward(self, x, *state):
        if not self.with_h0:
            return self.rnn(x)
        if isinstance(self.rnn, torch.nn.LSTM):
            return self.rnn(x, (state[0], state[1]))
        return self.rnn(x, state[0])


def main(out, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cases = []
    plans = []
    for kind in ("rnn", "gru", "lstm"):
        plans.append((kind, 1, False, True, True, False, "float32"))
        plans.append((kind, 2, True, True, True, True, "float32"))
        plans.append((kind, 2, True, False, False, True, "float32"))
        plans.append((kind, 1, True, False, True, False, "float64"))
    opsets = (9, 11, 13, 14, 17)  # Squeeze/Unsqueeze take axes as inputs from 13, Slice its bounds from 10
    for index, (kind, layers, bidirectional, batch_first, bias, with_h0, dtype) in enumerate(plans):
        opset = opsets[index % len(opsets)]
        name = f"{kind}-l{layers}-{'bi' if bidirectional else 'uni'}-{'bf' if batch_first else 'tm'}-{'b' if bias else 'nob'}-{'h0' if with_h0 else 'noh0'}-{dtype}-opset{opset}"
        d, n = int(rng.integers(2, 5)), int(rng.integers(3, 7))
        batch, length = int(rng.integers(1, 4)), int(rng.integers(20, 60))
        cls = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[kind]
        module = cls(d, n, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first, bias=bias)
        tdtype = torch.float64 if dtype == "float64" else torch.float32
        module = module.to(tdtype).eval()
        dirs = 2 if bidirectional else 1
        x = torch.tensor(rng.standard_normal((batch, length, d) if batch_first else (length, batch, d)), dtype=tdtype)
        h0 = torch.tensor(rng.standard_normal((layers * dirs, batch, n)) * 0.5, dtype=tdtype)
        c0 = torch.tensor(rng.standard_normal((layers * dirs, batch, n)) * 0.5, dtype=tdtype)
        state = ((h0, c0) if kind == "lstm" else (h0,)) if with_h0 else ()
        wrapped = Wrapped(module, with_h0).eval()
        with torch.no_grad():
            result = wrapped(x, *state)
        y, rest = result
        os.makedirs(os.path.join(out, name))
        path = os.path.join(out, name)
        inputs = ["x"] + (["h0", "c0"] if kind == "lstm" else ["h0"] if with_h0 else [])
        inputs = inputs if with_h0 else ["x"]
        outputs = ["y", "h_n", "c_n"] if kind == "lstm" else ["y", "h_n"]
        axes = {"x": {0: "B", 1: "T"} if batch_first else {0: "T", 1: "B"}}
        torch.onnx.export(wrapped, (x, *state), os.path.join(path, "model.onnx"), input_names=inputs, output_names=outputs,
                          opset_version=opset, dynamic_axes=axes)
        np.save(os.path.join(path, "x.npy"), x.numpy())
        if with_h0:
            np.save(os.path.join(path, "h0.npy"), h0.numpy())
            if kind == "lstm":
                np.save(os.path.join(path, "c0.npy"), c0.numpy())
        np.save(os.path.join(path, "y.npy"), y.numpy())
        if kind == "lstm":
            np.save(os.path.join(path, "h_n.npy"), rest[0].numpy())
            np.save(os.path.join(path, "c_n.npy"), rest[1].numpy())
        else:
            np.save(os.path.join(path, "h_n.npy"), rest.numpy())
        save_safetensors(os.path.join(path, "weights.safetensors"), module.state_dict())
        cases.append({"name": name, "kind": kind, "layers": layers, "bidirectional": bidirectional, "batch_first": batch_first,
                      "bias": bias, "h0": with_h0, "dtype": dtype, "opset": opset, "batch": batch, "length": length, "d": d, "n": n,
                      "inputs": inputs, "outputs": outputs})
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
