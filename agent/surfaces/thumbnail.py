"""A small picture of a card's front, for the operator deciding a `needs_check` job.

Made in memory from the job's stored images (colour, with the resin-black mask on top, as
the printer lays them down) each time the page asks, and only while the job still holds its
data. It is personal data: never written to disk, cached or logged, and served only to the
logged-in operator page (`web.py`).
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps

from printstation.agent import contract

#: Wide enough to read a name on it, small enough to sit beside the job's details.
THUMBNAIL_WIDTH = 480


def front_thumbnail(body: bytes, width: int = THUMBNAIL_WIDTH) -> bytes:
    """The card's front as a PNG `width` pixels wide; ValueError if the job has none."""
    try:
        front = contract.stored_job(body).sides.front
    except Exception:
        raise ValueError("the job's images cannot be read") from None
    with Image.open(io.BytesIO(front.image_bytes())) as src:
        src.draft("RGB", (width, width))  # a JPEG is decoded at a reduced scale
        picture = src.convert("RGB")
    height = max(1, round(picture.height * width / picture.width))
    picture = picture.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)
    mask = front.black_bytes()
    if mask is not None:
        with Image.open(io.BytesIO(mask)) as black:
            ink = ImageOps.invert(black.convert("L")).resize(picture.size,
                                                            Image.Resampling.BILINEAR)
        picture.paste((0, 0, 0), mask=ink)
    out = io.BytesIO()
    picture.save(out, "PNG", compress_level=1)
    return out.getvalue()
