"""nets/vit.py: output shape, parameter count (formula and a torch-built twin), forward equal
to the torch twin with copied weights, whole-network gradcheck at a tiny size, initialization,
train/eval differing only by dropout, bad options."""
import numpy as np
import pytest

import minidl
from nets.vit import VisionTransformer
from tests.helpers import host, to_tensor

TINY = dict(image_size=8, patch_size=4, num_classes=3, dim=8, depth=2, heads=2, mlp_dim=16)


def expected_parameters(image_size=32, patch_size=4, num_classes=10, dim=192, depth=9,
                        heads=3, mlp_dim=384, in_channels=3):
    tokens = (image_size // patch_size) ** 2 + 1
    layer = (3 * dim * dim + 3 * dim          # in_proj weight and bias
             + dim * dim + dim                 # out_proj
             + dim * mlp_dim + mlp_dim + mlp_dim * dim + dim     # linear1, linear2
             + 4 * dim)                        # norm1, norm2
    return (in_channels * patch_size ** 2 * dim + dim       # patch embedding conv
            + dim + tokens * dim                             # class token, position embedding
            + depth * layer + 2 * dim                        # encoder and its final norm
            + dim * num_classes + num_classes)               # head


def torch_twin(torch, image_size, patch_size, num_classes, dim, depth, heads, mlp_dim,
               in_channels=3):
    """The same network built from torch.nn (for parameter names, count and outputs)."""
    class TorchViT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.patch_embed = torch.nn.Conv2d(in_channels, dim, patch_size, patch_size)
            self.cls_token = torch.nn.Parameter(torch.zeros(1, 1, dim))
            tokens = (image_size // patch_size) ** 2 + 1
            self.pos_embed = torch.nn.Parameter(torch.zeros(1, tokens, dim))
            layer = torch.nn.TransformerEncoderLayer(dim, heads, mlp_dim, 0.0, "gelu", 1e-6,
                                                     batch_first=True, norm_first=True)
            self.encoder = torch.nn.TransformerEncoder(
                layer, depth, norm=torch.nn.LayerNorm(dim, eps=1e-6),
                enable_nested_tensor=False)
            self.head = torch.nn.Linear(dim, num_classes)

        def forward(self, x):
            x = self.patch_embed(x).flatten(2).transpose(1, 2)
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
            return self.head(self.encoder(x)[:, 0])
    return TorchViT()


def test_default_output_shape_and_parameter_count():
    model = VisionTransformer()
    y = model(minidl.randn(2, 3, 32, 32))
    assert y.shape == (2, 10) and y.dtype == np.float32 and np.isfinite(host(y)).all()
    assert model.num_parameters() == expected_parameters() == 2_697_610


@pytest.mark.parametrize("options", [dict(), dict(dim=96, depth=2, heads=4, mlp_dim=64,
                                                   patch_size=8, num_classes=100,
                                                   in_channels=1)])
def test_parameters_match_a_torch_twin(options):
    torch = pytest.importorskip("torch")
    full = dict(image_size=32, patch_size=4, num_classes=10, dim=192, depth=9, heads=3,
                mlp_dim=384, in_channels=3)
    full.update(options)
    model = VisionTransformer(**full)
    twin = torch_twin(torch, **full)
    assert model.num_parameters() == expected_parameters(**full)
    assert model.num_parameters() == sum(p.numel() for p in twin.parameters())
    assert list(model.state_dict()) == list(twin.state_dict())


def test_forward_and_gradients_match_the_torch_twin(rng):
    torch = pytest.importorskip("torch")
    model = VisionTransformer(**TINY).double()
    twin = torch_twin(torch, **TINY).double()
    twin.load_state_dict({k: torch.tensor(host(v)) for k, v in model.state_dict().items()})
    x = rng.standard_normal((2, 3, 8, 8))
    y = model(to_tensor(x))
    ty = twin(torch.tensor(x))
    np.testing.assert_allclose(host(y), ty.detach().numpy(), atol=1e-12)
    g = rng.standard_normal(y.shape)
    (y * to_tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()
    t_params = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(host(p.grad), t_params[name].grad.numpy(), atol=1e-12)


def test_whole_network_gradcheck(rng):
    """Training mode with dropout (the mask fixed by reseeding before every forward), the
    input and every parameter at once, fast mode as the other networks' gradchecks."""
    model = VisionTransformer(**TINY, dropout=0.1).double().train()
    params = list(model.parameters())
    with minidl.no_grad():
        for p in params:                  # off the zero biases of the initialization
            p.data += 0.1 * rng.standard_normal(p.shape)
    x = to_tensor(rng.standard_normal((2, 3, 8, 8)), requires_grad=True)

    def fn(x, *params):
        minidl.manual_seed(1234)
        return model(x)
    assert minidl.gradcheck(fn, [x] + params, eps=1e-7, atol=1e-7, rtol=1e-4,
                            fast_mode=True, n_directions=8)


def test_train_and_eval_differ_only_by_dropout(rng):
    x = minidl.randn(2, 3, 8, 8)
    model = VisionTransformer(**TINY)
    a = host(model(x))
    model.eval()
    np.testing.assert_array_equal(host(model(x)), a)
    dropped = VisionTransformer(**TINY, dropout=0.3)
    dropped.load_state_dict(model.state_dict())
    assert not np.allclose(host(dropped(x)), a)
    dropped.eval()
    np.testing.assert_allclose(host(dropped(x)), a, rtol=1e-6)
    assert all(layer.self_attn.dropout == 0.0 for layer in dropped.encoder.layers)


def test_initialization():
    model = VisionTransformer(depth=2)
    layers = model.encoder.layers
    for t in (model.pos_embed, model.cls_token, model.head.weight, layers[0].linear1.weight,
              layers[1].self_attn.in_proj_weight, layers[1].self_attn.out_proj.weight):
        w = host(t)
        assert np.abs(w).max() <= 0.04 and w.std() > 0.01
    w = host(layers[0].linear2.weight)
    assert 0.015 < w.std() < 0.019          # 0.02 times 0.88, the std of a 2-sigma cut
    assert not np.allclose(host(layers[0].linear1.weight), host(layers[1].linear1.weight))
    for b in (model.head.bias, layers[0].linear1.bias, layers[1].self_attn.in_proj_bias):
        assert not host(b).any()
    np.testing.assert_array_equal(host(model.encoder.norm.weight), 1.0)


def test_runs_on_the_device(device, rng):
    model = VisionTransformer(**TINY).double()
    x = rng.standard_normal((2, 3, 8, 8))
    ref = host(model(to_tensor(x)))
    model.to(device)
    xd = to_tensor(x, device, requires_grad=True)
    y = model(xd)
    np.testing.assert_allclose(host(y), ref, atol=1e-12)
    y.sum().backward()
    assert xd.grad.shape == x.shape and model.pos_embed.grad is not None


def test_bad_options_and_input():
    with pytest.raises(ValueError, match=r"VisionTransformer: 'image_size' \(30\) must be "
                                         r"divisible by 'patch_size' \(4\)"):
        VisionTransformer(image_size=30)
    with pytest.raises(ValueError, match=r"VisionTransformer: 'dim' \(10\) must be divisible "
                                         r"by 'heads' \(3\)"):
        VisionTransformer(dim=10)
    with pytest.raises(ValueError, match=r"VisionTransformer: 'dropout' must be a number in"):
        VisionTransformer(dropout=1.0)
    with pytest.raises(ValueError, match=r"VisionTransformer: 'depth' must be a positive int"):
        VisionTransformer(depth=0)
    model = VisionTransformer(**TINY)
    with pytest.raises(ValueError, match=r"VisionTransformer: expected input of shape "
                                         r"\(N, 3, 8, 8\) .* got \(2, 3, 16, 16\)"):
        model(minidl.randn(2, 3, 16, 16))
    with pytest.raises(TypeError, match="VisionTransformer: expected a Tensor, got ndarray"):
        model(np.zeros((2, 3, 8, 8), np.float32))
