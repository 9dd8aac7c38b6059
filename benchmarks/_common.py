"""Shared by the benchmark scripts: timing blocks, machine description, RESULTS.md sections."""
from __future__ import annotations

import multiprocessing
import os
import platform
import time

import numpy as np

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")


def spawn(target, args, torch_child):
    """Start ``target(*args)`` in a spawned process. The child imports the benchmark script,
    and with it minidl, which tunes glibc's malloc on import (``minidl.kernels.host_memory``);
    a child that runs torch (``torch_child``) starts with that turned off, so torch runs on
    the malloc it would have anywhere else."""
    key = "MINIDL_HOST_MEMORY_REUSE"
    old = os.environ.get(key)
    if torch_child:
        os.environ[key] = "0"
    try:
        proc = multiprocessing.get_context("spawn").Process(target=target, args=args,
                                                            daemon=True)
        proc.start()
    finally:
        if torch_child:
            if old is None:
                del os.environ[key]
            else:
                os.environ[key] = old
    return proc


def sgd_step(model, opt, F):
    """The training step both minidl benchmarks time or count: cross-entropy of ``model`` on
    (x, y), backward, one ``opt`` step; returns the loss (a CUDA graph's output)."""
    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    return step


def timed_block(step, reps, pause, sync=None):
    """Rest ``pause`` s, run one untimed warm-up step, then time ``reps`` steps (seconds)."""
    time.sleep(pause)
    step()
    if sync:
        sync()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        if sync:
            sync()
        out.append(time.perf_counter() - t0)
    return out


def machine(extra=()):
    """One line: architecture, cores, OS and library versions."""
    import minidl
    info = [f"Python {platform.python_version()}", f"NumPy {np.__version__}",
            f"minidl {minidl.__version__}"]
    info += [e for e in extra if e not in info]
    return (f"{platform.machine()} {os.cpu_count()} cores, {platform.system()}; "
            + ", ".join(info))


def write_section(path, head, text):
    """Replace (or append) the section that starts with the line ``head`` in RESULTS.md."""
    old = "# Benchmark results\n"
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
    if head in old:
        start = old.index(head)
        nxt = old.find("\n## ", start + len(head))
        new = old[:start] + text.rstrip("\n") + "\n" + ("" if nxt < 0 else old[nxt:])
    else:
        new = old.rstrip("\n") + "\n\n" + text
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(new if new.endswith("\n") else new + "\n")
    os.replace(tmp, path)
