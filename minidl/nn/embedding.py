"""Embedding layer: a lookup table of num_embeddings vectors of size embedding_dim."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .._checks import check_int
from ..autograd import no_grad
from ..functional.embedding import check_padding_idx
from ..tensor import Tensor
from . import init
from .module import Module, Parameter


class Embedding(Module):
    """y = weight[input]: integer indices of any shape -> input.shape + (embedding_dim,).

    ``weight`` (num_embeddings, embedding_dim) is initialized N(0, 1) as in PyTorch, with row
    ``padding_idx`` (if given) zero; that row gets no gradient, so it stays what it is.
    ``max_norm`` and ``sparse`` are not supported (see ``F.embedding``).
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None,
                 norm_type=2.0, scale_grad_by_freq=False, sparse=False, _weight=None,
                 _freeze=False, dtype=np.float32):
        super().__init__()
        self.num_embeddings = check_int("Embedding", "num_embeddings", num_embeddings, 0)
        self.embedding_dim = check_int("Embedding", "embedding_dim", embedding_dim, 0)
        self.padding_idx = check_padding_idx("Embedding", padding_idx, self.num_embeddings)
        if max_norm is not None or sparse:
            raise ValueError("Embedding: max_norm and sparse=True are not supported")
        self.max_norm, self.norm_type = None, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, False
        shape = (self.num_embeddings, self.embedding_dim)
        if _weight is None:
            self.weight = Parameter(np.empty(shape, dtype=dtype), requires_grad=not _freeze)
            init.normal_(self.weight)
            if self.padding_idx is not None:
                with no_grad():
                    self.weight.data[self.padding_idx] = 0
        else:
            if not isinstance(_weight, Tensor) or _weight.shape != shape:
                raise ValueError(f"Embedding: '_weight' must be a Tensor of shape {shape}, got "
                                 f"{getattr(_weight, 'shape', type(_weight).__name__)}")
            self.weight = Parameter(_weight.data.copy(), requires_grad=not _freeze)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None,
                        norm_type=2.0, scale_grad_by_freq=False, sparse=False):
        """An Embedding holding a copy of the 2-D tensor ``embeddings`` (frozen: no gradient,
        unless ``freeze=False``)."""
        if not isinstance(embeddings, Tensor) or embeddings.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: 'embeddings' must be a 2-D Tensor, "
                             f"got {getattr(embeddings, 'shape', type(embeddings).__name__)}")
        V, D = embeddings.shape
        return cls(V, D, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=embeddings, _freeze=freeze)

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx,
                           scale_grad_by_freq=self.scale_grad_by_freq)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        return s
