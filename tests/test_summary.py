"""minidl.summary: parameter totals equal the model's, MACs equal hand-computed counts, rows
show the real output shapes, depth limits the rows but not the totals, the model comes back as
it went in, and bad arguments are clear errors."""
import numpy as np
import pytest

import minidl
import minidl.nn as nn
import nets
from minidl.summary import ModelSummary, Row


def by_name(s):
    return {r.name: r for r in s.rows}


def one_layer_macs(layer, shape):
    return minidl.summary(layer, input_size=shape).total_macs


# -- parameters --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["resnet20", "densenet40", "mobilenetv2", "vit"])
def test_param_totals_equal_the_models_parameters(name):
    model = nets.get_model(name)
    params = list(model.parameters())
    s = minidl.summary(model, input_size=(1, 3, 32, 32))
    assert s.total_params == sum(p.numel() for p in params)
    assert s.trainable_params == s.total_params and s.non_trainable_params == 0
    assert s.uncalled_params == 0
    assert s.param_bytes == 4 * s.total_params                  # float32
    for depth in (1, 10):        # the hooks reach every parameter once, whatever the depth
        rows = minidl.summary(model, input_size=(1, 3, 32, 32), depth=depth).rows
        assert sum(r.params for r in rows) == s.total_params
    if name == "resnet20":
        assert s.total_params == 269_722


def test_shared_parameter_counted_once_and_repeated_call_marked_recursive():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 4)
            self.b.weight = self.a.weight             # tied weights: 16 elements, once
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.b(self.act(self.a(x))))

    s = minidl.summary(Tied(), input_size=(3, 4))
    assert s.total_params == 16 + 4 + 4 == sum(p.numel() for p in Tied().parameters())
    assert [(r.name, r.params, r.recursive) for r in s.rows] == [
        ("", 0, False), ("a", 20, False), ("act", 0, False), ("b", 4, False),
        ("act", 0, True)]
    assert sum(r.params for r in s.rows) == s.total_params
    assert s.total_macs == 2 * (3 * 4 * 4 + 3 * 4)     # the shared weight still works twice

    lin = nn.Linear(3, 3)
    twice = minidl.summary(nn.Sequential(lin, nn.ReLU(), lin), input_size=(2, 3))
    rows = twice.rows[1:]
    assert [(r.params, r.recursive, r.macs) for r in (rows[0], rows[2])] == [
        (12, False, 2 * 9 + 6), (0, True, 2 * 9 + 6)]
    assert twice.total_params == 12 and twice.total_macs == 2 * (2 * 9 + 6)
    assert "(recursive)" in str(twice)


def test_frozen_parameters_are_non_trainable_and_marked():
    model = nn.Sequential(nn.Linear(4, 5), nn.Linear(5, 2))
    model[0].requires_grad_(False)
    model[1].bias.requires_grad_(False)
    s = minidl.summary(model, input_size=(1, 4))
    assert (s.total_params, s.trainable_params, s.non_trainable_params) == (37, 10, 27)
    assert [r.trainable_params for r in s.rows] == [0, 0, 10]
    text = str(s)
    assert "25 (frozen)" in text and "12 (2 frozen)" in text


def test_params_of_modules_forward_never_calls_are_in_the_totals_only():
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(2, 2)
            self.spare = nn.Linear(3, 3)

        def forward(self, x):
            return self.used(x)

    s = minidl.summary(Unused(), input_size=(1, 2))
    assert (s.total_params, s.uncalled_params) == (6 + 12, 12)
    assert "spare" not in by_name(s)
    assert "Params in modules forward never called: 12" in str(s)


# -- MACs --------------------------------------------------------------------------------------
def test_conv2d_macs():
    assert one_layer_macs(nn.Conv2d(3, 8, 3, padding=1, bias=False), (1, 3, 8, 8)) \
        == 8 * 8 * 8 * 3 * 9
    # bias: one add per output element (torchinfo's convention)
    assert one_layer_macs(nn.Conv2d(3, 8, 3, padding=1), (1, 3, 8, 8)) \
        == 8 * 8 * 8 * 3 * 9 + 8 * 8 * 8
    # the batch multiplies; stride 2 on 9x9 with padding 1 gives 5x5; 2 input channels a group
    assert one_layer_macs(nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2, bias=False),
                          (2, 4, 9, 9)) == 2 * 8 * 5 * 5 * 2 * 9
    # depthwise 5x5, dilation 2, no padding: 12 - 8 = 4 -> 4x4 outputs of 25 taps
    assert one_layer_macs(nn.Conv2d(6, 6, 5, dilation=2, groups=6, bias=False),
                          (1, 6, 12, 12)) == 6 * 4 * 4 * 25


def test_conv_transpose2d_macs_count_input_pixels_times_kernel():
    layer = nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2)
    s = minidl.summary(layer, input_size=(1, 4, 5, 5))
    assert s.rows[0].output_shape == (1, 6, 11, 11)             # (5 - 1) * 2 + 3
    # every one of 5*5 pixels x 4 channels meets 3 output channels x 9 taps; bias per output
    assert s.total_macs == 5 * 5 * 4 * 3 * 9 + 6 * 11 * 11


def test_linear_macs_count_every_row():
    assert one_layer_macs(nn.Linear(5, 7), (2, 3, 5)) == 6 * 5 * 7 + 6 * 7
    assert one_layer_macs(nn.Linear(5, 7, bias=False), (4, 5)) == 4 * 5 * 7


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention_macs(batch_first):
    E, N, L, S = 8, 3, 5, 7
    mha = nn.MultiheadAttention(E, 2, batch_first=batch_first)
    q_shape = (N, L, E) if batch_first else (L, N, E)
    kv_shape = (N, S, E) if batch_first else (S, N, E)
    q, kv = minidl.randn(*q_shape), minidl.randn(*kv_shape)
    s = minidl.summary(mha, input_data=[q, kv, kv])
    proj = N * L * E * E + 2 * N * S * E * E + (N * L + 2 * N * S) * E
    attention = 2 * N * L * S * E
    out_proj = N * L * E * E + N * L * E
    rows = by_name(s)
    assert rows[""].macs == proj + attention
    assert rows["out_proj"].macs == out_proj and rows["out_proj"].depth == 1
    assert s.total_macs == proj + attention + out_proj
    assert rows[""].output_shape == (q_shape, (N, L, S))        # (output, averaged weights)


def test_small_sequential_total_and_zero_mac_layers():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 5))
    s = minidl.summary(model, input_size=(2, 3, 8, 8))
    conv = 2 * 4 * 6 * 6 * 3 * 9
    linear = 2 * 36 * 5 + 2 * 5
    assert [r.macs for r in s.rows] == [0, conv, 0, 0, 0, 0, linear]
    assert s.total_macs == conv + linear
    emb = minidl.summary(nn.Embedding(10, 4), input_size=(2, 3), dtype=minidl.int64)
    assert emb.total_macs == 0 and emb.total_params == 40


def resnet20_macs(H=32, W=32, width=16, n=3, classes=10):
    """Convolutions and the final Linear of ResNet-20 (option A shortcuts: no parameters),
    from the architecture: 3x3 stem, three stages of n blocks of two 3x3 convs."""
    total = H * W * width * 3 * 9                                   # stem, 3 -> 16
    c_in = width
    for stage, c in enumerate((width, 2 * width, 4 * width)):
        if stage:
            H, W = H // 2, W // 2                                   # first conv, stride 2
        for block in range(n):
            total += H * W * c * c_in * 9 + H * W * c * c * 9
            c_in = c
    return total + 4 * width * classes + classes                    # fc weight and bias


def test_resnet20_macs():
    expected = resnet20_macs()
    assert expected == 40_551_050                    # the well-known ~40.55 M (41 M) MACs
    s = minidl.summary(nets.get_model("resnet20"), input_size=(1, 3, 32, 32))
    assert s.total_macs == expected
    assert minidl.summary(nets.get_model("resnet20"), input_size=(3, 3, 32, 32)).total_macs \
        == 3 * expected
    assert f"Total MACs: {expected:,}" in str(s)


# -- rows and depth ----------------------------------------------------------------------------
def test_row_output_shapes_equal_the_real_outputs():
    model = nets.get_model("resnet20").eval()
    s = minidl.summary(model, input_size=(2, 3, 32, 32), depth=10)
    rows = by_name(s)
    x = minidl.randn(2, 3, 32, 32)
    with minidl.no_grad():
        stem = model.features.stem(x)
        stage1 = model.features.stage1(stem)
        block = model.features.stage2[0]
        y = block(stage1)
        conv1 = block.conv1.conv(stage1)
        out = model(x)
    assert rows["features.stem"].output_shape == tuple(stem.shape) == (2, 16, 32, 32)
    assert rows["features.stage2.0"].output_shape == tuple(y.shape) == (2, 32, 16, 16)
    assert rows["features.stage2.0.conv1.conv"].output_shape == tuple(conv1.shape)
    assert rows["features.stage2.0.shortcut"].output_shape == (2, 32, 16, 16)
    assert rows["classifier.dropout"].output_shape == (2, 64)        # after the pooling
    assert rows[""].output_shape == tuple(out.shape) == (2, 10)
    assert isinstance(s, ModelSummary) and all(isinstance(r, Row) for r in s.rows)


def test_depth_limits_rows_not_totals():
    model = nets.get_model("resnet20")
    full = minidl.summary(model, input_size=(1, 3, 32, 32), depth=10)
    assert max(r.depth for r in full.rows) == 5          # ...block.conv1 (ConvBNReLU).conv
    for depth in (0, 1, 2, 3, 10):
        s = minidl.summary(model, input_size=(1, 3, 32, 32), depth=depth)
        assert all(r.depth <= depth for r in s.rows)
        assert len(s.rows) == sum(r.depth <= depth for r in full.rows)
        assert (s.total_params, s.total_macs) == (full.total_params, full.total_macs)
        # a row at the depth limit includes what is nested in it: the rows add up
        assert sum(r.params for r in s.rows) == s.total_params
        assert sum(r.macs for r in s.rows) == s.total_macs
    root = minidl.summary(model, input_size=(1, 3, 32, 32), depth=0)
    assert [(r.name, r.type, r.params, r.macs) for r in root.rows] == [
        ("", "CifarResNet", 269_722, 40_551_050)]
    d1 = by_name(minidl.summary(model, input_size=(1, 3, 32, 32), depth=1))
    assert d1["classifier"].params == 650 and d1["classifier"].macs == 650
    assert d1["features"].macs == 40_551_050 - 650


def test_str_has_rows_and_totals():
    s = minidl.summary(nets.get_model("resnet20"), input_size=(1, 3, 32, 32))
    text = str(s)
    for line in ("Total params: 269,722", "Trainable params: 269,722",
                 "Non-trainable params: 0", "Total MACs: 40,551,050 (40.55 M), input "
                 "[1, 3, 32, 32]", "Input size (MB): 0.01", "Params size (MB): 1.08",
                 "Forward/backward pass size (MB):", "Estimated Total Size (MB):"):
        assert line in text.splitlines() or any(ln.startswith(line)
                                                 for ln in text.splitlines()), line
    assert "    └─conv (Conv2d)" in text and "442,368" in text
    assert max(len(line) for line in text.splitlines()) <= 100
    # input 1*3*32*32 float32; parameters 4 bytes each
    assert s.input_bytes == 3 * 32 * 32 * 4 and s.param_bytes == 269_722 * 4
    assert s.total_bytes == s.input_bytes + s.forward_backward_bytes + s.param_bytes


def test_forward_backward_size_is_twice_the_leaf_outputs():
    model = nn.Sequential(nn.Linear(4, 6), nn.Sequential(nn.ReLU(), nn.Linear(6, 3))).double()
    s = minidl.summary(model, input_size=(2, 4), dtype=np.float64)
    # leaves: Linear (2, 6), ReLU (2, 6), Linear (2, 3), float64; containers not again
    assert s.forward_backward_bytes == 2 * 8 * (12 + 12 + 6)
    assert s.input_bytes == 2 * 4 * 8


# -- the model comes back unchanged ------------------------------------------------------------
class Recorder(nn.Module):
    """Records the training flag and grad mode it ran under."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.seen = []

    def forward(self, x):
        self.seen.append((self.training, minidl.is_grad_enabled()))
        return self.lin(x)


def test_eval_mode_no_grad_during_the_pass_and_state_restored():
    model = nn.Sequential(Recorder(), nn.Dropout(0.5), Recorder())
    model.train()
    model[2].eval()                                      # mixed flags come back as they were
    model[0].lin.weight.requires_grad_(False)
    flags = [m.training for m in model.modules()]
    req = [p.requires_grad for p in model.parameters()]
    hooks = [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()]
    minidl.summary(model, input_size=(2, 3))
    assert model[0].seen == [(False, False)] and model[2].seen == [(False, False)]
    assert [m.training for m in model.modules()] == flags
    assert [p.requires_grad for p in model.parameters()] == req
    assert all(p.grad is None for p in model.parameters())
    assert [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()] == hooks
    assert minidl.is_grad_enabled()


def test_failed_forward_restores_the_model_and_names_the_input():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(5, 2))
    with pytest.raises(RuntimeError, match=r"summary: the forward pass of Sequential on input "
                       r"shape\(s\) \[\(2, 3\)\] failed in '1' \(Linear\): ValueError"):
        minidl.summary(model, input_size=(2, 3))
    assert model.training and all(m.training for m in model.modules())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_global_rng_untouched():
    model = nn.Linear(3, 2)                  # (its initialization draws from the global RNG)
    minidl.manual_seed(5)
    a = minidl.randn(4).numpy()
    minidl.manual_seed(5)
    minidl.summary(model, input_size=(2, 3))
    np.testing.assert_array_equal(minidl.randn(4).numpy(), a)


def test_device(device):
    model = nets.get_model("resnet20", depth=8, width=4).to(device)
    s = minidl.summary(model, input_size=(2, 3, 16, 16))
    cpu = minidl.summary(nets.get_model("resnet20", depth=8, width=4),
                         input_size=(2, 3, 16, 16))
    assert s.total_macs == cpu.total_macs == 2 * resnet20_macs(16, 16, width=4, n=1)
    assert s.total_params == cpu.total_params
    assert [r.output_shape for r in s.rows] == [r.output_shape for r in cpu.rows]
    assert all(p.grad is None for p in model.parameters())
    x = minidl.randn(2, 3, 16, 16, device=device)
    assert minidl.summary(model, input_data=x).total_macs == s.total_macs


# -- inputs ------------------------------------------------------------------------------------
class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 2), nn.Linear(4, 2)

    def forward(self, x, y):
        return self.a(x) + self.b(y)


def test_several_inputs_input_data_forms_and_batch_dim():
    model = TwoInputs()
    s = minidl.summary(model, input_size=[(5, 3), (5, 4)])
    assert s.input_shapes == [(5, 3), (5, 4)] and s.rows[0].output_shape == (5, 2)
    assert s.total_macs == 5 * 3 * 2 + 5 * 2 + 5 * 4 * 2 + 5 * 2
    x, y = minidl.randn(5, 3), minidl.randn(5, 4)
    assert minidl.summary(model, input_data=(x, y)).total_macs == s.total_macs
    assert minidl.summary(model, input_data={"x": x, "y": y}).total_macs == s.total_macs
    b = minidl.summary(model, input_size=[(3,), (4,)], batch_dim=0)
    assert b.input_shapes == [(1, 3), (1, 4)] and b.rows[0].output_shape == (1, 2)
    conv = minidl.summary(nn.Conv2d(3, 2, 1), input_data=minidl.randn(3, 4, 4), batch_dim=0)
    assert conv.input_shapes == [(1, 3, 4, 4)]
    f64 = minidl.summary(nn.Linear(3, 2).to(dtype=np.float64), input_size=(1, 3))
    assert f64.input_bytes == 3 * 8 and f64.param_bytes == 8 * 8


def test_minidl_summary_is_the_function_and_the_module_importable():
    import importlib
    import sys
    importlib.import_module("minidl.summary")
    assert callable(minidl.summary) and minidl.summary.__name__ == "summary"
    assert sys.modules["minidl.summary"].ModelSummary is ModelSummary
    assert sys.modules["minidl.summary"].summary is minidl.summary


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, error, pattern", [
    (dict(model="resnet20"), TypeError, r"summary: 'model' must be a minidl.nn.Module, got str"),
    (dict(input_size=None), ValueError,
     r"exactly one of 'input_size' and 'input_data', got neither"),
    (dict(input_data=minidl.zeros(1, 3)), ValueError,
     r"exactly one of 'input_size' and 'input_data', got both"),
    (dict(input_size=3), TypeError, r"'input_size' must be a tuple of positive ints .*got int"),
    (dict(input_size="1, 3"), TypeError, r"'input_size' must be a tuple of positive ints"),
    (dict(input_size=(1, 0)), ValueError, r"'input_size' must be .*, got 0 in \(1, 0\)"),
    (dict(input_size=(1, -3)), ValueError, r"'input_size' must be .*, got -3"),
    (dict(input_size=(1, 3.0)), TypeError, r"'input_size' must be .*, got float 3.0"),
    (dict(input_size=(1, True)), TypeError, r"'input_size' must be .*, got bool True"),
    (dict(input_size=()), ValueError, r"'input_size' must be .*got an empty shape"),
    (dict(input_size=[(1, 3), (1, "4")]), TypeError, r"'input_size' must be .*got str '4'"),
    (dict(input_size=[(1, 3), 4]), TypeError, r"'input_size' must be .*got int 4"),
    (dict(depth=-1), ValueError, r"summary: 'depth' must be a non-negative int, got -1"),
    (dict(depth=1.5), TypeError, r"summary: 'depth' must be a non-negative int, got float"),
    (dict(batch_dim=3), ValueError, r"'batch_dim' must be in 0..2 .* got 3"),
    (dict(batch_dim="0"), TypeError, r"'batch_dim' must be a non-negative int or None"),
    (dict(dtype=[np.float32, np.float32]), ValueError, r"'dtype' lists 2 dtypes for 1 input"),
    (dict(dtype="no-such-type"), TypeError, r"'dtype' must be a numeric .*got 'no-such-type'"),
    (dict(dtype=object), TypeError, r"'dtype' must be a numeric dtype"),
])
def test_bad_arguments(kwargs, error, pattern):
    args = dict(model=nn.Linear(3, 2), input_size=(1, 3))
    args.update(kwargs)
    with pytest.raises(error, match=pattern):
        minidl.summary(**args)


def test_bad_input_data():
    with pytest.raises(TypeError, match=r"summary: 'input_data' must be a Tensor, a list or "
                       r"tuple .*got ndarray"):
        minidl.summary(nn.Linear(3, 2), input_data=np.zeros((1, 3), np.float32))


def test_recurrent_macs_count_every_weight_once_per_step():
    from minidl import nn
    lstm = nn.LSTM(5, 7, num_layers=2, bidirectional=True)
    # per step and direction: layer 0 W_ih 28x5, W_hh 28x7 and two 28-biases; layer 1 reads
    # both directions' 14 features: W_ih 28x14
    per_step = 2 * (28 * 5 + 28 * 7 + 2 * 28) + 2 * (28 * 14 + 28 * 7 + 2 * 28)
    assert minidl.summary(lstm, (4, 3, 5)).total_macs == 4 * 3 * per_step
    gru = nn.GRU(5, 6, batch_first=True, bias=False)
    assert minidl.summary(gru, (2, 9, 5)).total_macs == 2 * 9 * (18 * 5 + 18 * 6)
    cell = nn.GRUCell(5, 7)
    assert minidl.summary(cell, (3, 5)).total_macs == 3 * (21 * 5 + 21 * 7 + 2 * 21)
