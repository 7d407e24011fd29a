"""Writes PyTorch reference cases for the structured cells (indrnn, diag-gru, diag-lstm) of the deer CLI tests.

PyTorch has no such modules, so each is written here from the equations of PyTorch's nn.RNN / nn.GRU / nn.LSTM with
weight_hh_l{l} restricted to k x k blocks ([G*n, k], or [G*n] for k = 1): row g*n + i holds unit i's weights in gate g
on the k units of i's block. The recurrent product is an einsum over the blocks, the time loop is plain Python, and the
gradients come from autograd. Layout of OUT/<case>/ as in torch_fixtures.py. Usage: python3 structured_fixtures.py OUT SEED
"""
import json
import os
import sys

import numpy as np
import torch

from torch_fixtures import save_safetensors

GATES = {"indrnn": 1, "diag-gru": 3, "diag-lstm": 4}


class Structured(torch.nn.Module):
    def __init__(self, cell, d, n, k, layers, bias, flat):
        super().__init__()
        self.cell, self.n, self.k, self.layers, self.bias, self.flat = cell, n, k, layers, bias, flat
        g, bound = GATES[cell], 1 / np.sqrt(n)
        for l in range(layers):
            din = d if l == 0 else n
            self.register_parameter(f"weight_ih_l{l}", torch.nn.Parameter(torch.empty(g * n, din).uniform_(-bound, bound)))
            hh = (g * n,) if flat else (g * n, k)
            self.register_parameter(f"weight_hh_l{l}", torch.nn.Parameter(torch.empty(hh).uniform_(-1.5 * bound, 1.5 * bound)))
            if bias:
                self.register_parameter(f"bias_ih_l{l}", torch.nn.Parameter(torch.empty(g * n).uniform_(-bound, bound)))
                self.register_parameter(f"bias_hh_l{l}", torch.nn.Parameter(torch.empty(g * n).uniform_(-bound, bound)))

    def recurrent(self, l, gate, h):
        n, k = self.n, self.k
        w = getattr(self, f"weight_hh_l{l}").reshape(-1, k)[gate * n:(gate + 1) * n].reshape(n // k, k, k)
        out = torch.einsum("brc,Bbc->Bbr", w, h.reshape(h.shape[0], n // k, k)).reshape(h.shape[0], n)
        return out + (getattr(self, f"bias_hh_l{l}")[gate * n:(gate + 1) * n] if self.bias else 0)

    def projected(self, l, gate, x):
        n = self.n
        out = x @ getattr(self, f"weight_ih_l{l}")[gate * n:(gate + 1) * n].T
        return out + (getattr(self, f"bias_ih_l{l}")[gate * n:(gate + 1) * n] if self.bias else 0)

    def forward(self, x, h0, c0):
        # x: [B, T, d]; h0, c0: [layers, B, n]
        for l in range(self.layers):
            h, c, outs = h0[l], c0[l], []
            for t in range(x.shape[1]):
                xt = x[:, t]
                if self.cell == "indrnn":
                    h = torch.tanh(self.projected(l, 0, xt) + self.recurrent(l, 0, h))
                elif self.cell == "diag-gru":
                    r = torch.sigmoid(self.projected(l, 0, xt) + self.recurrent(l, 0, h))
                    z = torch.sigmoid(self.projected(l, 1, xt) + self.recurrent(l, 1, h))
                    g = torch.tanh(self.projected(l, 2, xt) + r * self.recurrent(l, 2, h))
                    h = (1 - z) * g + z * h
                else:
                    i = torch.sigmoid(self.projected(l, 0, xt) + self.recurrent(l, 0, h))
                    f = torch.sigmoid(self.projected(l, 1, xt) + self.recurrent(l, 1, h))
                    g = torch.tanh(self.projected(l, 2, xt) + self.recurrent(l, 2, h))
                    o = torch.sigmoid(self.projected(l, 3, xt) + self.recurrent(l, 3, h))
                    c = f * c + i * g
                    h = o * torch.tanh(c)
                outs.append(h)
            x = torch.stack(outs, dim=1)
        return x


def main(out, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cases = []
    for cell in GATES:
        for k in (1, 2, 4):
            for layers in (1, 2):
                i = len(cases)
                batched, dtype = i % 2 == 0, ("float64", "float32")[i % 3 == 0]
                d, n, T, B = 3 + i % 2, 4 * k if k > 1 else 5, 120 + 29 * (i % 4), 2 if batched else 1
                with_h0, bias, flat = i % 3 != 1, i % 5 != 4, k == 1 and i % 2 == 1
                tdtype = torch.float64 if dtype == "float64" else torch.float32
                module = Structured(cell, d, n, k, layers, bias, flat).to(tdtype)
                x = torch.tensor(rng.uniform(-1.5, 1.5, size=(B, T, d)), dtype=tdtype, requires_grad=True)
                h0 = torch.tensor(rng.uniform(-0.8, 0.8, size=(layers, B, n)), dtype=tdtype, requires_grad=True)
                c0 = torch.tensor(rng.uniform(-0.8, 0.8, size=(layers, B, n)), dtype=tdtype, requires_grad=True)
                zeros = torch.zeros(layers, B, n, dtype=tdtype)
                y = module(x, h0 if with_h0 else zeros, c0 if with_h0 and cell == "diag-lstm" else zeros)
                cot = torch.tensor(rng.uniform(-1, 1, size=tuple(y.shape)), dtype=tdtype)
                y.backward(cot)
                grads = {name: p.grad for name, p in module.named_parameters()}
                grads["inputs"] = x.grad if batched else x.grad[0]
                if with_h0:
                    grads["h0"] = h0.grad if batched else h0.grad[:, 0]
                    if cell == "diag-lstm":
                        grads["c0"] = c0.grad if batched else c0.grad[:, 0]
                name = f"{cell}-k{k}-l{layers}-{'batched' if batched else 'unbatched'}-{dtype}"
                folder = os.path.join(out, name)
                os.makedirs(folder, exist_ok=True)
                save_safetensors(os.path.join(folder, "weights.safetensors"), module.state_dict())
                pick = (lambda a: a) if batched else (lambda a: a[0])
                pick_state = (lambda a: a) if batched else (lambda a: a[:, 0])
                np.save(os.path.join(folder, "x.npy"), pick(x.detach()).numpy())
                np.save(os.path.join(folder, "expected.npy"), pick(y.detach()).numpy())
                np.save(os.path.join(folder, "c.npy"), pick(cot).numpy())
                save_safetensors(os.path.join(folder, "grads.safetensors"), grads)
                if with_h0:
                    np.save(os.path.join(folder, "h0.npy"), pick_state(h0.detach()).numpy())
                    if cell == "diag-lstm":
                        np.save(os.path.join(folder, "c0.npy"), pick_state(c0.detach()).numpy())
                cases.append({"name": name, "cell": cell, "k": k, "layers": layers, "batched": batched, "dtype": dtype,
                              "h0": with_h0, "bias": bias})
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
