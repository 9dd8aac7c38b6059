"""Block and pixel rearrangement layers: Unfold, Fold, PixelShuffle, PixelUnshuffle (thin
wrappers over ``F.unfold``, ``F.fold``, ``F.pixel_shuffle``, ``F.pixel_unshuffle``)."""
from __future__ import annotations

from .. import functional as F
from .._checks import check_int
from ..functional._utils import check_pair
from .module import Module


class _Blocks(Module):
    """The sliding-block geometry Unfold and Fold share, checked under the layer's name."""

    def __init__(self, kernel_size, dilation, padding, stride):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = check_pair(name, "kernel_size", kernel_size, 1)
        self.dilation = check_pair(name, "dilation", dilation, 1)
        self.padding = check_pair(name, "padding", padding, 0)
        self.stride = check_pair(name, "stride", stride, 1)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"padding={self.padding}, stride={self.stride}")


class Unfold(_Blocks):
    """Extract sliding blocks: (N, C, H, W) -> (N, C*KH*KW, L)."""

    def __init__(self, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__(kernel_size, dilation, padding, stride)

    def forward(self, x):
        return F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)


class Fold(_Blocks):
    """Combine sliding blocks into an image, summing overlaps: (N, C*KH*KW, L) ->
    (N, C, H, W) with (H, W) = ``output_size``."""

    def __init__(self, output_size, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__(kernel_size, dilation, padding, stride)
        self.output_size = check_pair("Fold", "output_size", output_size, 1)

    def forward(self, x):
        return F.fold(x, self.output_size, self.kernel_size, self.dilation, self.padding,
                      self.stride)

    def extra_repr(self):
        return f"output_size={self.output_size}, " + super().extra_repr()


class PixelShuffle(Module):
    """(*, C*r*r, H, W) -> (*, C, H*r, W*r), r = ``upscale_factor``."""

    def __init__(self, upscale_factor):
        super().__init__()
        self.upscale_factor = check_int("PixelShuffle", "upscale_factor", upscale_factor, 1)

    def forward(self, x):
        return F.pixel_shuffle(x, self.upscale_factor)

    def extra_repr(self):
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """(*, C, H*r, W*r) -> (*, C*r*r, H, W), r = ``downscale_factor``."""

    def __init__(self, downscale_factor):
        super().__init__()
        self.downscale_factor = check_int("PixelUnshuffle", "downscale_factor",
                                          downscale_factor, 1)

    def forward(self, x):
        return F.pixel_unshuffle(x, self.downscale_factor)

    def extra_repr(self):
        return f"downscale_factor={self.downscale_factor}"
