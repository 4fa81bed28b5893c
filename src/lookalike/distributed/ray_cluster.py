"""Reaching a Ray cluster: probing a remote head, starting a private local Ray, and cleaning up
after a local start that failed.

``ray.init(address="local")`` starts a GCS server and a raylet, then waits a fixed 30 s for the
raylet to register. On a loaded machine that wait can run out (seen in CI: "The current node
timed out during startup"), and Ray then raises from inside its ``Node`` constructor, so nothing
holds the processes it already started: they keep running until this process exits. Here the
failed start's processes are stopped, and a local start is tried once more before the error
reaches the user, naming Ray's log folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from types import TracebackType
from typing import Protocol, runtime_checkable

from lookalike import process_tree
from lookalike.errors import InvalidInputError

#: ``address`` value that starts a private Ray on this machine for the duration of the call.
LOCAL = "local"
#: ray.init retries an unreachable head for many minutes; a plain TCP probe answers in seconds.
CONNECT_TIMEOUT_S = 10.0
#: Starts of a local Ray before giving up: a timed-out start is usually a passing load spike.
LOCAL_START_ATTEMPTS = 2


@runtime_checkable
class _Node(Protocol):
    """What is used of a ``ray._private.node.Node``."""

    def kill_all_processes(
        self, check_alive: bool = ..., allow_graceful: bool = ..., wait: bool = ...
    ) -> None: ...


def check_reachable(address: str) -> None:
    """Refuse, in seconds, an address that is malformed or where nothing listens."""
    if address in (LOCAL, "auto"):
        return
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InvalidInputError(
            f"Ray address {address!r} is not 'local', 'auto' or HOST:PORT (the head node's GCS "
            "port, 6379 by default; ray://HOST:10001 for Ray Client)"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise InvalidInputError(
            f"cannot reach the Ray cluster at {address} ({exc}); check the address, start the "
            "cluster with `ray start --head`, or use --ray local"
        ) from exc


def connect(address: str) -> None:
    """Connect this process to Ray at ``address``; ``"local"`` starts a private instance (tried
    :data:`LOCAL_START_ATTEMPTS` times). A failed start leaves none of its processes running."""
    import ray

    if address != LOCAL:
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except Exception as exc:  # ConnectionError, version mismatches, a head that died…
            _stop_failed_start(exc)
            raise InvalidInputError(
                f"cannot connect to the Ray cluster at {address}: {type(exc).__name__}: {exc}; "
                "check the address (and that the cluster runs the same Ray and Python "
                "versions), or use --ray local"
            ) from exc
        return
    for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
        try:
            ray.init(
                address="local",  # a new private instance, never one found on the machine
                num_cpus=local_cpus(),
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
            return
        except Exception as exc:  # the raylet's registration timing out, a full /tmp…
            logs = _stop_failed_start(exc)
            if attempt < LOCAL_START_ATTEMPTS:
                continue
            where = f"Ray's logs of the last try: {logs}; " if logs else ""
            raise InvalidInputError(
                f"cannot start a local Ray ({attempt} tries): {type(exc).__name__}: {exc}; "
                f"{where}check free memory and space in the temporary folder, try again when "
                "the machine is less busy, or index without --ray"
            ) from exc


def local_cpus() -> int:
    """CPUs a local Ray is given: this process's cores, at least two (one decodes, one embeds)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        cores = os.cpu_count() or 1
    return max(2, cores)


def _stop_failed_start(exc: BaseException) -> str | None:
    """Stop the processes a failed ``ray.init`` started and forget its state; returns the failed
    node's log folder when known.

    A node that failed inside its constructor is reachable only through the traceback (the
    ``self`` of ``Node.__init__``); a node that came up but failed later is Ray's global node,
    which ``ray.shutdown`` stops. Ray stops a node by asking each process to end (SIGTERM, a
    second to do it, then SIGKILL); a raylet that is hung dies without stopping the agents it
    started, so the descendants of the node's processes, noted first, get SIGKILL too."""
    import ray

    logs: str | None = None
    for node in _nodes_in(exc.__traceback__):
        logs = getattr(node, "_logs_dir", None) or logs
        below = process_tree.descendants(*_node_pids(node))
        with contextlib.suppress(Exception):  # Ray's private API: never hide the real error
            node.kill_all_processes(check_alive=False, allow_graceful=True, wait=True)
        process_tree.kill_all(below)
    with contextlib.suppress(Exception):  # nothing more can be stopped from here
        ray.shutdown()
    return logs


def _node_pids(node: _Node) -> list[int]:
    """The pids of the processes a Ray node started itself (GCS server, raylet, monitors)."""
    pids: list[int] = []
    for infos in getattr(node, "all_processes", {}).values():
        for info in infos:
            pid = getattr(getattr(info, "process", None), "pid", None)
            if isinstance(pid, int):
                pids.append(pid)
    return pids


def _nodes_in(tb: TracebackType | None) -> list[_Node]:
    """The Ray ``Node`` objects under construction in a traceback's frames."""
    nodes: list[_Node] = []
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("self")
        if (
            isinstance(candidate, _Node)
            and type(candidate).__name__ == "Node"
            and type(candidate).__module__.startswith("ray.")
            and all(candidate is not node for node in nodes)
        ):
            nodes.append(candidate)
        tb = tb.tb_next
    return nodes
