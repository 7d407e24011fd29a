"""Writes PyTorch reference cases for `deer ode`.

A random nn.Sequential MLP field (Linear, act, Linear, act, Linear) in float64 is saved as a safetensors state_dict
(with a minimal writer, independent of Deer's). For a uniform and a random grid of 10,000 points on [0, 1] and a
random y0, the solution is integrated here by classic RK4 with 3 substeps per interval, every evaluation of f done by
the torch module itself: an integrator and an MLP independent of Deer's, accurate to about 1e-15 at these steps.
Usage: python3 ode_fixtures.py OUT SEED ACTIVATION
Writes OUT/mlp.safetensors, OUT/y0.npy, OUT/t_uniform.npy, OUT/t_random.npy, OUT/ref_uniform.npy, OUT/ref_random.npy.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_fixtures import save_safetensors  # noqa: E402


def rk4(f, y0, times, substeps):
    ys = [y0]
    y = y0
    for i in range(len(times) - 1):
        h = (times[i + 1] - times[i]) / substeps
        for _ in range(substeps):
            k1 = f(y)
            k2 = f(y + 0.5 * h * k1)
            k3 = f(y + 0.5 * h * k2)
            k4 = f(y + h * k3)
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        ys.append(y)
    return torch.stack(ys)


def main(out, seed, activation):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    act = {"tanh": torch.nn.Tanh, "softplus": torch.nn.Softplus, "relu": torch.nn.ReLU}[activation]
    n, width = 4, 32
    net = torch.nn.Sequential(torch.nn.Linear(n, width), act(), torch.nn.Linear(width, width), act(), torch.nn.Linear(width, n)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1.5)
    save_safetensors(os.path.join(out, "mlp.safetensors"), dict(net.state_dict()))
    y0 = torch.tensor(rng.uniform(-1, 1, size=n), dtype=torch.float64)
    np.save(os.path.join(out, "y0.npy"), y0.numpy())
    uniform = np.linspace(0.0, 1.0, 10_000)
    inner = np.sort(rng.uniform(0.0, 1.0, size=9_998))
    grids = {"uniform": uniform, "random": np.concatenate([[0.0], inner, [1.0]])}
    with torch.no_grad():
        for name, times in grids.items():
            np.save(os.path.join(out, f"t_{name}.npy"), times)
            ref = rk4(net, y0, times, 3)
            np.save(os.path.join(out, f"ref_{name}.npy"), ref.numpy())


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "tanh")
