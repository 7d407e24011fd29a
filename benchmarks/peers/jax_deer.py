"""JAX peer for `deer bench --device cuda`: DEER for a GRU written from the paper's equations (Lim et al., ICLR 2024,
reference §3) with jax.lax.associative_scan, on the same weights and inputs as Deer.

Usage: python3 jax_deer.py --weights W.safetensors --inputs X.npy --out Y.npy --repeats N [--quasi] [--tol 1e-4]
Each Newton iteration: J_t = ∂f/∂h at (h_{t-1}, x_t) by jax.jacfwd (vmapped over batch and time), b_t = f − J_t h_{t-1},
then the linear recurrence by an associative scan over the affine maps (A, b) ∘ (A', b') = (A' A, A' b + b'); stop when
max |h_new − h| ≤ tol (the reference code's test), at most 100 iterations. The whole loop is one jitted while_loop.
Prints one JSON line: {"median_seconds", "min_seconds", "iterations", "jax", "device"}.
"""
import argparse
import json
import struct
import time

import numpy as np


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
        out[name] = np.frombuffer(data[b:t], dtype=dtype).reshape(e["shape"]).copy()
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--weights", required=True)
    p.add_argument("--inputs", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quasi", action="store_true")
    p.add_argument("--tol", type=float, default=1e-4)
    a = p.parse_args()

    import jax
    import jax.numpy as jnp

    w = {k: jnp.asarray(v) for k, v in read_safetensors(a.weights).items()}
    x = jnp.asarray(np.load(a.inputs))            # [B, T, d]
    n = w["weight_hh_l0"].shape[1]
    wih, whh, bih, bhh = w["weight_ih_l0"], w["weight_hh_l0"], w["bias_ih_l0"], w["bias_hh_l0"]

    def cell(h, xt):                               # PyTorch's GRU equations
        gi = wih @ xt + bih
        gh = whh @ h + bhh
        r = jax.nn.sigmoid(gi[:n] + gh[:n])
        z = jax.nn.sigmoid(gi[n:2 * n] + gh[n:2 * n])
        g = jnp.tanh(gi[2 * n:] + r * gh[2 * n:])
        return (1 - z) * g + z * h

    f_all = jax.vmap(jax.vmap(cell))               # over batch, then time
    jac_all = jax.vmap(jax.vmap(jax.jacfwd(cell)))

    def combine(left, right):                       # left earlier: apply left, then right
        a1, b1 = left
        a2, b2 = right
        if a.quasi:
            return a2 * a1, a2 * b1 + b2
        return a2 @ a1, jnp.einsum("...ij,...j->...i", a2, b1) + b2

    def newton(xs):
        batch, length = xs.shape[0], xs.shape[1]
        h0 = jnp.zeros((batch, n), xs.dtype)

        def step(state):
            h, _, k = state
            prev = jnp.concatenate([h0[:, None, :], h[:, :-1, :]], axis=1)
            fx = f_all(prev, xs)
            J = jac_all(prev, xs)
            if a.quasi:
                J = jnp.diagonal(J, axis1=-2, axis2=-1)
                bt = fx - J * prev
            else:
                bt = fx - jnp.einsum("btij,btj->bti", J, prev)
            # h0 enters through the first step's affine term.
            A, B = jax.lax.associative_scan(combine, (J, bt), axis=1)
            if a.quasi:
                new = A * h0[:, None, :] + B
            else:
                new = jnp.einsum("btij,bj->bti", A, h0) + B
            return new, jnp.max(jnp.abs(new - h)), k + 1

        def cond(state):
            _, err, k = state
            return jnp.logical_and(err > a.tol, k < 100)

        init = (jnp.zeros((batch, length, n), xs.dtype), jnp.array(jnp.inf, xs.dtype), 0)
        h, _, k = jax.lax.while_loop(cond, step, init)
        return h, k

    run = jax.jit(newton)
    h, k = run(x)
    h.block_until_ready()
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        h, k = run(x)
        h.block_until_ready()
        times.append(time.perf_counter() - t0)
    np.save(a.out, np.asarray(h))
    times.sort()
    print(json.dumps({"median_seconds": times[len(times) // 2], "min_seconds": times[0], "iterations": int(k),
                      "jax": jax.__version__, "device": str(jax.devices()[0])}))


if __name__ == "__main__":
    main()
