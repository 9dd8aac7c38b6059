"""minidl's host threads (``minidl.kernels.threads``): the contract of a parallel region, and
the ops that split their work over threads, checked again with threads forced on for tiny
arrays (elsewhere in the suite the arrays are too small for threads to start): forward
against the oracles, float64 gradchecks, and the same numbers as with one thread."""
import threading
import time

import numpy as np
import pytest

import minidl
import minidl.functional as F
import nets
from minidl import kernels
from minidl.kernels import threads
from tests import (test_activation, test_batchnorm, test_conv, test_elementwise,
                   test_shape_ops)


def test_split_covers_the_range_in_near_equal_parts():
    for n in range(0, 12):
        for parts in range(1, 5):
            got = threads.split(n, parts)
            assert [i for lo, hi in got for i in range(lo, hi)] == list(range(n))
            sizes = [hi - lo for lo, hi in got]
            assert len(got) == min(n, parts) and (not sizes or max(sizes) - min(sizes) <= 1)


def test_parts_run_on_several_threads_and_cover_the_range(threaded):
    seen, barrier = [], threading.Barrier(threaded, timeout=10)

    def part(lo, hi):
        barrier.wait()              # only returns when all parts run at the same time
        seen.append((lo, hi, threading.get_ident()))
        assert threads.in_parallel_region() or threading.get_ident() != main

    main = threading.get_ident()
    threads.parallel(part, 10)
    assert sorted((lo, hi) for lo, hi, _ in seen) == [(0, 4), (4, 7), (7, 10)]
    assert len({t for _, _, t in seen}) == threaded
    assert main in {t for _, _, t in seen}             # the caller takes a part itself
    assert not threads.in_parallel_region()


def test_one_thread_or_little_work_runs_one_call_in_the_caller(threaded, monkeypatch):
    calls = []

    def part(lo, hi):
        calls.append((lo, hi, threading.get_ident()))
    threads.set_num_threads(1)
    threads.parallel(part, 10)
    threads.set_num_threads(3)
    monkeypatch.setattr(threads, "_MIN_ITEMS", 100)
    threads.parallel(part, 10, items=90)         # 90 values: not worth a thread
    assert calls == [(0, 10, threading.get_ident())] * 2


def test_a_region_inside_a_part_runs_in_that_part(threaded):
    inner = []

    def part(lo, hi):
        threads.parallel(lambda a, b: inner.append((lo, a, b, threading.get_ident())), 4)
    threads.parallel(part, 6)
    # each part runs the inner region's own 3 parts, one after the other in its thread
    assert sorted(i[:3] for i in inner) == [(lo, a, b) for lo in (0, 2, 4)
                                            for a, b in ((0, 2), (2, 3), (3, 4))]
    for lo in (0, 2, 4):
        assert len({i[3] for i in inner if i[0] == lo}) == 1


def test_an_error_in_a_part_is_raised_after_every_part_finished(threaded):
    finished = []

    def part(lo, hi):
        if lo == 3:
            raise ValueError("part 3 failed")
        threading.Event().wait(0.05)
        finished.append(lo)
    with pytest.raises(ValueError, match="part 3 failed"):
        threads.parallel(part, 9)
    assert sorted(finished) == [0, 6]
    threads.parallel(lambda lo, hi: finished.append(-1), 9)    # the workers still serve
    assert finished.count(-1) == 3


def test_results_do_not_depend_on_which_thread_gets_the_workers(threaded, rng):
    """Two user threads training at once: whichever runs its regions in one thread gets the
    same numbers, bit for bit (the parts, and so the partial sums, are the same)."""
    x = rng.standard_normal((6, 3, 9, 9))
    w = rng.standard_normal((4, 3, 3, 3))

    def grads():
        xt, wt = minidl.tensor(x, requires_grad=True), minidl.tensor(w, requires_grad=True)
        (F.conv2d(xt, wt, padding=1) ** 2).sum().backward()
        return xt.grad.numpy(), wt.grad.numpy()

    expected, got = grads(), []
    users = [threading.Thread(target=lambda: got.extend(grads() for _ in range(5)))
             for _ in range(2)]
    for t in users:
        t.start()
    for t in users:
        t.join()
    assert len(got) == 10
    for gx, gw in got:
        np.testing.assert_array_equal(gx, expected[0])
        np.testing.assert_array_equal(gw, expected[1])


@pytest.mark.skipif(threads._blas() is None or threads._cores() < 2,
                    reason="NumPy's BLAS thread count is not settable, or one core")
def test_blas_runs_one_thread_inside_a_region_and_is_restored(threaded):
    setter, getter = threads._blas()
    before = getter()
    setter(2)
    try:
        inside = []
        threads.parallel(lambda lo, hi: inside.append(getter()), 6)
        assert inside == [1, 1, 1] and getter() == 2
    finally:
        setter(before)


def test_set_num_threads_checks_its_argument():
    for bad in (0, -1):
        with pytest.raises(ValueError, match=f"set_num_threads: 'n' must be a positive int, "
                                             f"got {bad}"):
            threads.set_num_threads(bad)
    for bad, got in ((1.5, "float 1.5"), (True, "bool True"), ("2", "str '2'")):
        with pytest.raises(TypeError, match=f"set_num_threads: 'n' must be a positive int, "
                                            f"got {got}"):
            threads.set_num_threads(bad)
    assert minidl.get_num_threads() == threads.get_num_threads() >= 1


def test_view_refuses_a_reshape_that_copies():
    a = np.zeros((3, 4, 5))
    threads.view(a[:, 1:3], (3, -1))[...] = 1
    assert a.sum() == 30
    with pytest.raises(RuntimeError, match="threads.view: .* is not a view"):
        threads.view(a.transpose(1, 0, 2), (12, 5))


# ---------------------------------------------------------------------------------------------
# the threaded ops, checked as their own suites check them

@pytest.mark.parametrize("case", test_conv.CASES)
def test_conv2d_threaded(threaded, rng, case):
    test_conv.test_conv2d_matches_loops_and_gradchecks("cpu", rng, case)


@pytest.mark.parametrize("shape", test_batchnorm.SHAPES)
def test_batch_norm_threaded(threaded, rng, shape):
    test_batchnorm.test_training_forward_and_gradcheck("cpu", rng, shape, True)
    for training in (True, False):
        test_batchnorm.test_batch_norm_relu_gradcheck_and_reference("cpu", rng, training, True)


def test_relu_and_add_threaded(threaded, rng):
    test_activation.test_pointwise_activations("cpu", rng, (3, 4))
    for sa, sb in test_elementwise.BROADCAST_PAIRS:
        test_elementwise.test_binary_ops_broadcast("cpu", rng, F.add, np.add, sa, sb)


def test_cat_threaded(threaded, rng):
    test_shape_ops.test_cat_of_channel_major_features("cpu", rng)


def test_matmul_threaded_matches_numpy(threaded, rng):
    for shape_a, shape_b in [((3, 5), (5, 7)), ((7, 5), (5, 3)), ((2, 3, 4), (2, 4, 5)),
                             ((4,), (4, 3)), ((1, 1), (1, 1))]:
        a = rng.standard_normal(shape_a)
        b = rng.standard_normal(shape_b).astype(np.float32)
        got = kernels.matmul(a, b)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, a @ b, rtol=1e-12, atol=1e-12)


def test_summed_adds_the_parts_in_their_order(threaded):
    """threads.summed: each part's array, added in the order of the parts, not the order the
    threads finish (the first part finishes last here), so float rounding depends only on the
    sizes and the thread count: (1e8 - 1e8) + 3 = 3, while (-1e8 + 3) + 1e8 = 0 in float32."""
    values = np.array([1e8, -1e8, 3.0], np.float32)

    def part(lo, hi):
        if lo == 0:
            time.sleep(0.05)
        return values[lo:hi].copy()

    got = threads.summed(part, 3)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, [3.0])


def test_long_inner_dimension_matmul_threaded(threaded, rng, monkeypatch):
    """Weight-gradient products (a small result, a long inner dimension) sum chunks of the
    inner dimension on each thread: chunks of 5 here, so that parts hold several, one, and a
    short last one; either result side may be the larger (the BLAS call is flipped for one)."""
    monkeypatch.setattr(kernels, "_K_CHUNK", 5)
    for m, k, n in [(3, 64, 2), (2, 64, 3), (4, 33, 4), (1, 8, 1), (3, 0, 0)]:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((n, k)).astype(np.float32).T        # as conv passes cols.T
        got = kernels.matmul(a, b)
        assert got.shape == (m, n) and got.dtype == np.float32 and got.flags.c_contiguous
        want = a.astype(np.float64) @ b.astype(np.float64)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_im2col_and_col2im_threaded_are_exact(threaded, rng):
    x = rng.standard_normal((5, 3, 7, 6))
    for stride, padding in [((2, 2), (1, 1)), ((1, 1), (1, 2))]:
        def both():
            col = kernels.im2col(x, (3, 3), stride, padding, (1, 1))
            back = kernels.col2im(col, x.shape, stride, padding, (1, 1))
            return col.copy(), np.ascontiguousarray(back)
        threads.set_num_threads(1)
        one = both()
        threads.set_num_threads(threaded)
        for a, b in zip(both(), one):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n", [1, 3])
def test_empty_batches_still_work(rng, monkeypatch, n):
    """Zero images: every threaded op returns its empty result (and empty gradients)."""
    monkeypatch.setattr(threads, "_MIN_ITEMS", 1)
    before = threads.get_num_threads()
    threads.set_num_threads(n)
    try:
        x = minidl.tensor(np.zeros((0, 3, 6, 6)), requires_grad=True)
        w = minidl.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
        for stride in (1, 2):
            y = F.conv2d(x, w, padding=1, stride=stride)
            z = F.cat([F.relu(y) + y, y], 1)
            z.sum().backward()
            assert z.shape == (0, 8, 6 // stride, 6 // stride)
            assert x.grad.shape == x.shape and np.all(w.grad.numpy() == 0)
        assert kernels.matmul(np.zeros((2, 0)), np.zeros((0, 3))).shape == (2, 3)
    finally:
        threads.set_num_threads(before)


def test_training_step_equals_the_one_thread_step(rng):
    """A float64 training step of a small ResNet: the same loss, gradients and updated
    weights with 3 threads as with 1 (to rounding: partial sums are added in another order)."""
    x = rng.standard_normal((4, 3, 8, 8))
    y = rng.integers(0, 10, 4)
    results, before = [], threads.get_num_threads()
    for n in (1, 3):
        old, threads._MIN_ITEMS = threads._MIN_ITEMS, 1
        threads.set_num_threads(n)
        try:
            minidl.manual_seed(0)
            model = nets.get_model("resnet20", depth=8, width=4).to(minidl.float64)
            opt = minidl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            loss = F.cross_entropy(model(minidl.tensor(x)), minidl.tensor(y))
            loss.backward()
            grads = [p.grad.numpy().copy() for p in model.parameters()]
            opt.step()
            results.append((loss.item(), grads, [p.numpy().copy() for p in model.parameters()]))
        finally:
            threads._MIN_ITEMS = old
            threads.set_num_threads(before)
    (l1, g1, w1), (l3, g3, w3) = results
    assert abs(l1 - l3) < 1e-12
    for a, b in zip(g1 + w1, g3 + w3):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
