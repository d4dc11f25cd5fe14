"""Turn a job side's images into printer panels at the printer's native resolution.

Y, M and C come from the colour image; K (resin black, which is what makes text and
barcodes crisp) from the job's black mask, or, without one, from near-black pixels.
"""

from __future__ import annotations

import io

from PIL import Image, ImageChops

from .base import SidePanels

#: A pixel whose brightest channel is below this goes on the K panel when no mask is given.
NEAR_BLACK = 48
_NEAR_BLACK_TABLE = [0 if v < NEAR_BLACK else 255 for v in range(256)]


def prepare_side(image: bytes, black: bytes | None, overlay: bool,
                 native_size: tuple[int, int]) -> SidePanels:
    with Image.open(io.BytesIO(image)) as src:
        src.draft("RGB", native_size)  # JPEG: decode at a reduced scale when it is larger
        src.load()
        color = src if src.mode == "RGB" else src.convert("RGB")
    if color.size != native_size:
        # Bilinear with a reducing gap: box-reduces large images first, so it is as sharp as
        # Lanczos here at half the CPU (measured by bench/image_pipeline.py).
        color = color.resize(native_size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    if black is not None:
        # The mask is the K panel as it is: black where resin goes.
        with Image.open(io.BytesIO(black)) as mask_src:
            mask_src.load()
            black_panel = mask_src if mask_src.mode == "1" else mask_src.convert("1")
        if black_panel.size != native_size:
            black_panel = black_panel.resize(native_size, Image.Resampling.NEAREST)
    else:
        # The brightest channel of each pixel, then a threshold straight to 1 bit (0 = ink).
        red, green, blue = color.split()
        brightest = ImageChops.lighter(ImageChops.lighter(red, green), blue)
        black_panel = brightest.point(_NEAR_BLACK_TABLE, "1")
    return SidePanels(color=color, black=black_panel, overlay=overlay)


def compose(side: SidePanels) -> Image.Image:
    """What the printed side looks like: colour panels, then resin black on top."""
    out = side.color.copy()
    out.paste((0, 0, 0), mask=Image.eval(side.black.convert("L"), lambda v: 255 - v))
    return out
