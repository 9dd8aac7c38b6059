"""Per-layer forward+backward times of ResNet-20's layers at batch 128 (and of MobileNetV2's
depthwise convolutions), minidl vs PyTorch.

    python benchmarks/bench_layers.py                     # cpu (and cuda if present)
    python benchmarks/bench_layers.py --device cpu --rounds 6 --write-results

Every layer runs forward then backward with a random upstream gradient; the input requires
grad except for the first conv (as in the network). minidl sees the channel-major activations
its own conv2d produces (the network's real layout); torch sees contiguous NCHW. When torch is
importable the same layer is timed in torch in the same run, in a child process (the libraries
then share no heap or thread pool), alternating blocks of repetitions (minidl, torch, minidl,
...) with a pause between blocks so neither library's idle BLAS/OpenMP threads spin on the
other's time; medians over all repetitions, and their ratio, are printed. torch uses as many
threads as the machine has cores (torch.set_num_threads).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import minidl  # noqa: E402
import minidl.functional as F  # noqa: E402
from benchmarks._common import machine, spawn, timed_block, write_section  # noqa: E402

# name, kind, C_in, C_out, H, kernel, stride, input requires grad
LAYERS = [
    ("conv3x3 3->16 @32 (stem)", "conv", 3, 16, 32, 3, 1, False),
    ("conv3x3 16->16 @32", "conv", 16, 16, 32, 3, 1, True),
    ("conv3x3 16->32 s2 @32", "conv", 16, 32, 32, 3, 2, True),
    ("conv1x1 16->32 s2 @32 (proj)", "conv", 16, 32, 32, 1, 2, True),
    ("conv3x3 32->32 @16", "conv", 32, 32, 16, 3, 1, True),
    ("conv3x3 32->64 s2 @16", "conv", 32, 64, 16, 3, 2, True),
    ("conv1x1 32->64 s2 @16 (proj)", "conv", 32, 64, 16, 1, 2, True),
    ("conv3x3 64->64 @8", "conv", 64, 64, 8, 3, 1, True),
    ("batchnorm 16 @32", "bn", 16, 16, 32, 0, 0, True),
    ("batchnorm 32 @16", "bn", 32, 32, 16, 0, 0, True),
    ("batchnorm 64 @8", "bn", 64, 64, 8, 0, 0, True),
    ("relu 16 @32", "relu", 16, 16, 32, 0, 0, True),
    ("maxpool 2x2 16 @32", "maxpool", 16, 16, 32, 2, 2, True),
    ("global avgpool 64 @8", "gap", 64, 64, 8, 0, 0, True),
    # MobileNetV2's depthwise 3x3 convolutions (groups = channels)
    ("dwconv3x3 96 @32", "dwconv", 96, 96, 32, 3, 1, True),
    ("dwconv3x3 144 s2 @32", "dwconv", 144, 144, 32, 3, 2, True),
    ("dwconv3x3 192 @16", "dwconv", 192, 192, 16, 3, 1, True),
    ("dwconv3x3 576 @8", "dwconv", 576, 576, 8, 3, 1, True),
    ("dwconv3x3 960 @4", "dwconv", 960, 960, 4, 3, 1, True),
]


class _Feed(minidl.Function):
    """Hands a fixed array to the layer as a non-leaf input, as inside a network, and drops
    the gradient that comes back: the layer computes its input gradient, but the timing leaves
    out the engine's copy of it into a leaf's ``.grad`` (torch keeps the buffer instead)."""

    def __init__(self, data):
        self.data = data

    def forward(self, anchor):
        return self.data

    def backward(self, gy):
        return None


def _channel_major(a, device):
    """An (N, C, H, W) array on ``device`` as an NCHW view of (C, N, H, W) memory."""
    c = np.ascontiguousarray(a.transpose(1, 0, 2, 3))
    return minidl.backend.to_device(c, device).transpose(1, 0, 2, 3)


def _minidl_layer(spec, N, device, rng):
    name, kind, ci, co, H, k, s, rg = spec
    x = rng.standard_normal((N, ci, H, H), dtype=np.float32)
    if kind != "conv" or rg:              # activations inside the net are channel-major
        x = _channel_major(x, device)
    else:
        x = minidl.backend.to_device(x, device)
    anchor = minidl.zeros(1, device=device, requires_grad=True)

    def feed():
        return _Feed(x)(anchor) if rg else minidl.Tensor(x)
    params = []
    if kind in ("conv", "dwconv"):
        groups = ci if kind == "dwconv" else 1
        w = minidl.tensor(rng.standard_normal((co, ci // groups, k, k), dtype=np.float32) * 0.1,
                          device=device, requires_grad=True)
        params = [w]

        def fwd():
            return F.conv2d(feed(), w, None, s, k // 2, 1, groups)
    elif kind == "bn":
        w = minidl.ones(ci, device=device, requires_grad=True)
        b = minidl.zeros(ci, device=device, requires_grad=True)
        rm, rv = minidl.zeros(ci, device=device), minidl.ones(ci, device=device)
        params = [w, b]

        def fwd():
            return F.batch_norm(feed(), rm, rv, w, b, True)
    elif kind == "relu":
        def fwd():
            return F.relu(feed())
    elif kind == "maxpool":
        def fwd():
            return F.max_pool2d(feed(), k, s)
    else:
        def fwd():
            return F.global_avg_pool2d(feed())
    y = fwd()
    g = minidl.Tensor(_channel_major(rng.standard_normal(y.shape, dtype=np.float32), device))

    def step():
        for t in params:
            t.grad = None
        fwd().backward(g)
        if device != "cpu":
            minidl.synchronize(device)
    return step


def _torch_layer(torch, spec, N, device, rng):
    name, kind, ci, co, H, k, s, rg = spec
    dev = "cuda" if device.startswith("cuda") else "cpu"
    x = torch.tensor(rng.standard_normal((N, ci, H, H), dtype=np.float32), device=dev,
                     requires_grad=rg)
    if kind in ("conv", "dwconv"):
        groups = ci if kind == "dwconv" else 1
        mod = torch.nn.Conv2d(ci, co, k, s, k // 2, groups=groups, bias=False).to(dev)
    elif kind == "bn":
        mod = torch.nn.BatchNorm2d(ci).to(dev)
    elif kind == "relu":
        mod = torch.nn.ReLU()
    elif kind == "maxpool":
        mod = torch.nn.MaxPool2d(k, s)
    else:
        mod = torch.nn.AdaptiveAvgPool2d(1)
    g = torch.randn_like(mod(x))

    def step():
        x.grad = None
        for p in mod.parameters():
            p.grad = None
        mod(x).backward(g)
        if dev == "cuda":
            torch.cuda.synchronize()
    return step


def _torch_worker(conn, batch):
    """Times torch layers on request, in a process of its own (see ``TorchClient``)."""
    try:
        import torch
    except ImportError:
        conn.send(None)
        return
    torch.set_num_threads(os.cpu_count() or 1)
    torch.backends.cudnn.allow_tf32 = False     # float32 like minidl (cuDNN's default is TF32)
    torch.backends.cuda.matmul.allow_tf32 = False
    conn.send((torch.__version__, torch.get_num_threads(), torch.cuda.is_available()))
    rng, key, step = np.random.default_rng(1), None, None
    while True:
        msg = conn.recv()
        if msg is None:
            return
        index, device, reps, pause = msg
        if key != (index, device):
            key, step = (index, device), None
            step = _torch_layer(torch, LAYERS[index], batch, device, rng)
        conn.send(timed_block(step, reps, pause))


class TorchClient:
    """torch runs in a child process, so the two libraries share neither heap nor thread pools
    (measured here: after torch has run in the same process, NumPy's strided passes slow down
    up to 2x); blocks still alternate in time, so both see the same machine."""

    def __init__(self, batch):
        self.conn, child = multiprocessing.get_context("spawn").Pipe()
        self.proc = spawn(_torch_worker, (child, batch), torch_child=True)
        child.close()               # so that recv() ends if the worker dies before answering
        try:
            self.info = self.conn.recv()
        except EOFError:
            self.info = None

    def block(self, index, device, reps, pause):
        self.conn.send((index, device, reps, pause))
        return self.conn.recv()

    def close(self):
        self.conn.send(None)
        self.proc.join(10)


def run(device, args, client):
    rng = np.random.default_rng(0)
    rows = []
    for index, spec in enumerate(LAYERS):
        if args.layers and not re.search(args.layers, spec[0]):
            continue
        mine = _minidl_layer(spec, args.batch, device, rng)
        timed = client is not None and (device == "cpu" or client.info[2])
        tm, tt = [], []
        for _ in range(args.rounds):
            tm += timed_block(mine, args.reps, args.pause)
            if timed:
                tt += client.block(index, device, args.reps, args.pause)
        m = float(np.median(tm)) * 1e3
        t = float(np.median(tt)) * 1e3 if tt else None
        rows.append((spec[0], m, t))
        ratio = f"{m / t:6.2f}" if t else "     -"
        tstr = f"{t:9.2f}" if t else "        -"
        print(f"{device:5s} {spec[0]:32s} minidl {m:9.2f} ms  torch {tstr} ms  ratio {ratio}",
              flush=True)
    return rows


def _table(results):
    lines = ["| device | layer (fwd + bwd, batch {}) | minidl ms | torch ms | minidl / torch |",
             "|---|---|---:|---:|---:|"]
    for device, rows in results.items():
        for name, m, t in rows:
            lines.append(f"| {device} | {name} | {m:.2f} | {t:.2f} | {m / t:.2f} |" if t else
                         f"| {device} | {name} | {m:.2f} | - | - |")
    return lines


def _machine(client):
    extra = []
    if client is not None:
        extra.append(f"torch {client.info[0]} ({client.info[1]} threads, own process)")
    return machine(extra)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="all", help="cpu, cuda or all (default)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions per block")
    ap.add_argument("--rounds", type=int, default=4, help="alternating blocks per library")
    ap.add_argument("--pause", type=float, default=0.3, help="seconds of rest before a block")
    ap.add_argument("--layers", default="", help="regex selecting layers by name")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--write-results", nargs="?", const=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "RESULTS.md"), default=None,
        help="write the table into this RESULTS.md section (default benchmarks/RESULTS.md)")
    args = ap.parse_args(argv)
    if args.device not in ("cpu", "cuda", "all"):
        ap.error(f"--device must be cpu, cuda or all, got {args.device!r}")
    if args.device == "cuda" and not minidl.is_cuda_available():
        ap.error("--device cuda: no CUDA device (or no CuPy) here")
    client = None
    if not args.no_torch:
        client = TorchClient(args.batch)
        if client.info is None:
            client = None
            print("torch not installed: timing minidl only")
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not minidl.is_cuda_available():
        devices.remove("cuda")
        print("no CUDA device: cpu only")
    print(_machine(client))
    results = {d: run(d, args, client) for d in devices}
    if client is not None:
        client.close()
    table = _table(results)
    table[0] = table[0].format(args.batch)
    print("\n".join(table))
    if args.write_results:
        head = f"## Layers (bench_layers.py, {', '.join(devices)})"
        text = "\n".join([head, "", _machine(client), "",
                          f"`python benchmarks/bench_layers.py --device {args.device} "
                          f"--batch {args.batch} --rounds {args.rounds} --reps {args.reps}"
                          + (f" --layers '{args.layers}'" if args.layers else "")
                          + f"`: median of {args.rounds * args.reps} "
                          "forward+backward steps per layer, float32.", ""] + table) + "\n"
        write_section(args.write_results, head, text)
        print(f"wrote {args.write_results}")


if __name__ == "__main__":
    main()
