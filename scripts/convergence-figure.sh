#!/usr/bin/env bash
# Draws docs/convergence.png (and .svg), the README's convergence figure: a PyTorch nn.GRU (d = 8, n = 16, PyTorch's
# default initialisation, seed 0) on 10,000 steps of standard-normal inputs, solved by DEER, quasi-DEER, damped
# quasi-DEER and Picard through `deer run --plot`. Needs Debian's python3-torch (as the CLI tests do).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 - "$work" <<'PY'
import sys
import numpy as np
import torch
sys.path.insert(0, "tests/Deer.Cli.Tests/python")
from torch_fixtures import save_safetensors
torch.manual_seed(0)
gru = torch.nn.GRU(8, 16, batch_first=True)
save_safetensors(f"{sys.argv[1]}/gru.safetensors", gru.state_dict())
np.save(f"{sys.argv[1]}/x.npy", np.random.default_rng(0).standard_normal((10_000, 8)).astype(np.float32))
PY
for ext in png svg; do
  dotnet run -c Release --project src/Deer.Cli -- run --cell gru --weights "$work/gru.safetensors" --inputs "$work/x.npy" \
    --out "$work/h.npy" --plot "docs/convergence.$ext"
done
