"""The direct depthwise path of conv2d on the host (kernels.depthwise): stride 1, one input and
output channel per group, output rows of at least depthwise.MIN_WIDTH columns. Forward against
the direct-loop oracle, float64 gradchecks with random upstream gradients, several blocks of
images per thread (with a smaller last one) and several threads, agreement with the im2col
path it replaces, and a non-finite value kept to its own image and channel."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.kernels import depthwise, threads
from tests import reference as R
from tests.helpers import check_op

# (N, C, H, W), (KH, KW), stride, padding, dilation, bias
CASES = [
    ((2, 3, 8, 8), (3, 3), 1, 1, 1, True),                  # "same" 3x3
    ((1, 2, 5, 9), (3, 3), 1, 1, 1, False),                 # batch 1, non-square image
    ((3, 2, 6, 10), (5, 5), 1, 2, 1, True),                 # 5x5
    ((2, 3, 7, 10), (3, 2), 1, (1, 0), (1, 2), False),      # non-square kernel, dilation (1, 2)
    ((2, 2, 9, 8), (3, 3), 1, 2, 2, True),                  # dilation 2
    ((2, 2, 6, 10), (3, 3), 1, 0, 1, False),                # no padding: OW = W - 2
    ((2, 2, 4, 8), (3, 3), 1, 3, 1, True),                  # padding past the kernel's reach
    ((2, 3, 5, 8), (1, 1), 1, 0, 1, False),                 # 1x1: a per-channel scale
    ((2, 4, 3, 12), (1, 3), 1, (2, 1), 1, True),            # one kernel row, padded rows
    ((2, 3, 9, 16), (3, 3), 2, 1, 1, True),                 # stride 2: four phases
    ((2, 2, 8, 17), (3, 3), 2, 0, 1, False),                # stride 2, odd width, no padding
    ((1, 2, 7, 26), (5, 4), (2, 3), (2, 1), (1, 2), True),  # strides (2, 3), dilation (1, 2)
    ((2, 2, 6, 24), (3, 3), 3, 2, 2, False),                # stride 3 and dilation 2
    ((2, 3, 5, 16), (2, 2), 2, 0, 1, True),                 # kernel = stride: one offset each
]


def _spy(monkeypatch):
    """Count the calls of the depthwise kernels (so a test knows the path was taken)."""
    calls = []
    for name in ("forward", "input_grad", "weight_grad"):
        fn = getattr(depthwise, name)

        def spy(*args, _fn=fn, _name=name):
            calls.append(_name)
            return _fn(*args)
        monkeypatch.setattr(depthwise, name, spy)
    return calls


@pytest.fixture
def small_blocks(monkeypatch, threaded):
    """Blocks of one or two images in chunks of one or two channels: several tiles per
    thread, the last ones smaller, on 3 threads (conftest's ``threaded``)."""
    monkeypatch.setattr(depthwise, "RUN", 100)
    monkeypatch.setattr(depthwise, "CHUNK", 250)


def _arrays(rng, case):
    (N, C, H, W), (KH, KW), s, p, d, bias = case
    arrays = [rng.standard_normal((N, C, H, W)), rng.standard_normal((C, 1, KH, KW))]
    if bias:
        arrays.append(rng.standard_normal(C))
    return arrays, dict(stride=s, padding=p, dilation=d, groups=C)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("blocks", ["default", "small"])
def test_depthwise_matches_loops_and_gradchecks(rng, monkeypatch, request, case, blocks):
    if blocks == "small":
        request.getfixturevalue("small_blocks")
    calls = _spy(monkeypatch)
    arrays, kw = _arrays(rng, case)
    check_op(lambda x, w, b=None: F.conv2d(x, w, b, **kw), arrays,
             lambda x, w, b=None: R.conv2d(x, w, b, **kw))
    assert {"forward", "input_grad", "weight_grad"} <= set(calls)


def test_depthwise_blocks_and_threads_give_the_same_result(rng, monkeypatch):
    """One block on one thread, and blocks of 1-2 images in chunks of 1-2 channels on 3
    threads: the same forward and input gradient bit for bit (no value is summed across
    images), the same weight gradient to rounding (the threads' partial sums are added in
    another grouping)."""
    x = rng.standard_normal((7, 5, 6, 9))
    w = rng.standard_normal((5, 1, 3, 3))
    gy = rng.standard_normal((7, 5, 6, 9))

    def run():
        return (depthwise.forward(x, w, (1, 1), (1, 1), (1, 1)),
                depthwise.input_grad(gy, w, x.shape, (1, 1), (1, 1), (1, 1)),
                depthwise.weight_grad(gy, x, w.shape, (1, 1), (1, 1), (1, 1)))

    old = threads.get_num_threads()
    try:
        threads.set_num_threads(1)
        one = run()
        monkeypatch.setattr(depthwise, "RUN", 100)
        monkeypatch.setattr(depthwise, "CHUNK", 250)
        monkeypatch.setattr(threads, "_MIN_ITEMS", 1)
        threads.set_num_threads(3)
        many = run()
    finally:
        threads.set_num_threads(old)
    np.testing.assert_array_equal(many[0], one[0])
    np.testing.assert_array_equal(many[1], one[1])
    np.testing.assert_allclose(many[2], one[2], rtol=1e-13, atol=1e-13)


def test_depthwise_path_agrees_with_im2col_in_float32(rng, monkeypatch):
    """A MobileNetV2-like layer (float32, 'same' 3x3, bias) through both paths: forward and
    all gradients equal to float32 rounding."""
    x = rng.standard_normal((4, 24, 16, 16)).astype(np.float32)
    w = rng.standard_normal((24, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    gy = rng.standard_normal((4, 24, 16, 16)).astype(np.float32)

    def run():
        ts = [minidl.tensor(a, requires_grad=True) for a in (x, w, b)]
        y = F.conv2d(*ts, padding=1, groups=24)
        y.backward(minidl.tensor(gy))
        return [y.numpy()] + [t.grad.numpy() for t in ts]

    calls = _spy(monkeypatch)
    direct = run()
    assert calls
    monkeypatch.setattr(depthwise, "MIN_WIDTH", 10 ** 9)          # im2col for every width
    calls.clear()
    columns = run()
    assert not calls
    for a, c in zip(direct, columns):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-4 * np.abs(c).max())


def test_a_nonfinite_value_stays_in_its_image_and_channel(rng, monkeypatch):
    """Grid buffers are reused from block to block, and the padded grid's wasted positions
    (zeros of gy) meet input values in the weight gradient's products: an inf in image 3,
    channel 0 leaves every other image's output exact and channel 1's weight gradient exact
    (channel 0's is non-finite, as im2col's would be at the offsets that read it; here 0 * inf
    can make NaN of other offsets too)."""
    x = rng.standard_normal((5, 2, 6, 8))
    w = rng.standard_normal((2, 1, 3, 3))
    gy = rng.standard_normal((5, 2, 4, 8))
    x[3, 0, 0, 0] = np.inf
    monkeypatch.setattr(depthwise, "RUN", 100)             # blocks of 2, 2 and 1 images
    old = threads.get_num_threads()
    threads.set_num_threads(1)
    try:
        y = depthwise.forward(x, w, (1, 1), (0, 1), (1, 1))
        gw = depthwise.weight_grad(gy, x, w.shape, (1, 1), (0, 1), (1, 1))
    finally:
        threads.set_num_threads(old)
    others = [0, 1, 2, 4]
    np.testing.assert_allclose(y[others], R.conv2d(x[others], w, None, 1, (0, 1), 1, 2),
                               atol=1e-12)
    xp = np.pad(x[:, 1], ((0, 0), (0, 0), (1, 1)))
    expected = [[np.einsum("nhw,nhw->", gy[:, 1], xp[:, i:i + 4, j:j + 8]) for j in range(3)]
                for i in range(3)]
    np.testing.assert_allclose(gw[1, 0], expected, rtol=1e-12)
    assert not np.isfinite(gw[0]).all()


@pytest.mark.parametrize("size,kw", [
    (6, dict(stride=2, padding=1, groups=4)),               # output rows of 3 < MIN_WIDTH
    (8, dict(padding=1, groups=2)),                         # two channels per group
    (3, dict(padding=1, groups=4)),                         # output rows of 3
])
def test_other_grouped_convs_keep_im2col(rng, monkeypatch, size, kw):
    """(Nor does their input gradient, a convolution of gy, take the direct path here.)"""
    calls = _spy(monkeypatch)
    x = minidl.tensor(rng.standard_normal((2, 4, size, size)), requires_grad=True)
    w = minidl.tensor(rng.standard_normal((4, 4 // kw["groups"], 3, 3)), requires_grad=True)
    F.conv2d(x, w, **kw).sum().backward()
    assert not calls
    np.testing.assert_allclose(F.conv2d(x, w, **kw).numpy(),
                               R.conv2d(x.numpy(), w.numpy(), None, **kw), atol=1e-12)


def test_same_padding_grids_share_their_zero_rows_and_columns():
    """A "same" 3x3 layer's grid holds (H+1) x (W+1) positions per image (each image's zero
    row and each row's zero column shared with the next), not (H+2) x (W+2); where some phase
    has no zeros after its input to share (stride 2, padding 1 on an even size), nothing is
    dropped."""
    g = depthwise._Grid((2, 3, 8, 8), (3, 3), (1, 1), (1, 1), (1, 1))
    assert (g.Hq, g.Wq, g.cells, g.margin) == (9, 9, 81, 10)
    g = depthwise._Grid((2, 3, 16, 16), (3, 3), (2, 2), (1, 1), (1, 1))
    assert (g.Hq, g.Wq, g.lead) == (9, 9, (0, 0))
    g = depthwise._Grid((2, 3, 8, 8), (3, 3), (1, 1), (3, 3), (1, 1))    # outputs need 12 rows
    assert g.lead == (0, 0) and g.Hq == 14
    # what sharing relies on: every phase has at least as many zeros after its input as the
    # fewest any phase has before it
    for stride in range(1, 5):
        for pad in range(6):
            for size in range(1, 20):
                around = depthwise._zeros_around(stride, pad, size)
                lead = min(before for before, _ in around)
                assert all(after >= lead for _, after in around), (stride, pad, size)


def test_random_layouts_agree_with_im2col(rng, monkeypatch, threaded):
    """Forward and both gradients of 40 random depthwise layers (kernel 1-5, stride 1-3,
    padding 0-3, dilation 1-2, small blocks of images on 3 threads) equal the im2col path's
    in float64: whatever rows and columns the grids drop, no value is read or written across
    an image or a row."""
    monkeypatch.setattr(depthwise, "RUN", 60)
    monkeypatch.setattr(depthwise, "CHUNK", 200)
    monkeypatch.setattr(depthwise, "MIN_WIDTH", 1)
    done = 0
    while done < 40:
        KH, KW = rng.integers(1, 6, 2)
        s = tuple(rng.integers(1, 4, 2))
        p = tuple(rng.integers(0, 4, 2))
        d = tuple(rng.integers(1, 3, 2))
        N, C, H, W = 3, 2, int(rng.integers(3, 11)), int(rng.integers(3, 11))
        if min(H + 2 * p[0] - d[0] * (KH - 1), W + 2 * p[1] - d[1] * (KW - 1)) < 1:
            continue
        x, w = rng.standard_normal((N, C, H, W)), rng.standard_normal((C, 1, KH, KW))
        y = F.conv2d(minidl.tensor(x), minidl.tensor(w), stride=s, padding=p, dilation=d,
                     groups=C).numpy()
        gy = rng.standard_normal(y.shape)
        direct = (depthwise.forward(x, w, s, p, d), depthwise.input_grad(gy, w, x.shape, s, p, d),
                  depthwise.weight_grad(gy, x, w.shape, s, p, d))
        with monkeypatch.context() as m:
            m.setattr(depthwise, "MIN_WIDTH", 10 ** 9)
            ts = [minidl.tensor(a, requires_grad=True) for a in (x, w)]
            out = F.conv2d(*ts, stride=s, padding=p, dilation=d, groups=C)
            out.backward(minidl.tensor(gy))
        for a, b in zip(direct, (out.numpy(), ts[0].grad.numpy(), ts[1].grad.numpy())):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12,
                                       err_msg=f"{(KH, KW)} s={s} p={p} d={d} {(H, W)}")
        done += 1
