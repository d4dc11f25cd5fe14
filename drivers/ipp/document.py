"""A card as the document a CUPS queue takes: one PDF, a page per side, at the card's size.

PDF because every vendor's CUPS filter takes it (CUPS converts it for a driverless printer),
and one document of two pages because CUPS delivers only the first document of a
multi-document job to some backends (the project's printer notes). Pillow writes it: each
side is the picture of the card as it will look (colour with the resin black laid on it),
300 dpi, so a 1016 x 648 page is 86 x 54.9 mm, a CR80 card.
"""

from __future__ import annotations

import io

from ..base import CardJob
from ..panels import compose

DPI = 300


def card_pdf(card: CardJob) -> bytes:
    """The card's sides as a PDF, front first."""
    pages = [compose(card.front).convert("RGB")]
    if card.back is not None:
        pages.append(compose(card.back).convert("RGB"))
    buf = io.BytesIO()
    pages[0].save(buf, "PDF", resolution=DPI, save_all=True, append_images=pages[1:])
    return buf.getvalue()
