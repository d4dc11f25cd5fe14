"""The station contract (docs/CONTRACT.md, version 2) as pydantic models.

`common` holds what every message shares, `jobs` what the central system sends (jobs and
control commands), `events` what the station reports. The agent validates with these and
`printstation schema` writes them out, so the documents cannot drift from the code.
"""

from __future__ import annotations

from pydantic import BaseModel

from .common import *  # noqa: F403 - the contract's names, one namespace for its users
from .common import CONTROL_SCHEMA, JOB_SCHEMA
from .events import *  # noqa: F403
from .events import EVENT_MODELS
from .jobs import *  # noqa: F403
from .jobs import Control, Job

ALL_MODELS: dict[str, type[BaseModel]] = {
    JOB_SCHEMA: Job,
    CONTROL_SCHEMA: Control,
    **EVENT_MODELS,
}
