"""minidl.profiler: every op's forward and backward is one event, times nest and add up to the
wall time, ranges and modules are recorded when asked, and misuse is a clear error."""
import json
import threading
import time

import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl import autograd, nn, profiler


class Sleepy(minidl.Function):
    """Identity whose forward and backward take known time (sleeps: lower bounds only)."""

    def forward(self, x):
        time.sleep(0.02)
        return x.copy()

    def backward(self, g):
        time.sleep(0.03)
        return g


def small_step(device="cpu"):
    minidl.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).to(device)
    opt = minidl.optim.SGD(model.parameters(), lr=0.1)
    x = minidl.randn(4, 6, device=device)
    y = minidl.tensor(np.array([0, 2, 1, 2]), device=device)

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return step


def by_key(prof):
    return {(r.name, r.kind): r for r in prof.key_averages()}


def test_each_op_is_one_forward_and_one_backward_event():
    step = small_step()
    with profiler.profile(use_cuda=False) as prof:
        step()
        step()
    rows = by_key(prof)
    assert rows[("Linear", "forward")].calls == 4
    assert rows[("Linear", "backward")].calls == 4
    assert rows[("ReLU", "forward")].calls == 2 and rows[("ReLU", "backward")].calls == 2
    assert rows[("CrossEntropy", "forward")].calls == 2
    assert rows[("autograd.backward", "range")].calls == 2
    assert rows[("SGD.step", "range")].calls == 2
    assert not any(kind == "module" for _, kind in rows)       # only when asked
    assert autograd.profiler_hook is None                       # closed: nothing recorded
    step()
    assert by_key(prof)[("Linear", "forward")].calls == 4


def test_times_nest_and_add_up_to_the_wall_time():
    x = minidl.randn(3, requires_grad=True)
    with profiler.profile(use_cuda=False) as prof:
        with profiler.record_function("outer"):
            y = Sleepy()(x * 2.0)
            y.sum().backward()
    rows = by_key(prof)
    assert rows[("Sleepy", "forward")].self_ms >= 20.0
    assert rows[("Sleepy", "backward")].self_ms >= 30.0
    outer, engine = rows[("outer", "range")], rows[("autograd.backward", "range")]
    assert outer.total_ms >= 50.0 and outer.self_ms < outer.total_ms - 50.0
    assert engine.total_ms >= 30.0 and engine.self_ms < engine.total_ms - 30.0
    events = prof.events()
    for e in events:
        assert 0.0 <= e["self_ms"] <= e["total_ms"] + 1e-9
        assert e["start_ms"] >= 0.0 and e["start_ms"] + e["total_ms"] <= prof.wall_ms + 1e-6
    # self times plus the time outside every event make the wall time, and the table says so
    top = [e for e in events if e["name"] == "outer"][0]
    inside = sum(e["self_ms"] for e in events)
    assert inside == pytest.approx(top["total_ms"], rel=1e-9, abs=1e-6)
    text = prof.table()
    outside = prof.wall_ms - sum(r.self_ms for r in prof.key_averages())
    assert f"outside every event (Python between ops): {outside:.3f} ms" in text
    assert f"wall time {prof.wall_ms:.3f} ms" in text


def test_modules_and_decorated_functions_are_ranges():
    step = small_step()

    @profiler.record_function("my step")
    def run():
        step()
    with profiler.profile(use_cuda=False, record_modules=True) as prof:
        run()
        run()
    rows = by_key(prof)
    assert rows[("my step", "range")].calls == 2
    assert rows[("Sequential", "module")].calls == 2
    assert rows[("Linear", "module")].calls == 4 and rows[("ReLU", "module")].calls == 2
    seq = rows[("Sequential", "module")]
    inner = sum(rows[(n, "module")].total_ms for n in ("Linear", "ReLU"))
    assert seq.total_ms >= inner and seq.self_ms == pytest.approx(seq.total_ms - inner,
                                                                  abs=1e-6)
    run()                                       # no profile open: the decorator does nothing
    assert autograd.profiler_hook is None


def test_checkpoint_recomputation_shows_inside_the_backward():
    lin = nn.Linear(4, 4)
    x = minidl.randn(2, 4, requires_grad=True)
    with profiler.profile(use_cuda=False) as prof:
        out = F.checkpoint(lambda t: lin(t).relu(), [x], parameters=list(lin.parameters()))
        out.sum().backward()
    rows = by_key(prof)
    assert rows[("Linear", "forward")].calls == 2       # forward, then again in backward
    assert rows[("Linear", "backward")].calls == 1


def test_table_sorting_limits_and_chrome_trace(tmp_path):
    step = small_step()
    with profiler.profile(use_cuda=False) as prof:
        step()
    lines = prof.table(sort_by="calls", row_limit=3).splitlines()
    assert lines[0].split()[:3] == ["name", "kind", "calls"] and len(lines) == 2 + 3 + 2
    assert "more rows" in lines[-2]
    calls = [int(line.split()[2]) for line in lines[2:5]]
    assert calls == sorted(calls, reverse=True)
    names = prof.table(sort_by="name", row_limit=None).splitlines()[2:-1]
    assert [n.split()[0] for n in names] == sorted(n.split()[0] for n in names)
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(str(path))
    trace = json.loads(path.read_text())["traceEvents"]
    assert len(trace) == len(prof.events())
    assert {e["ph"] for e in trace} == {"X"} and all(e["dur"] >= 0 for e in trace)
    assert sorted(e["name"] for e in trace) == sorted(e["name"] for e in prof.events())


def test_an_exception_closes_the_profile():
    x = minidl.randn(3, requires_grad=True)
    with pytest.raises(ValueError, match="boom"):
        with profiler.profile(use_cuda=False) as prof:
            with profiler.record_function("failing"):
                Sleepy()(x)
                raise ValueError("boom")
    assert autograd.profiler_hook is None
    assert by_key(prof)[("failing", "range")].calls == 1


def test_other_threads_are_not_recorded():
    with profiler.profile(use_cuda=False) as prof:
        t = threading.Thread(target=lambda: minidl.randn(3) * 2.0)
        t.start()
        t.join()
        minidl.randn(3) + 1.0
    names = {r.name for r in prof.key_averages()}
    assert "Add" in names and "Mul" not in names


def test_misuse_is_a_clear_error():
    with pytest.raises(RuntimeError, match="has not run yet"):
        profiler.profile(use_cuda=False).table()
    with profiler.profile(use_cuda=False) as prof:
        with pytest.raises(RuntimeError, match="already open"):
            with profiler.profile(use_cuda=False):
                pass
    with pytest.raises(RuntimeError, match="already used"):
        with prof:
            pass
    with pytest.raises(ValueError, match="'sort_by' must be one of"):
        prof.table(sort_by="time")
    with pytest.raises(ValueError, match="needs CUDA times"):
        prof.table(sort_by="cuda_self")
    with pytest.raises(ValueError, match="row_limit"):
        prof.table(row_limit=0)
    with pytest.raises(TypeError, match="use_cuda"):
        profiler.profile(use_cuda="yes")
    with pytest.raises(TypeError, match="'name' must be a non-empty str"):
        profiler.record_function("")
    if not minidl.is_cuda_available():
        with pytest.raises(RuntimeError, match="use_cuda=True needs CuPy"):
            profiler.profile(use_cuda=True)


@pytest.mark.cuda
def test_cuda_events_give_device_times():
    step = small_step("cuda")
    with profiler.profile(use_cuda=True) as prof:
        step()
    rows = by_key(prof)
    lin = rows[("Linear", "forward")]
    assert lin.cuda_total_ms is not None and lin.cuda_total_ms >= 0.0
    engine = rows[("autograd.backward", "range")]
    inside = sum(r.cuda_total_ms for (n, k), r in rows.items() if k == "backward")
    assert engine.cuda_self_ms == pytest.approx(engine.cuda_total_ms - inside, abs=1e-6)
    text = prof.table(sort_by="cuda_total")
    assert "cuda self ms" in text.splitlines()[0]


@pytest.mark.cuda
def test_a_graphed_step_is_one_event_per_replay():
    minidl.manual_seed(0)
    model = nn.Linear(6, 3).to("cuda")
    opt = minidl.optim.SGD(model.parameters(), lr=0.1)
    x = minidl.randn(4, 6, device="cuda")

    def train_step(x):
        loss = model(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    step = minidl.cuda_graph.GraphedStep(train_step, warmup=1)
    step(x)
    step(x)                                     # captured here
    with profiler.profile() as prof:
        step(x)
        step(x)
    rows = by_key(prof)
    assert rows[("GraphedStep.replay", "range")].calls == 2
    assert ("Linear", "forward") not in rows            # the replay runs no Python ops


def test_profile_step_benchmark_prints_the_table(tmp_path, capsys):
    from benchmarks import profile_step
    trace = tmp_path / "t.json"
    assert profile_step.main(["--model", "resnet20:2", "--steps", "1", "--warmup", "0",
                              "--row-limit", "5", "--trace", str(trace)]) == 0
    out = capsys.readouterr().out
    assert "resnet20 batch 2 on cpu, 1 profiled steps" in out
    assert "Conv2d" in out and "outside every event" in out
    assert json.loads(trace.read_text())["traceEvents"]


def test_record_shapes_splits_rows_by_layer_shape():
    minidl.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    x = minidl.randn(4, 6)
    with profiler.profile(use_cuda=False, record_shapes=True) as prof:
        model(x).sum().backward()
        model(x).sum().backward()
    rows = {(r.name, r.kind, r.shapes): r for r in prof.key_averages()}
    for kind in ("forward", "backward"):          # a backward row has its forward's shapes
        assert rows[("Linear", kind, ((4, 6), (5, 6), (5,)))].calls == 2
        assert rows[("Linear", kind, ((4, 5), (3, 5), (3,)))].calls == 2
    assert "[4, 6], [5, 6], [5]" in prof.table(row_limit=None)
    with profiler.profile(use_cuda=False) as plain:
        model(x).sum().backward()
    assert all(r.shapes is None for r in plain.key_averages())
    assert "input shapes" not in plain.table()
