"""CPU per card side, from the job's encoded image to the printer's panel bytes.

For each side: decode the PNG (and the black mask), scale to the printer's native
1016 x 648, derive the K panel, and encode the Evolis Y, M, C, K and O panels at 32
levels, as the Evolis driver's `prepare` does on the agent's preparing thread.
Baseline, same run: decoding the same PNG and mask alone, the floor no pipeline can go
below. Two cases: the sample jobs' images (1012 x 638, so scaled) and the same images at
the native size. Target: at most 15 ms per side.

    .venv/bin/python bench/image_pipeline.py [--repeat 50]
"""

from __future__ import annotations

import argparse
import base64
import io
import time

from common import NATIVE, at_native, median, report
from PIL import Image

from printstation.agent.central.samples import sample_job
from printstation.drivers.base import CardJob
from printstation.drivers.evolis.driver import EvolisDriver
from printstation.drivers.panels import prepare_side


def cpu_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return 1000 * median(times)


def pipeline(image: bytes, black: bytes) -> None:
    """What the agent's preparing thread does for one side of an Evolis card."""
    side = prepare_side(image, black, True, NATIVE)
    EvolisDriver._encode(CardJob(job_id=None, front=side), 32)


def decode_only(image: bytes, black: bytes) -> None:
    Image.open(io.BytesIO(image)).convert("RGB")
    Image.open(io.BytesIO(black)).convert("1")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=50)
    args = p.parse_args()
    front = sample_job("BENCH-IMG", seed=1).body["sides"]["front"]
    image, black = base64.b64decode(front["image"]), base64.b64decode(front["black"])
    cases = {"sample images (scaled)": (image, black),
             "images at native size": (at_native(image, "RGB"), at_native(black, "1"))}
    for name, (img, blk) in cases.items():
        report(f"image pipeline per side, {name}",
               cpu_ms(lambda i=img, b=blk: pipeline(i, b), args.repeat), "ms CPU",
               cpu_ms(lambda i=img, b=blk: decode_only(i, b), args.repeat),
               "PNG decode alone", "<= 15 ms", higher_is_better=False)


if __name__ == "__main__":
    main()
