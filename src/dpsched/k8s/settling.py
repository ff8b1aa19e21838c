"""kopf's record on our objects, and the daemon that sees each new object handled.

Two replicas act at once for a moment while peering settles (both start together, or the
elected one pauses for a new replica of higher priority), and both add kopf's finalizer
to a new object. kopf adds it by a JSON patch tested against the resourceVersion it saw:
the later one fails, kopf keeps it for the object's next event, and that cycle applies
it (a no-op by then) and runs no handler. If the other replica paused before it saw its
own write, no next event comes (kopf re-lists only when it resumes): the object would
never be handled. So an object that has not changed for a while is touched, as kopf
touches objects whose handlers wait, and kopf handles it on that event (an extra cycle
never does anything twice: the handlers are idempotent).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import kopf

from dpsched.k8s.kube import KubeApi, KubeError

KOPF_PREFIX = "dpsched.io"
"""The prefix of kopf's annotations on our objects (progress, diff-base, touches)."""
HANDLED = f"{KOPF_PREFIX}/last-handled-configuration"
"""kopf's diff-base: written once every creation handler of the object has finished."""
TOUCH = f"{KOPF_PREFIX}/touch-dummy"
"""The annotation kopf writes to wake its own delayed handlers (and removes after)."""

log = logging.getLogger("dpsched.k8s")


def unhandled(body: kopf.Body, **_: Any) -> bool:
    """Has kopf not yet finished creating the object (the settling daemon's filter)?"""
    return HANDLED not in body.metadata.annotations


async def settle(
    kube: KubeApi, path: str, body: kopf.Body, stopped: kopf.DaemonStopped, interval: float
) -> None:
    """See that kopf finishes creating the object at `path`. A kopf daemon, on the
    live `body`, started `interval` seconds after kopf first saw the object and only
    while kopf has not written its diff-base (its record that every creation handler
    finished); it runs in the active replica only (kopf stops daemons when peering
    pauses it). An object unchanged for `interval` seconds is touched (see above)."""
    seen: str | None = None
    while not stopped:
        meta = body.metadata
        if HANDLED in meta.annotations or meta.deletion_timestamp:
            return
        version = meta.get("resourceVersion")
        if version == seen:
            where = f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name
            log.info("touching %s: kopf has not handled it and nothing changed it", where)
            touch = {TOUCH: dt.datetime.now(dt.UTC).isoformat()}
            try:  # only the version seen: a newer one is an event kopf handles anyway
                await kube.merge_patch(
                    path, {"metadata": {"resourceVersion": version, "annotations": touch}}
                )
            except KubeError as exc:
                if exc.status not in (404, 409):
                    raise
        seen = version
        await stopped.wait(interval)
