"""Writes PyTorch reference cases for the deer CLI tests.

For every cell (rnn, gru, lstm), num_layers (1, 2), batched or not, float32 or float64, it builds a torch module with
random weights, runs it on random inputs (and sometimes random h0/c0), and writes into OUT/<case>/:
  weights.safetensors  the module's state_dict (written here with a minimal writer, independent of Deer's)
  x.npy, h0.npy, c0.npy  inputs and initial states, shaped as PyTorch takes them (batch_first)
  expected.npy         the module's output
  c.npy                a random cotangent dL/d(output)
  grads.safetensors    what autograd gives for output.backward(c): every weight key, "inputs", and "h0"/"c0" if given
and OUT/cases.json listing the cases. Usage: python3 torch_fixtures.py OUT SEED
"""
import json
import os
import struct
import sys

import numpy as np
import torch


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


def main(out, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cases = []
    for cell in ("rnn", "gru", "lstm"):
        for layers in (1, 2):
            for batched in (False, True):
                for dtype in ("float32", "float64"):
                    i = len(cases)
                    d, n, T, B = 3 + i % 3, 4 + i % 5, 150 + 37 * (i % 4), 2 + i % 2
                    with_h0 = i % 3 != 0
                    bias = i % 5 != 4
                    tdtype = torch.float32 if dtype == "float32" else torch.float64
                    module = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell](
                        d, n, num_layers=layers, batch_first=True, bias=bias).to(tdtype)
                    shape = (B, T, d) if batched else (T, d)
                    x = torch.tensor(rng.uniform(-1.5, 1.5, size=shape), dtype=tdtype)
                    state_shape = (layers, B, n) if batched else (layers, n)
                    h0 = torch.tensor(rng.uniform(-0.8, 0.8, size=state_shape), dtype=tdtype)
                    c0 = torch.tensor(rng.uniform(-0.8, 0.8, size=state_shape), dtype=tdtype)
                    x.requires_grad_(True)
                    h0.requires_grad_(True)
                    c0.requires_grad_(True)
                    if not with_h0:
                        y, _ = module(x)
                    elif cell == "lstm":
                        y, _ = module(x, (h0, c0))
                    else:
                        y, _ = module(x, h0)
                    cot = torch.tensor(rng.uniform(-1, 1, size=tuple(y.shape)), dtype=tdtype)
                    y.backward(cot)
                    grads = {k: p.grad for k, p in module.named_parameters()}
                    grads["inputs"] = x.grad
                    if with_h0:
                        grads["h0"] = h0.grad
                        if cell == "lstm":
                            grads["c0"] = c0.grad
                    y = y.detach()
                    x = x.detach()
                    h0 = h0.detach()
                    c0 = c0.detach()
                    name = f"{cell}-l{layers}-{'batched' if batched else 'unbatched'}-{dtype}"
                    folder = os.path.join(out, name)
                    os.makedirs(folder, exist_ok=True)
                    save_safetensors(os.path.join(folder, "weights.safetensors"), module.state_dict())
                    np.save(os.path.join(folder, "x.npy"), x.numpy())
                    np.save(os.path.join(folder, "expected.npy"), y.numpy())
                    np.save(os.path.join(folder, "c.npy"), cot.numpy())
                    save_safetensors(os.path.join(folder, "grads.safetensors"), grads)
                    if with_h0:
                        np.save(os.path.join(folder, "h0.npy"), h0.numpy())
                        if cell == "lstm":
                            np.save(os.path.join(folder, "c0.npy"), c0.numpy())
                    cases.append({"name": name, "cell": cell, "layers": layers, "batched": batched, "dtype": dtype,
                                  "h0": with_h0, "bias": bias})
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
