"""Synthetic e-KTP-like sample jobs, drawn with Pillow, for the demo, the tools and the tests.

Every name and number here is made up from the lists below; the tests use the returned
"personal" strings to prove that none of them ever reaches a log, an event or a file.
"""

from __future__ import annotations

import base64
import io
import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from PIL import Image, ImageDraw, ImageFont

from printstation.agent.contract import JOB_SCHEMA

CARD_SIZE = (1012, 638)  # CR80 at ~300 dpi, aspect 1.586

FIRST = ["Ayu", "Budi", "Citra", "Dewi", "Eko", "Fajar", "Gita", "Hadi", "Indah", "Joko",
         "Kartika", "Lestari", "Made", "Nur", "Putri", "Rizky", "Sari", "Teguh", "Wahyu", "Yanti"]
LAST = ["Santoso", "Wijaya", "Saputra", "Hidayat", "Kusuma", "Pratama", "Siregar", "Nasution",
        "Halim", "Gunawan", "Setiawan", "Utami", "Purnomo", "Lubis", "Rahman"]
CITIES = ["BOGOR", "DEPOK", "BEKASI", "BANDUNG", "SURABAYA", "MEDAN", "MAKASSAR", "DENPASAR"]


#: The files of the simulated e-KTP-like chip a sample's `apdu-script/1` writes (the
#: simulator's chip has them): biodata, photo, and two fingerprint minutiae.
CHIP_DF = 0x7F10
EF_BIODATA, EF_PHOTO, EF_FINGER_1, EF_FINGER_2 = 0x0101, 0x0102, 0x0104, 0x0105
#: The bytes of UPDATE BINARY's data per command (short APDUs carry at most 255).
CHIP_CHUNK = 128


@dataclass(frozen=True)
class SampleJob:
    body: dict
    personal: tuple[str, ...]
    #: What the chip script writes, as (file id, offset, data): a test computes from it the
    #: digest the simulated chip must end with (`simulator.chip.digest_of_writes`).
    chip_writes: tuple[tuple[int, int, bytes], ...] = field(default=(), repr=False)


def apdu_script(files: dict[int, bytes], *, chunk: int = CHIP_CHUNK
                ) -> tuple[bytes, list[tuple[int, int, bytes]]]:
    """An `apdu-script/1` (contract v2 §3) that selects the chip's DF, then writes each file
    with UPDATE BINARY in `chunk`-byte pieces, each expecting 9000; and the writes it makes."""
    commands = [{"apdu": f"00A4000C02{CHIP_DF:04X}", "expect": ["9000"]}]
    writes = []
    for fid, content in sorted(files.items()):
        commands.append({"apdu": f"00A4020C02{fid:04X}", "expect": ["9000"]})
        for offset in range(0, len(content), chunk):
            part = content[offset:offset + chunk]
            apdu = bytes([0x00, 0xD6, offset >> 8, offset & 0xFF, len(part)]) + part
            commands.append({"apdu": apdu.hex().upper(), "expect": ["9000"]})
            writes.append((fid, offset, part))
    return json.dumps({"commands": commands}).encode(), writes


def _chip_files(rng: random.Random, name: str, nik: str, city: str) -> dict[int, bytes]:
    """Made-up chip contents: the biodata as text, and random bytes for the photo and the
    minutiae (sized as an e-KTP's are, smaller than the simulated chip's files)."""
    biodata = f"NIK={nik}\nNAMA={name.upper()}\nKOTA={city}\n".encode()
    return {EF_BIODATA: biodata, EF_PHOTO: rng.randbytes(3000),
            EF_FINGER_1: rng.randbytes(600), EF_FINGER_2: rng.randbytes(600)}


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _png(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=False, compress_level=6)
    return base64.b64encode(buf.getvalue()).decode()


def _front(rng: random.Random, name: str, nik: str, city: str) -> tuple[Image.Image, Image.Image]:
    w, h = CARD_SIZE
    img = Image.new("RGB", CARD_SIZE, (168, 208, 238))
    draw = ImageDraw.Draw(img)
    for y in range(0, h, 6):  # a soft guilloche-like band pattern
        shade = 200 + int(30 * ((y // 6) % 5) / 4)
        draw.line([(0, y), (w, y + 40)], fill=(shade - 40, shade, 245), width=2)
    black = Image.new("1", CARD_SIZE, 1)
    kdraw = ImageDraw.Draw(black)
    for d in (draw, kdraw):
        d.text((w // 2, 30), "PROVINSI JAWA BARAT", font=_font(34), anchor="mm", fill=0)
        d.text((w // 2, 70), f"KOTA {city}", font=_font(30), anchor="mm", fill=0)
        d.text((40, 120), f"NIK : {nik}", font=_font(40), fill=0)
    rows = [
        ("Nama", name.upper()),
        ("Tempat/Tgl Lahir", f"{city}, {rng.randint(1, 28):02d}-{rng.randint(1, 12):02d}-"
                             f"{rng.randint(1950, 2006)}"),
        ("Jenis Kelamin", rng.choice(["LAKI-LAKI", "PEREMPUAN"])),
        ("Alamat", f"JL. MERDEKA NO. {rng.randint(1, 200)}"),
        ("Agama", rng.choice(["ISLAM", "KRISTEN", "KATOLIK", "HINDU", "BUDDHA"])),
        ("Pekerjaan", rng.choice(["PELAJAR", "WIRASWASTA", "PNS", "PETANI", "GURU"])),
        ("Berlaku Hingga", "SEUMUR HIDUP"),
    ]
    for i, (label, value) in enumerate(rows):
        y = 190 + i * 52
        draw.text((40, y), label, font=_font(24), fill=(30, 30, 60))
        draw.text((290, y), f": {value}", font=_font(24), fill=(20, 20, 20))
    # Photo placeholder: a drawn head and shoulders on red, as e-KTP photos are.
    px, py, pw, ph = w - 260, 150, 210, 270
    draw.rectangle([px, py, px + pw, py + ph], fill=(200, 40, 40))
    draw.ellipse([px + 60, py + 40, px + 150, py + 140], fill=(230, 190, 160))
    draw.pieslice([px + 20, py + 150, px + 190, py + 330], 180, 360, fill=(40, 40, 90))
    draw.text((px + pw // 2, py + ph + 30), f"{city}", font=_font(20), anchor="mm", fill=0)
    return img, black


def _back(rng: random.Random) -> Image.Image:
    img = Image.new("RGB", CARD_SIZE, (225, 236, 246))
    draw = ImageDraw.Draw(img)
    for x in range(0, CARD_SIZE[0], 12):
        draw.line([(x, 0), (x + 200, CARD_SIZE[1])], fill=(205, 220, 240), width=3)
    draw.text((CARD_SIZE[0] // 2, 80), "REPUBLIK INDONESIA", font=_font(40), anchor="mm",
              fill=(20, 20, 80))
    draw.rectangle([60, 420, 952, 560], outline=(0, 0, 0), width=3)
    for i in range(60):  # a barcode-like block
        if rng.random() < 0.5:
            draw.rectangle([80 + i * 14, 440, 86 + i * 14, 540], fill=(0, 0, 0))
    return img


def sample_job(job_id: str, *, seed: int | None = None, card_stock: str = "ektp",
               two_sided: bool = True, with_mask: bool = True,
               expires_at: datetime | None = None, reference: str | None = None,
               destination: str | None = None, chip: bool = False) -> SampleJob:
    """One signed-ready job body with fake personal data, and those fake strings.

    Without `destination` the body names none: `printstation submit` (and `Submitter`)
    fill it in from where it is sent, before signing. With `chip`, the job personalises the
    card's chip too (an `apdu-script/1` of about 40 commands writing made-up biodata, photo
    and minutiae into the simulated chip's files).
    """
    rng = random.Random(seed if seed is not None else job_id)
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    nik = "".join(str(rng.randint(0, 9)) for _ in range(16))
    city = rng.choice(CITIES)
    front, black = _front(rng, name, nik, city)
    sides: dict = {"front": {"image": _png(front), "overlay": True}}
    if with_mask:
        sides["front"]["black"] = _png(black)
    if two_sided:
        sides["back"] = {"image": _png(_back(rng)), "overlay": True}
    created = datetime.now().astimezone()
    body = {
        "schema": JOB_SCHEMA,
        "job_id": job_id,
        **({"destination": destination} if destination else {}),
        "reference": reference or f"PERMOHONAN-{rng.randint(0, 999999):06d}",
        "created_at": created.isoformat(),
        "expires_at": (expires_at or created + timedelta(days=30)).isoformat(),
        "card_stock": card_stock,
        "sides": sides,
    }
    writes: list[tuple[int, int, bytes]] = []
    if chip:
        script, writes = apdu_script(_chip_files(rng, name, nik, city))
        body["chip"] = {"profile": "apdu-script/1", "data": base64.b64encode(script).decode()}
    return SampleJob(body=body, personal=(name, name.upper(), nik), chip_writes=tuple(writes))
