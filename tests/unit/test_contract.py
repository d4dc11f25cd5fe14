"""The contract models refuse what the contract forbids, with a reason naming the field."""

from __future__ import annotations

import base64
import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydantic import ValidationError

from printstation.agent import contract
from printstation.agent.central.samples import sample_job
from tests.support import REPO


@pytest.fixture(scope="module")
def job() -> dict:
    return sample_job("UNIT-1", seed=1, destination="station.unit").body


def _png(size: tuple[int, int], mode: str = "RGB") -> str:
    buf = io.BytesIO()
    Image.new(mode, size, "white" if mode == "RGB" else 1).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _reason(body: dict) -> str:
    with pytest.raises(ValidationError) as info:
        contract.Job.model_validate(body)
    return contract.describe_errors(info.value)


def test_a_sample_job_is_valid(job):
    parsed = contract.Job.model_validate(job)
    assert parsed.two_sided and parsed.card_stock == "ektp"


@pytest.mark.parametrize("job_id", ["", "x" * 65, "has space", "ümlaut", "a/b"])
def test_bad_job_ids_are_refused(job, job_id):
    assert _reason({**job, "job_id": job_id}).startswith("job_id:")


def test_unknown_schema_is_refused(job):
    assert "schema" in _reason({**job, "schema": "printstation.job/3"})
    assert "schema" in _reason({**job, "schema": "printstation.job/1"})


def test_unknown_fields_are_refused(job):
    assert "surprise" in _reason({**job, "surprise": 1})


def test_times_need_a_zone(job):
    assert "created_at" in _reason({**job, "created_at": "2026-11-24T09:30:00"})


def test_reference_is_bounded_and_printable(job):
    assert "reference" in _reason({**job, "reference": "x" * 129})
    assert "reference" in _reason({**job, "reference": "a\nb"})


@pytest.mark.parametrize(("image", "needle"), [
    ("not base64!", "not valid base64"),
    (base64.b64encode(b"GIF89a....").decode(), "neither PNG nor JPEG"),
    (base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 40).decode(), "cannot be decoded"),
    (_png((400, 252)), "400 px wide"),
    (_png((2100, 1324)), "2100 px wide"),
    (_png((1012, 1012)), "aspect"),
])
def test_bad_images_are_refused_with_the_reason(job, image, needle):
    sides = {"front": {"image": image}}
    assert needle in _reason({**job, "sides": sides})


def test_black_mask_must_be_one_bit_and_the_image_size(job):
    image = _png((1012, 638))
    assert "1-bit" in _reason({**job, "sides": {"front": {"image": image,
                                                            "black": _png((1012, 638))}}})
    assert "mask is 1000x630" in _reason({**job, "sides": {"front": {
        "image": image, "black": _png((1000, 630), "1")}}})


def test_an_oversize_image_is_refused_before_decoding(job, monkeypatch):
    monkeypatch.setattr(contract.jobs, "MAX_IMAGE_BYTES", 1000)
    assert "more than 1000" in _reason(job)


def test_reasons_never_echo_the_input(job):
    secret = "3171234567890123"
    body = {**job, "job_id": f"bad id {secret}", "reference": secret * 10}
    assert secret not in _reason(body)


CONTROL = {"schema": contract.CONTROL_SCHEMA, "command_id": "c-1",
           "issued_at": "2026-11-27T09:00:00+07:00", "station_id": "s1"}


def test_control_cancel_needs_a_job_id():
    with pytest.raises(ValidationError):
        contract.Control.model_validate({**CONTROL, "command": "cancel"})
    contract.Control.model_validate({**CONTROL, "command": "pause"})


@pytest.mark.parametrize("missing", ["command_id", "issued_at", "station_id"])
def test_a_version_2_command_names_its_id_time_and_station(missing):
    doc = {k: v for k, v in {**CONTROL, "command": "pause"}.items() if k != missing}
    with pytest.raises(ValidationError, match=missing):
        contract.Control.model_validate(doc)


def test_a_version_2_job_needs_its_destination(job):
    with pytest.raises(ValidationError, match="destination"):
        contract.Job.model_validate({k: v for k, v in job.items() if k != "destination"})
    for bad in ("station.", "station.UPPER", "printstation.jobs", "pool.a b", "station.x\n"):
        assert "destination" in _reason({**job, "destination": bad}), bad


def _chip(commands: object, profile: str = "apdu-script/1") -> dict:
    data = json.dumps({"commands": commands}).encode()
    return {"profile": profile, "data": base64.b64encode(data).decode()}


def test_an_apdu_script_is_checked_without_echoing_it(job):
    ok = _chip([{"apdu": "00A4040007A0000002471001", "expect": ["9000"]}])
    parsed = contract.Job.model_validate({**job, "chip": ok})
    steps = contract.apdu_script(parsed.chip.data_bytes())
    assert steps[0].apdu[:2] == b"\x00\xa4" and steps[0].expect == (b"\x90\x00",)
    secret = "DEADBEEF31711234"
    for bad, why in [
        (_chip([]), "non-empty"),
        (_chip([{"apdu": "00A4", "expect": ["9000"]}]), "at least 4 bytes"),
        (_chip([{"apdu": secret + "Z", "expect": ["9000"]}]), "hex"),
        (_chip([{"apdu": secret, "expect": []}]), "status words"),
        (_chip([{"apdu": secret, "expect": ["90"]}]), "status words"),
        ({"profile": "apdu-script/1", "data": "not base64!"}, "base64"),
        ({"profile": "apdu-script/1",
          "data": base64.b64encode(b"x" * (contract.MAX_CHIP_BYTES + 1)).decode()},
         "more than 65536"),
        ({"profile": "Bad Profile", "data": ""}, "profile"),
    ]:
        reason = _reason({**job, "chip": bad})
        assert why in reason and secret not in reason, (why, reason)
    # Another profile's data is its encoder's business: only its size and base64 are checked.
    other = {"profile": "sam-ektp/3", "data": base64.b64encode(b"opaque").decode()}
    assert contract.Job.model_validate({**job, "chip": other}).chip.profile == "sam-ektp/3"


def test_a_version_1_job_becomes_version_2_on_the_queue_it_came(job):
    v1 = {k: v for k, v in job.items() if k != "destination"} | {"schema": "printstation.job/1"}
    as_v2 = contract.JobV1.model_validate(v1).as_v2("pool.bogor")
    assert as_v2.destination == "pool.bogor" and as_v2.job_id == job["job_id"]


def test_routing_keys_follow_section_4():
    base = {"station_id": "s1"}
    assert contract.routing_key({**base, "schema": contract.STATUS_SCHEMA,
                                 "status": "printed"}) == "status.s1.printed"
    assert contract.routing_key({**base, "schema": contract.CARD_SCHEMA}) == "card.s1"
    assert contract.routing_key({**base, "schema": contract.TELEMETRY_SCHEMA}) == "telemetry.s1"
    assert contract.routing_key({**base, "schema": contract.ALERT_SCHEMA,
                                 "severity": "warning"}) == "alert.s1.warning"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["schema", "job_id", "created_at", "card_stock", "sides",
                                        "reference", "expires_at", "x"]), json_values))
def test_any_json_is_either_a_job_or_a_validation_error(doc):
    doc.setdefault("schema", contract.JOB_SCHEMA)
    try:
        contract.Job.model_validate(json.loads(json.dumps(doc)))
    except ValidationError as exc:
        assert contract.describe_errors(exc)


def test_the_project_carries_the_contract_it_implements():
    """docs/CONTRACT.md is the contract this agent implements: version 2, with every
    schema name, status, reason code and broker object the models and topology use."""

    from printstation.agent.config import Names

    root = REPO
    text = (root / "docs" / "CONTRACT.md").read_text()
    assert text.startswith("# The station contract (version 2)")
    for name in (contract.JOB_SCHEMA, contract.CONTROL_SCHEMA, contract.STATUS_SCHEMA,
                 contract.CARD_SCHEMA, contract.TELEMETRY_SCHEMA, contract.ALERT_SCHEMA):
        assert f"`{name}`" in text, name
    for status in contract.JOB_STATUS_NAMES:
        assert f"`{status}`" in text, status
    for code in contract.ReasonCode.__args__:
        assert f"`{code}`" in text, code
    for value in Names().model_dump().values():
        assert f"`{value.replace('{station}', '<station_id>').replace('{pool}', '<pool>')}`" \
            in text, value
    shared = root.parent / "shared" / "CONTRACT.md"
    if shared.exists():  # beside the programme's shared folder: the copy is identical
        assert shared.read_text() == text, "docs/CONTRACT.md differs from ../shared/CONTRACT.md"


def test_every_error_printstation_raises_is_under_one_root_with_a_code():
    """pyvisa's way: one root, and each error carries a code that says what it is."""
    import importlib
    import pkgutil

    import printstation.agent
    import printstation.drivers
    from printstation.drivers.errors import PrintstationError

    for package in (printstation.agent, printstation.drivers):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if info.name.endswith("__main__"):
                continue  # running it runs the command
            module = importlib.import_module(info.name)
            for value in vars(module).values():
                if isinstance(value, type) and issubclass(value, Exception) and \
                        value.__module__ == module.__name__:
                    assert issubclass(value, PrintstationError), value
                    assert (value.code and value.code != "printstation_error") or \
                        value is PrintstationError, value
