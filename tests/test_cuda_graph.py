"""CUDA-graph steps (minidl.cuda_graph) and the cuBLAS binding they capture GEMMs with.

The cuda-marked tests run on a real GPU, or on the emulated one (MINIDL_FAKE_CUDA=1:
tests/fake_cupy records captured work and replays it, tests/fake_cublas stands in for
libcublas); without either they skip. The argument checks run everywhere.
"""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from minidl import backend
from minidl.cuda_graph import GraphedStep

cuda = pytest.mark.cuda


def _cp():
    return backend.cupy_module()


# ---------------------------------------------------------------------------------------------
# cuBLAS through ctypes

def _operands(rng, dtype):
    """(a, b) host pairs covering the layouts cuBLAS is handed: C order, transposed views,
    row slices (leading dimension > width), a non-unit inner stride (copied), batches that
    broadcast, 1-D operands, empty dimensions."""
    def r(*shape):
        return rng.standard_normal(shape).astype(dtype)
    wide = r(5, 9)
    return [
        (r(3, 4), r(4, 5)),
        (r(4, 3).T, r(5, 4).T),
        (wide[:, 2:6], r(4, 2)),
        (r(3, 4), wide[:4, 1:8]),
        (r(3, 8)[:, ::2], r(4, 6)),
        (r(2, 1, 3, 4), r(5, 4, 6)),
        (r(4), r(4, 3)),
        (r(2, 3, 4), r(4)),
        (r(4), r(4)),
        (r(0, 4), r(4, 3)),
        (r(3, 0), r(0, 2)),
        (r(1, 1), r(1, 7)),
    ]


@cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cublas_matmul_matches_numpy(dtype, rng):
    from minidl.kernels import cublas
    cp = _cp()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for a, b in _operands(rng, dtype):
        got = cublas.matmul(cp.asarray(a), cp.asarray(b))
        want = a @ b
        assert got.shape == want.shape and got.dtype == want.dtype, (a.shape, b.shape)
        np.testing.assert_allclose(backend.as_numpy(got), want, rtol=tol, atol=tol,
                                   err_msg=f"{a.shape} @ {b.shape}")


@cuda
def test_cublas_matmul_keeps_strided_views_in_place(rng):
    """A transposed or row-sliced operand reaches cuBLAS as it is (op T / leading dimension),
    not as a copy: the pointer handed over is the view's own."""
    from minidl.kernels import cublas
    cp = _cp()
    base = cp.asarray(rng.standard_normal((6, 9)))
    for view in (base.T, base[:, 2:7], base[1:4]):
        same, _, _ = cublas._operand(view)
        assert same is view
    copied, op, ld = cublas._operand(base[:, ::2])
    assert copied is not base and op == cublas._OP_N and ld == 5


@cuda
def test_cublas_matmul_refuses_other_dtypes():
    from minidl.kernels import cublas
    cp = _cp()
    with pytest.raises(TypeError, match="float32 or both float64"):
        cublas.matmul(cp.ones((2, 2), np.int64), cp.ones((2, 2), np.int64))
    with pytest.raises(TypeError, match="float32 and float64"):
        cublas.matmul(cp.ones((2, 2), np.float32), cp.ones((2, 2), np.float64))
    with pytest.raises(ValueError, match="not aligned"):
        cublas.matmul(cp.ones((2, 3)), cp.ones((2, 3)))


def _fake_cublas():
    from minidl.kernels import cublas
    lib = cublas._library
    if not hasattr(lib, "workspaces"):
        pytest.skip("checks tests/fake_cublas only")
    return cublas, lib


@cuda
def test_cublas_handle_keeps_its_own_workspace_across_calls_and_streams(rng):
    cublas, lib = _fake_cublas()
    cp = _cp()
    a, b = cp.asarray(rng.standard_normal((3, 4))), cp.asarray(rng.standard_normal((4, 2)))
    before = lib.pool_gemms
    cublas.prepare()
    for stream in (cp.cuda.Stream.null, cp.cuda.Stream(non_blocking=True), None):
        with stream or cp.cuda.Stream.null:
            for _ in range(2):
                np.testing.assert_allclose(cublas.matmul(a, b).get(), a.get() @ b.get())
    assert lib.pool_gemms == before                   # never on cuBLAS's default pool
    (h, entry), = cublas._handles.items()
    assert lib.workspaces[entry[0].value] == (entry[1].data.ptr, cublas._WORKSPACE_BYTES)


@cuda
def test_cublas_module_lock_is_held_from_the_stream_binding_through_the_gemm(monkeypatch, rng):
    cublas, lib = _fake_cublas()
    cp = _cp()
    held = []
    gemm = lib.cublasDgemm_v2

    def checking(*args):
        held.append(cublas._lock.locked())
        return gemm(*args)
    monkeypatch.setattr(lib, "cublasDgemm_v2", checking)
    a, b = cp.asarray(rng.standard_normal((2, 3, 4))), cp.asarray(rng.standard_normal((4, 2)))
    np.testing.assert_allclose(cublas.matmul(a, b).get(), a.get() @ b.get())
    assert held == [True, True]


@cuda
def test_cublas_refuses_sizes_above_int_and_never_passes_a_wrapped_stride(rng):
    cublas, _ = _fake_cublas()
    cp = _cp()
    base = cp.ones(8, np.float32)
    big = 2**31
    a = cp.lib.stride_tricks.as_strided(base, (1, big), (4, 4))          # never read
    b = cp.lib.stride_tricks.as_strided(base, (big, 1), (4, 4))
    with pytest.raises(ValueError, match=r"above 2\^31 - 1.*split the product"):
        cublas.matmul(a, b)
    # a (1, 3) row whose row stride does not fit an int: passed with op T, ld 1
    row = cp.lib.stride_tricks.as_strided(base, (1, 3), (4 * big, 4))
    x, op, ld = cublas._operand(row)
    assert x is row and op == cublas._OP_T and ld == 1
    got = cublas.matmul(row, cp.asarray(rng.standard_normal((3, 2)).astype(np.float32)))
    assert got.shape == (1, 2)


def test_cublas_library_search_prefers_the_runtimes_major_version(monkeypatch):
    from minidl.kernels import cublas
    loaded = ["/opt/torch/lib/libcublas.so.12", "/opt/cupy/lib/libcublas.so.13.0.2",
              "/opt/x/libcublasLt.so.13", "/usr/lib/libcublas.so"]
    monkeypatch.setattr(cublas, "_loaded_libraries", lambda: loaded)
    monkeypatch.setattr(cublas.glob, "glob", lambda pattern: [])
    assert cublas._candidates(13) == ["/opt/cupy/lib/libcublas.so.13.0.2",
                                      "/usr/lib/libcublas.so", "/opt/torch/lib/libcublas.so.12"]
    assert cublas._candidates(None) == [loaded[0], loaded[1], loaded[3]]
    assert cublas._major("/a/libcublas.so.13.1.0.3") == 13 and cublas._major("libcublas.so") \
        is None


# ---------------------------------------------------------------------------------------------
# graphed training steps

class _Net(nn.Module):
    """Conv (GEMM + im2col), BN, ReLU, a stride-2 conv, pooling and a linear layer."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        x = F.relu(self.bn(self.conv1(x)))
        x = F.adaptive_avg_pool2d(F.relu(self.conv2(x)), 1)
        return self.fc(F.flatten(x, 1))


def _setup(dtype="float64", build=_Net, **sgd):
    """A model (``build()``) on the GPU, its SGD and a training step over both."""
    minidl.manual_seed(3)
    model = build().to("cuda")
    if dtype == "float64":
        model = model.double()
    options = dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    options.update(sgd)
    opt = minidl.optim.SGD(model.parameters(), **options)

    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    return model, opt, step


def _batches(n, dtype="float64", batch=4):
    rng = np.random.default_rng(7)
    return [(minidl.tensor(rng.standard_normal((batch, 3, 8, 8)).astype(dtype), device="cuda"),
             minidl.tensor(rng.integers(0, 3, batch), device="cuda")) for _ in range(n)]


def _state(model):
    return {k: backend.as_numpy(v.data).copy() for k, v in model.state_dict().items()}


def _assert_same(eager_model, graphed_model, tol):
    a, b = _state(eager_model), _state(graphed_model)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=tol, atol=tol, err_msg=k)


@cuda
def test_graphed_sgd_steps_equal_eager_steps_with_a_changing_lr():
    """Warm-up, capture, then replays on new batches, with the learning rate changed before
    every step (a scheduler's job): the replayed steps must give the eager losses, weights and
    running statistics. A learning rate frozen into the graph, an input not copied into the
    captured buffer or a GEMM missing from the capture all break this."""
    eager_model, eager_opt, eager_step = _setup()
    graph_model, graph_opt, graph_fn = _setup()
    graphed = GraphedStep(graph_fn, warmup=2)
    for i, (x, y) in enumerate(_batches(6)):
        lr = 0.1 / (1 + i)
        eager_opt.param_groups[0]["lr"] = graph_opt.param_groups[0]["lr"] = lr
        want = eager_step(x, y).item()
        got = graphed(x, y).item()
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12), i
    assert graphed.calls == 6 and graphed.captures == 1
    _assert_same(eager_model, graph_model, 1e-10)


@cuda
def test_graphed_sgd_with_dampening_captures_after_one_warm_up_call():
    """SGD creates its momentum buffer in the first call and reads the dampening factor only
    later: a capture right after one eager call must still find it read (it raised, and every
    later call raised again)."""
    eager_model, _, eager_step = _setup(nesterov=False, dampening=0.5)
    graph_model, _, graph_fn = _setup(nesterov=False, dampening=0.5)
    graphed = GraphedStep(graph_fn, warmup=1)
    for x, y in _batches(4):
        assert graphed(x, y).item() == pytest.approx(eager_step(x, y).item(), rel=1e-12)
    assert graphed.captures == 1
    _assert_same(eager_model, graph_model, 1e-10)


@cuda
def test_graphed_step_in_float32_matches_eager():
    eager_model, _, eager_step = _setup("float32")
    graph_model, _, graph_fn = _setup("float32")
    graphed = GraphedStep(graph_fn, warmup=1)
    for x, y in _batches(4, "float32"):
        want = eager_step(x, y).item()
        assert graphed(x, y).item() == pytest.approx(want, rel=1e-5)
    _assert_same(eager_model, graph_model, 1e-4)


@cuda
def test_graphed_step_recaptures_when_the_update_changes_shape():
    """Turning weight decay on changes which kernels the update runs: the step is captured
    again, and still matches eager training."""
    eager_model, eager_opt, eager_step = _setup(nesterov=False, weight_decay=0.0)
    graph_model, graph_opt, graph_fn = _setup(nesterov=False, weight_decay=0.0)
    graphed = GraphedStep(graph_fn, warmup=1)
    for i, (x, y) in enumerate(_batches(6)):
        if i == 3:
            eager_opt.param_groups[0]["weight_decay"] = 1e-2
            graph_opt.param_groups[0]["weight_decay"] = 1e-2
        assert graphed(x, y).item() == pytest.approx(eager_step(x, y).item(), rel=1e-12)
    assert graphed.captures == 2
    _assert_same(eager_model, graph_model, 1e-10)


@cuda
def test_graphed_step_follows_rebound_parameters_and_loaded_optimizer_state():
    """A graph updates the arrays it recorded: after the parameters are rebound or the
    optimizer's buffers replaced by load_state_dict, it must notice, run eagerly (which copies
    them into the flat buffers) and capture again, or it would go on training the old arrays."""
    eager_model, eager_opt, eager_step = _setup()
    graph_model, graph_opt, graph_fn = _setup()
    graphed = GraphedStep(graph_fn, warmup=1)
    for i, (x, y) in enumerate(_batches(8)):
        if i in (3, 5):
            for model, opt in ((eager_model, eager_opt), (graph_model, graph_opt)):
                if i == 3:
                    for p in model.parameters():
                        p.data = p.data * 1.0
                else:
                    saved = opt.state_dict()
                    for entry in saved["state"].values():
                        entry["momentum_buffer"] = entry["momentum_buffer"] * 0.5
                    opt.load_state_dict(saved)
        assert graphed(x, y).item() == pytest.approx(eager_step(x, y).item(), rel=1e-12), i
    assert graphed.captures == 3
    _assert_same(eager_model, graph_model, 1e-10)


@cuda
@pytest.mark.parametrize("name, options", [
    ("resnet20", dict(depth=8, width=2)),
    ("resnext29", dict(depth=11, width=2, cardinality=2, bottleneck_width=2)),
    ("densenet_bc_100", dict(depth=16, growth_rate=2)),
    ("vit_tiny", dict(image_size=8, dim=6, depth=1, heads=3, mlp_dim=12)),
    ("mobilenetv2", dict(width_mult=0.125, round_nearest=1, drop_rate=0.0)),
])
def test_graphed_training_of_registered_nets_equals_eager(name, options):
    """Whole networks in float64: ResNet (option-A shortcuts), ResNeXt (grouped GEMMs), the
    memory-efficient DenseNet (shared concatenation storage, recomputation in backward, which
    restores the random state: with a GPU generator in use, that must not touch it), a ViT
    (layer norm's and attention's products through kernels.matmul, GELU's erfc) and
    MobileNetV2 (depthwise convolutions, batch norm then a clamp for relu6)."""
    import nets
    minidl.default_generator("cuda").uniform((1,))
    eager_model, _, eager_step = _setup(build=lambda: nets.get_model(name, **options), lr=0.05)
    graph_model, _, graph_fn = _setup(build=lambda: nets.get_model(name, **options), lr=0.05)
    graphed = GraphedStep(graph_fn, warmup=1)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = minidl.tensor(rng.standard_normal((2, 3, 8, 8)), device="cuda")
        y = minidl.tensor(rng.integers(0, 10, 2), device="cuda")
        assert graphed(x, y).item() == pytest.approx(eager_step(x, y).item(), rel=1e-12)
    _assert_same(eager_model, graph_model, 1e-10)


@cuda
def test_graphed_step_returns_the_same_output_tensor_overwritten_by_each_replay():
    _, _, fn = _setup()
    graphed = GraphedStep(fn, warmup=1)
    batches = _batches(4)
    graphed(*batches[0])
    first = graphed(*batches[1])
    value = first.item()
    second = graphed(*batches[2])
    assert second is first and second.item() != value


@cuda
def test_bad_labels_in_a_replayed_step_raise_at_the_next_synchronization():
    _, _, fn = _setup()
    graphed = GraphedStep(fn, warmup=1)
    batches = _batches(3)
    for x, y in batches:
        graphed(x, y)
    pending = len(backend._deferred)
    graphed(*batches[0])
    assert len(backend._deferred) == pending    # one pending flag however many replays
    minidl.synchronize("cuda")
    x, y = batches[0]
    graphed(x, minidl.tensor(np.array([0, 1, 5, 2]), device="cuda"))
    graphed(x, y)                 # a later replay with good labels must not hide the bad one
    with pytest.raises(ValueError, match=r"held a label outside \[0, 3\) for 3 classes in a "
                       "step since the last synchronization"):
        minidl.synchronize("cuda")
    graphed(x, minidl.tensor(np.array([0, -1, 1, 2]), device="cuda"))
    with pytest.raises(ValueError, match="holds label -1, outside"):
        minidl.synchronize("cuda")
    graphed(x, y)
    minidl.synchronize("cuda")    # reported once


@cuda
def test_graphed_step_refuses_what_a_replay_cannot_do():
    model, _, _ = _setup()
    x, y = _batches(1)[0]

    adam = minidl.optim.Adam(model.parameters())

    def adam_step(x, y):
        adam.zero_grad()
        F.cross_entropy(model(x), y).backward()
        adam.step()
    with pytest.raises(RuntimeError, match="Adam.step cannot run inside a CUDA-graph step"):
        GraphedStep(adam_step)(x, y)

    def reads_host(x, y):
        return F.cross_entropy(model(x), y).item()
    graphed = GraphedStep(reads_host, warmup=1)
    graphed(x, y)
    with pytest.raises(RuntimeError, match=r"Tensor.item\(\) inside a step being captured"):
        graphed(x, y)

    def drops(x, y):
        return F.dropout(model(x), 0.5, training=True).sum()
    graphed = GraphedStep(drops, warmup=1)
    graphed(x, y)
    with pytest.raises(RuntimeError, match="random numbers"):
        graphed(x, y)
    assert not backend.capturing()
    assert float(minidl.tensor([1.0, 2.0], device="cuda").sum().item()) == 3.0   # usable

    graphed = GraphedStep(lambda x, y: F.cross_entropy(model(x), y), warmup=1)
    graphed(x, y)
    with pytest.raises(ValueError, match=r"keep the shapes.*\(4, 3, 8, 8\).*\(2, 3, 8, 8\)"):
        graphed(x[:2], y[:2])


@cuda
def test_a_failing_captured_step_raises_its_own_error_not_the_invalidated_capture():
    model, _, _ = _setup()
    x, y = _batches(1)[0]

    def reads_behind_minidls_back(x, y):
        loss = F.cross_entropy(model(x), y)
        loss.data.get()                     # a host read CuPy refuses while capturing
        return loss
    graphed = GraphedStep(reads_behind_minidls_back, warmup=1)
    graphed(x, y)
    with pytest.raises(RuntimeError, match="during stream capture needs the device to sync"):
        graphed(x, y)
    assert not backend.capturing() and not _cp().cuda.get_current_stream().is_capturing()


@cuda
def test_boolean_mask_indexing_is_refused_in_a_capture_with_minidls_error():
    model, _, _ = _setup()
    x, y = _batches(1)[0]

    def masks(x, y):
        out = model(x)
        return out[out > 0].sum()
    graphed = GraphedStep(masks, warmup=1)
    graphed(x, y)
    with pytest.raises(RuntimeError, match="boolean-mask indexing on the GPU.*inside a step "
                       "being captured as a CUDA graph"):
        graphed(x, y)


def test_graphed_step_checks_its_arguments():
    with pytest.raises(TypeError, match="fn must be callable"):
        GraphedStep(3)
    with pytest.raises(ValueError, match="GraphedStep: 'warmup' must be a positive int, got 0"):
        GraphedStep(lambda x: x, warmup=0)
    step = GraphedStep(lambda x: x)
    with pytest.raises(ValueError, match="argument 0 is on cpu; CUDA graphs need"):
        step(minidl.ones(2))
    with pytest.raises(TypeError, match="argument 0 must be a Tensor, got ndarray"):
        step(np.ones(2))
    with pytest.raises(TypeError, match="at least one Tensor"):
        step()


# ---------------------------------------------------------------------------------------------
# the emulation itself

@cuda
def test_fake_capture_records_instead_of_running():
    """The emulated GPU's capture behaves as CUDA's where minidl can tell: in-place work and
    GEMMs are deferred to the replays, host reads and CuPy's cuBLAS are refused, and a host
    read (boolean-mask indexing included) invalidates the capture, whose end then fails."""
    cp = _cp()
    if cp.__version__ != "0.0-fake":
        pytest.skip("checks tests/fake_cupy only")
    a = cp.ones(3)
    s = cp.cuda.Stream(non_blocking=True)
    for read in (lambda b: b.item(), lambda b: b[b > 0], lambda b: cp.nonzero(b)):
        with s:
            s.begin_capture()
            b = a * 2
            with pytest.raises(RuntimeError, match="during stream capture"):
                read(b)
            with pytest.raises(RuntimeError, match="cudaErrorStreamCaptureInvalidated"):
                s.end_capture()
    with s:
        s.begin_capture()
        a += 1
        b = a * 2
        with pytest.raises(NotImplementedError, match="cuBLAS"):
            a @ a
        g = s.end_capture()
    np.testing.assert_array_equal(a.get(), [1, 1, 1])      # not run by the capture
    g.launch()
    np.testing.assert_array_equal(a.get(), [2, 2, 2])
    np.testing.assert_array_equal(b.get(), [4, 4, 4])
    g.launch()
    np.testing.assert_array_equal(b.get(), [6, 6, 6])


@cuda
def test_sorting_is_refused_in_a_capture_with_minidls_error():
    """CuPy's sort runs through thrust, which synchronizes: it cannot be captured."""
    model, _, _ = _setup()
    x, y = _batches(1)[0]
    graphed = GraphedStep(lambda x, y: model(x).topk(2, 1).values.sum(), warmup=1)
    graphed(x, y)
    with pytest.raises(RuntimeError, match="sorting on the GPU .* inside a step being captured"):
        graphed(x, y)
