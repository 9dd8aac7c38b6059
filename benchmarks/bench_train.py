"""Full training steps (forward + backward + SGD) of registered nets, minidl vs PyTorch.

    python benchmarks/bench_train.py --device cpu --models resnet20
    python benchmarks/bench_train.py --device cuda --models resnet20:128 resnet20:512 \
        resnet56:128 densenet_bc_100:64 --write-results

Each engine runs in a child process of its own (they then share neither heap nor thread
pools), on random data already on the device, with SGD (Nesterov momentum 0.9, weight decay
5e-4) and cross-entropy. Blocks of steps alternate between the engines (minidl, torch, minidl,
...) so both see the same machine; each block starts with an untimed warm-up step, the device
is synchronized after every step, and the figure is the median over all timed steps. Peak
memory: on CUDA the peak of allocated device memory during a step (CuPy's pool via a memory
hook; torch.cuda.max_memory_allocated); on the CPU the growth of the process's peak RSS from
right after the model and batch were built (before any step) to after the steps. torch is
optional: without it only minidl is timed.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks._common import (RESULTS, machine, sgd_step, spawn, timed_block,  # noqa: E402
                                write_section)



def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _rss_growth(engine):
    """Peak RSS of the process after its steps minus its RSS once the model and the batch were
    built (``engine.rss_base``, taken before any step): what training adds on top of them."""
    engine.step()
    return max(_rss_mb() - engine.rss_base, 0.0)


class _MinidlEngine:
    def __init__(self, name, batch, device, tf32, graph=False):
        import minidl
        import minidl.functional as F
        import nets
        self.minidl, self.device = minidl, device
        if tf32:
            minidl.set_tf32(True)
        minidl.manual_seed(0)
        self.model = nets.get_model(name).to(device)
        self.opt = minidl.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9,
                                    nesterov=True, weight_decay=5e-4)
        rng = np.random.default_rng(0)
        self.x = minidl.tensor(rng.standard_normal((batch, 3, 32, 32), dtype=np.float32),
                               device=device)
        self.y = minidl.tensor(rng.integers(0, 10, batch), device=device)
        self.version = f"minidl {minidl.__version__}" + (", CUDA graph" if graph else "")
        self._step = sgd_step(self.model, self.opt, F)
        self.graphed = minidl.cuda_graph.GraphedStep(self._step) if graph else None

    def step(self):
        (self.graphed or self._step)(self.x, self.y)

    def sync(self):
        if self.device != "cpu":
            self.minidl.synchronize(self.device)

    def peak_memory_mb(self):
        if self.device == "cpu":
            return _rss_growth(self)
        import cupy
        if self.graphed is not None:    # a replay allocates nothing: its memory is reserved
            self.step()                 # in the capture's own pool
            self.sync()
            used = cupy.get_default_memory_pool().used_bytes()
            return (used + sum(p.total_bytes() for p in self.minidl.cuda_graph._pools)) / 2 ** 20
        hook = _PeakHook(cupy)
        self.sync()
        with hook:
            self.step()
            self.sync()
        return hook.peak / 2 ** 20


class _PeakHook:
    """Tracks the peak of bytes handed out by CuPy's memory pool while active."""

    def __new__(cls, cupy):
        class Hook(cupy.cuda.MemoryHook):
            name = "minidl_peak"

            def __init__(self):
                super().__init__()
                self.current = cupy.get_default_memory_pool().used_bytes()
                self.peak = self.current

            def malloc_postprocess(self, device_id, size, mem_size, mem_ptr, pmem_id):
                self.current += mem_size
                self.peak = max(self.peak, self.current)

            def free_postprocess(self, device_id, mem_size, mem_ptr, pmem_id):
                self.current -= mem_size
        return Hook()


class _TorchEngine:
    def __init__(self, name, batch, device, tf32, graph=False):
        import torch
        from benchmarks import torch_models
        # the same arithmetic as minidl: TF32 in both or in neither (cuDNN's default is on)
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.set_num_threads(os.cpu_count() or 1)
        torch.manual_seed(0)
        self.torch, self.dev = torch, ("cuda" if device.startswith("cuda") else "cpu")
        self.model = torch_models.get_model(name).to(self.dev)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9,
                                   nesterov=True, weight_decay=5e-4)
        self.x = torch.randn(batch, 3, 32, 32, device=self.dev)
        self.y = torch.randint(0, 10, (batch,), device=self.dev)
        self.version = f"torch {torch.__version__} ({torch.get_num_threads()} threads)"

    def step(self):
        loss = self.torch.nn.functional.cross_entropy(self.model(self.x), self.y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def sync(self):
        if self.dev == "cuda":
            self.torch.cuda.synchronize()

    def peak_memory_mb(self):
        if self.dev == "cpu":
            return _rss_growth(self)
        self.sync()
        self.torch.cuda.reset_peak_memory_stats()
        self.step()
        self.sync()
        return self.torch.cuda.max_memory_allocated() / 2 ** 20


def _worker(conn, engine, name, batch, device, tf32, graph):
    try:
        eng = (_MinidlEngine if engine == "minidl" else _TorchEngine)(name, batch, device, tf32,
                                                                      graph)
    except ImportError as exc:
        conn.send(("missing", str(exc)))
        return
    except Exception as exc:        # noqa: BLE001  (reported to the parent, which says it)
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    eng.rss_base = _rss_mb()
    for _ in range(3):                  # a graphed step: two warm-up calls and the capture
        eng.step()
    eng.sync()
    conn.send(("ready", eng.version))
    while True:
        msg = conn.recv()
        if msg is None:
            return
        if msg == "memory":
            conn.send(eng.peak_memory_mb())
        else:
            reps, pause = msg
            conn.send(timed_block(eng.step, reps, pause, eng.sync))


class Child:
    """One engine, one model, in a spawned process."""

    def __init__(self, engine, name, batch, device, tf32=False, graph=False):
        self.conn, child = multiprocessing.get_context("spawn").Pipe()
        self.proc = spawn(_worker, (child, engine, name, batch, device, tf32, graph),
                          torch_child=engine == "torch")
        child.close()               # the worker's end lives on in the worker only: if it dies,
        try:                        # recv() ends instead of waiting forever
            status, self.info = self.conn.recv()
        except EOFError:
            status, self.info = "error", f"the {engine} worker exited (exit code " \
                f"{self.proc.join(30) or self.proc.exitcode})"
        self.ok = status == "ready"

    def ask(self, msg):
        self.conn.send(msg)
        return self.conn.recv()

    def close(self):
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(30)


def bench(name, batch, device, args):
    mine = Child("minidl", name, batch, device, args.tf32, args.cuda_graph)
    if not mine.ok:
        mine.close()
        raise SystemExit(f"bench_train.py: minidl could not run {name}:{batch} on {device}: "
                         f"{mine.info}")
    engines = {"minidl": mine}
    if not args.no_torch:
        t = Child("torch", name, batch, device, args.tf32)
        if t.ok:
            engines["torch"] = t
        else:
            print(f"torch not available ({t.info}): timing minidl only")
            t.close()
    times = {k: [] for k in engines}
    for _ in range(args.rounds):
        for k, child in engines.items():
            times[k] += child.ask((args.reps, args.pause))
    row = {"model": name, "batch": batch, "device": device,
           "versions": {k: c.info for k, c in engines.items()}}
    for k, child in engines.items():
        row[k] = float(np.median(times[k])) * 1e3
        row[k + "_mem"] = child.ask("memory")
        child.close()
    return row


def _fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def table(rows, device):
    mem = "peak device MiB" if device != "cpu" else "peak RSS growth MiB"
    lines = [f"| model | batch | minidl ms | torch ms | minidl / torch | minidl {mem} | "
             f"torch {mem} |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        t = r.get("torch")
        lines.append(f"| {r['model']} | {r['batch']} | {_fmt(r['minidl'])} | {_fmt(t)} | "
                     f"{_fmt(r['minidl'] / t if t else None, '.2f')} | "
                     f"{_fmt(r['minidl_mem'], '.0f')} | {_fmt(r.get('torch_mem'), '.0f')} |")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--models", nargs="+", default=["resnet20:128"],
                    help="name[:batch] entries (default resnet20:128)")
    ap.add_argument("--reps", type=int, default=3, help="timed steps per block")
    ap.add_argument("--rounds", type=int, default=3, help="alternating blocks per engine")
    ap.add_argument("--pause", type=float, default=0.5, help="seconds of rest before a block")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--tf32", action="store_true",
                    help="TF32 matrix multiplies in both engines (GPU only; default: off in both)")
    ap.add_argument("--cuda-graph", action="store_true",
                    help="minidl's step captured once and replayed as a CUDA graph "
                         "(minidl.cuda_graph; GPU only); torch stays eager")
    ap.add_argument("--write-results", nargs="?", const=RESULTS, default=None,
                    help="write the table into benchmarks/RESULTS.md (or the given file)")
    args = ap.parse_args(argv)
    if args.tf32 and not args.device.startswith("cuda"):
        ap.error("--tf32 is a GPU matrix-multiply mode: it needs --device cuda")
    if args.cuda_graph and not args.device.startswith("cuda"):
        ap.error("--cuda-graph captures CUDA work: it needs --device cuda")
    import nets                                     # noqa: PLC0415
    for entry in args.models:                       # every name checked before any worker
        name, _, b = entry.partition(":")
        if name not in nets.list_models() or not (b == "" or b.isdigit() and int(b) > 0):
            ap.error(f"--models: {entry!r} is not NAME[:BATCH] with a registered model "
                     f"(one of {', '.join(nets.list_models())}) and a positive batch")
    rows = []
    for entry in args.models:
        name, _, b = entry.partition(":")
        row = bench(name, int(b or 128), args.device, args)
        rows.append(row)
        print(f"{name} b{row['batch']} {args.device}: minidl {row['minidl']:.1f} ms, torch "
              f"{_fmt(row.get('torch'))} ms", flush=True)
    versions = sorted({v for r in rows for v in r["versions"].values()})
    lines = table(rows, args.device)
    print("\n".join(lines))
    if args.write_results:
        import datetime
        mode = (", TF32" if args.tf32 else "") + (", CUDA graph" if args.cuda_graph else "")
        head = f"## Training step (bench_train.py, {args.device}{mode})"
        text = "\n".join([head, "", f"{machine(versions)}; device {args.device}; "
                          f"{datetime.date.today()}", "",
                          f"`python benchmarks/bench_train.py --device {args.device} --models "
                          f"{' '.join(args.models)} --rounds {args.rounds} --reps {args.reps}"
                          f"{' --tf32' if args.tf32 else ''}"
                          f"{' --cuda-graph' if args.cuda_graph else ''}`: median of "
                          f"{args.rounds * args.reps} training steps per engine (forward + "
                          "backward + SGD step), float32, TF32 "
                          f"{'on' if args.tf32 else 'off'} in both engines"
                          + ("; minidl's step replayed as a CUDA graph, torch eager."
                             if args.cuda_graph else "."), ""] + lines) + "\n"
        write_section(args.write_results, head, text)
        print(f"wrote {args.write_results}")


if __name__ == "__main__":
    main()
