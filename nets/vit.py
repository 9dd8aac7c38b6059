"""Vision Transformer for CIFAR: the image cut into patches, each patch a token, a class token
in front, learned position embeddings, a pre-norm Transformer encoder, and a linear head on
the class token's final state.

Initialization (as ViT / timm): position embedding, class token, and every linear map
(attention in- and out-projections, MLP, head) truncated normal with std 0.02 cut at two
standard deviations, their biases 0; LayerNorms weight 1, bias 0; the patch-embedding conv as
PyTorch's Conv2d default.
"""
from __future__ import annotations

import numpy as np

import minidl.functional as F
import minidl.nn as nn
from minidl import Tensor
from minidl.nn import init

from .common import check_positive_int, check_rate

STD = 0.02


def _trunc_normal(t):
    init.trunc_normal_(t, std=STD, a=-2 * STD, b=2 * STD)


class VisionTransformer(nn.Module):
    """ViT: patch embedding -> [class token; patches] + position embedding -> ``depth``
    pre-norm encoder layers (GELU MLP) -> LayerNorm -> Linear on the class token.

    Args:
        image_size: side of the square input image (32 for CIFAR).
        patch_size: side of a square patch; divides ``image_size``. The patch embedding is a
            conv with kernel = stride = patch_size, giving (image_size / patch_size)^2 tokens.
        num_classes: output classes.
        dim: token width (embedding size).
        depth: encoder layers.
        heads: attention heads; divides ``dim``.
        mlp_dim: hidden width of each layer's MLP.
        dropout: after the position embedding and after every dense layer but the qkv
            projection (ViT's placement; none on the attention weights).
        in_channels: input image channels.

    Shapes: (N, in_channels, image_size, image_size) -> (N, num_classes).
    Parameters (defaults, 10 classes): 2,697,610. Per layer 4 dim^2 + 2 dim mlp_dim + 9 dim
    + mlp_dim; plus in_channels patch^2 dim + dim (patch conv), (tokens + 1) dim (position),
    dim (class token), 2 dim (final norm), (dim + 1) num_classes (head).

    Reference: Dosovitskiy et al., An Image is Worth 16x16 Words: Transformers for Image
    Recognition at Scale, ICLR 2021 (Eq. 1-4); Vaswani et al., Attention Is All You Need, 2017.
    """

    def __init__(self, image_size=32, patch_size=4, num_classes=10, dim=192, depth=9, heads=3,
                 mlp_dim=384, dropout=0.0, in_channels=3):
        super().__init__()
        name = "VisionTransformer"
        self.image_size = check_positive_int(name, "image_size", image_size)
        self.patch_size = check_positive_int(name, "patch_size", patch_size)
        if image_size % patch_size:
            raise ValueError(f"{name}: 'image_size' ({image_size}) must be divisible by "
                             f"'patch_size' ({patch_size})")
        self.num_classes = check_positive_int(name, "num_classes", num_classes)
        self.in_channels = check_positive_int(name, "in_channels", in_channels)
        for arg, value in (("dim", dim), ("depth", depth), ("heads", heads),
                           ("mlp_dim", mlp_dim)):
            check_positive_int(name, arg, value)
        if dim % heads:
            raise ValueError(f"{name}: 'dim' ({dim}) must be divisible by 'heads' ({heads})")
        dropout = check_rate(name, "dropout", dropout)
        self.num_patches = (image_size // patch_size) ** 2
        self.patch_embed = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(np.zeros((1, 1, dim), np.float32))
        self.pos_embed = nn.Parameter(np.zeros((1, self.num_patches + 1, dim), np.float32))
        self.pos_drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(dim, heads, mlp_dim, dropout, activation="gelu",
                                           layer_norm_eps=1e-6, batch_first=True,
                                           norm_first=True)
        layer.self_attn.dropout = 0.0
        self.encoder = nn.TransformerEncoder(layer, depth, norm=nn.LayerNorm(dim, eps=1e-6))
        self.head = nn.Linear(dim, num_classes)
        self._init_weights()

    def _init_weights(self):
        _trunc_normal(self.cls_token)
        _trunc_normal(self.pos_embed)
        for m in self.modules():        # each layer drawn anew (the encoder's are copies)
            if isinstance(m, nn.Linear):
                _trunc_normal(m.weight)
                if m.bias is not None:
                    init.zeros_(m.bias)
            elif isinstance(m, nn.MultiheadAttention):
                _trunc_normal(m.in_proj_weight)
                if m.in_proj_bias is not None:
                    init.zeros_(m.in_proj_bias)

    def forward(self, x):
        want = (self.in_channels, self.image_size, self.image_size)
        if not isinstance(x, Tensor):
            raise TypeError(f"VisionTransformer: expected a Tensor, got {type(x).__name__}")
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(f"VisionTransformer: expected input of shape (N, {want[0]}, "
                             f"{want[1]}, {want[2]}) (in_channels, image_size), got "
                             f"{tuple(x.shape)}")
        N = x.shape[0]
        x = self.patch_embed(x)                                      # (N, dim, h, w)
        x = F.transpose(F.flatten(x, 2), 1, 2)                       # (N, h * w, dim)
        cls = F.expand(self.cls_token, (N, 1, x.shape[2]))
        x = F.cat([cls, x], dim=1)                                   # (N, tokens + 1, dim)
        x = self.encoder(self.pos_drop(x + self.pos_embed))
        return self.head(x[:, 0])                                    # (N, num_classes)
