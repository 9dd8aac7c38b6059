"""Block and pixel rearrangement layers: Unfold, Fold, PixelShuffle, PixelUnshuffle (thin
wrappers over ``F.unfold``, ``F.fold``, ``F.pixel_shuffle``, ``F.pixel_unshuffle``)."""
from __future__ import annotations

from .. import functional as F
from ..functional._utils import check_pair
from .module import Module


class Unfold(Module):
    """Extract sliding blocks: (N, C, H, W) -> (N, C*KH*KW, L)."""

    def __init__(self, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.kernel_size = check_pair("Unfold", "kernel_size", kernel_size, 1)
        self.dilation = check_pair("Unfold", "dilation", dilation, 1)
        self.padding = check_pair("Unfold", "padding", padding, 0)
        self.stride = check_pair("Unfold", "stride", stride, 1)

    def forward(self, x):
        return F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"padding={self.padding}, stride={self.stride}")


class Fold(Unfold):
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
        if isinstance(upscale_factor, bool) or not isinstance(upscale_factor, int) or \
                upscale_factor < 1:
            raise ValueError(f"PixelShuffle: 'upscale_factor' must be a positive int, got "
                             f"{upscale_factor!r}")
        self.upscale_factor = upscale_factor

    def forward(self, x):
        return F.pixel_shuffle(x, self.upscale_factor)

    def extra_repr(self):
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """(*, C, H*r, W*r) -> (*, C*r*r, H, W), r = ``downscale_factor``."""

    def __init__(self, downscale_factor):
        super().__init__()
        if isinstance(downscale_factor, bool) or not isinstance(downscale_factor, int) or \
                downscale_factor < 1:
            raise ValueError(f"PixelUnshuffle: 'downscale_factor' must be a positive int, got "
                             f"{downscale_factor!r}")
        self.downscale_factor = downscale_factor

    def forward(self, x):
        return F.pixel_unshuffle(x, self.downscale_factor)

    def extra_repr(self):
        return f"downscale_factor={self.downscale_factor}"
