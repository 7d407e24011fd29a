#!/usr/bin/env python3
"""Writes a PyTorch module's state_dict as safetensors with numpy and torch alone (no `safetensors` package needed).

  python3 scripts/torch-to-safetensors.py MODEL.pt OUT.safetensors [--key NAME]

MODEL.pt is what torch.save wrote: a state_dict, a whole nn.Module, or a dict holding a state_dict under --key (for
example a training checkpoint {"model": state_dict, "optimizer": ...}). From Python, import it instead:

  import importlib.util, sys
  spec = importlib.util.spec_from_file_location("t2s", "scripts/torch-to-safetensors.py")
  t2s = importlib.util.module_from_spec(spec); spec.loader.exec_module(t2s)
  t2s.save_module(my_gru, "gru.safetensors")

Tensors are written little-endian, float32 or float64 as they are (float16 and bfloat16 widened to float32), in the
safetensors layout: an 8-byte header length, a JSON header, the data. The file is written to a temporary name first.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch


def save_safetensors(path, tensors):
    """Writes {name: tensor} to path as safetensors."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu()
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.float()
        a = np.ascontiguousarray(t.numpy())
        dtype = {np.dtype("float32"): "F32", np.dtype("float64"): "F64"}.get(a.dtype)
        if dtype is None:
            raise SystemExit(f"tensor '{name}' has dtype {a.dtype}; Deer reads float32 and float64 weights")
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    temporary = path + ".tmp"
    with open(temporary, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(temporary, path)


def save_module(module, path):
    """Writes an nn.Module's state_dict (or a state_dict itself) to path as safetensors."""
    state = module.state_dict() if isinstance(module, torch.nn.Module) else module
    save_safetensors(path, {k: v for k, v in state.items() if torch.is_tensor(v)})


def main():
    parser = argparse.ArgumentParser(description="Write a torch.save file's state_dict as safetensors (numpy and torch only).")
    parser.add_argument("checkpoint", help="what torch.save wrote: a state_dict, an nn.Module, or a dict holding one")
    parser.add_argument("output", help="the .safetensors file to write")
    parser.add_argument("--key", help="the entry of a checkpoint dict that holds the state_dict (e.g. model)")
    args = parser.parse_args()
    try:
        loaded = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    except TypeError:  # torch before 1.13 has no weights_only
        loaded = torch.load(args.checkpoint, map_location="cpu")
    if args.key is not None:
        if not isinstance(loaded, dict) or args.key not in loaded:
            raise SystemExit(f"{args.checkpoint}: no entry '{args.key}'")
        loaded = loaded[args.key]
    if isinstance(loaded, torch.nn.Module):
        loaded = loaded.state_dict()
    if not isinstance(loaded, dict) or not any(torch.is_tensor(v) for v in loaded.values()):
        keys = list(loaded.keys())[:8] if isinstance(loaded, dict) else type(loaded).__name__
        raise SystemExit(f"{args.checkpoint}: no tensors at the top level ({keys}); name the state_dict's entry with --key")
    save_module(loaded, args.output)
    print(f"wrote {args.output}: {sum(1 for v in loaded.values() if torch.is_tensor(v))} tensor(s)")


if __name__ == "__main__":
    sys.exit(main())
