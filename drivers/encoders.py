"""Find a chip encoder by the `encoder_url` scheme through the `printstation.encoders` entry points.

Like the printer drivers (`registry`), the URL alone picks the plug-in: the built-in PC/SC
encoder (`pcsc://?reader=...`) and a programme's own encoder installed by another package
are found the same way. A station without `encoder_url` has no encoder and takes no chip job.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from urllib.parse import urlsplit

from .encoder import Encoder
from .errors import EncoderNotFound

GROUP = "printstation.encoders"


def available() -> dict[str, str]:
    """Scheme → entry-point target, for `--help` and error messages."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def encoder_class(url: str) -> type[Encoder]:
    scheme = urlsplit(url).scheme
    if not scheme:
        raise EncoderNotFound(f"encoder URL {url!r} has no scheme (such as pcsc://)")
    eps = {ep.name: ep for ep in entry_points(group=GROUP)}
    ep = eps.get(scheme)
    if ep is None:
        known = ", ".join(sorted(eps)) or "none"
        raise EncoderNotFound(f"no chip encoder for scheme {scheme!r}; installed: {known}")
    cls = ep.load()
    if not (isinstance(cls, type) and issubclass(cls, Encoder)):
        raise EncoderNotFound(f"entry point {ep.name} = {ep.value} is not an Encoder")
    return cls


def open_encoder(url: str) -> Encoder:
    """Build the encoder for `url`; EncoderNotFound or ValueError naming the problem."""
    return encoder_class(url).from_url(url)
