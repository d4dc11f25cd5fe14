"""Find a chip encoder by the `encoder_url` scheme through the `printstation.encoders` entry points.

Like the printer drivers (`registry`), the URL alone picks the plug-in: the built-in PC/SC
encoder (`pcsc://?reader=...`) and a programme's own encoder installed by another package
are found the same way. A station without `encoder_url` has no encoder and takes no chip job.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from .encoder import Encoder
from .errors import EncoderNotFound
from .registry import plugin_class

GROUP = "printstation.encoders"


def available() -> dict[str, str]:
    """Scheme → entry-point target, for `--help` and error messages."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def encoder_class(url: str) -> type[Encoder]:
    return plugin_class(url, group=GROUP, base=Encoder, a_base="an Encoder",
                        not_found=EncoderNotFound, url_name="encoder URL", example="pcsc://",
                        what="chip encoder")


def open_encoder(url: str) -> Encoder:
    """Build the encoder for `url`; EncoderNotFound or ValueError naming the problem."""
    return encoder_class(url).from_url(url)
