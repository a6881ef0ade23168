"""A faithful local Oki-Toki over real HTTP: the profile of ``okitoki-api.md`` plus an admin
surface under ``/_sandbox/`` (seed, simulated calls, request journal, faults, rate limit,
webhooks). See ``docs/sandbox.md``.

Modules: :mod:`.state` (the world), :mod:`.validation`, :mod:`.api` (``/api/v1`` routes),
:mod:`.gateway` (journal, rate limit, faults, auth in front of them), :mod:`.admin`,
:mod:`.calls`, :mod:`.webhooks`, :mod:`.persist` (``--data FILE``), :mod:`.server`, :mod:`.cli`.
"""

from .app import create_app
from .settings import SandboxSettings
from .state import SandboxState

__all__ = ["create_app", "SandboxSettings", "SandboxState"]
