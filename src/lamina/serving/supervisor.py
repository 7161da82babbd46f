"""The primary's side of its workers: start them, start them again when they die, stop
them, and ask them what only they know (their environments, their buffered logs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from lamina.environments.cgroups import CgroupLayout
from lamina.serving.forward import Forwarder
from lamina.serving.shared import SharedCounters
from lamina.serving.worker import (
    CGROUPS_VAR,
    INTERNAL,
    SETTINGS_VAR,
    SLOT_VAR,
    encode_cgroups,
    encode_settings,
    primary_socket,
    worker_socket,
)
from lamina.settings import Settings

log = logging.getLogger("lamina.workers")

STOP_GRACE_S = 15.0
# A worker that ran this long before it died is started again at once; one that keeps
# dying is started again after a delay that doubles up to RESTART_MAX_S.
STABLE_S = 30.0
RESTART_MAX_S = 10.0


class Workers:
    def __init__(
        self, settings: Settings, shared: SharedCounters, cgroups: CgroupLayout | None, secret: str
    ) -> None:
        self._settings = settings
        self._shared = shared
        self._data = settings.data_dir.resolve()
        self._env = {
            **os.environ,
            SETTINGS_VAR: encode_settings(settings),
            CGROUPS_VAR: encode_cgroups(cgroups),
        }
        self._auth = [("authorization", f"Bearer {secret}")]
        self._processes: dict[int, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._clients = {
            slot: Forwarder(str(worker_socket(self._data, slot)), timeout_s=30.0)
            for slot in range(1, settings.workers)
        }
        self._closing = False
        self.ready: set[int] = set()  # slots whose worker answers on its socket

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._keep(slot)) for slot in self._clients]

    async def close(self) -> None:
        self._closing = True
        for process in self._processes.values():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        waits = [asyncio.wait_for(p.wait(), STOP_GRACE_S) for p in self._processes.values()]
        for outcome in await asyncio.gather(*waits, return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.warning("a worker did not stop within %.0f s: killed", STOP_GRACE_S)
        for process in self._processes.values():
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for client in self._clients.values():
            await client.close()

    def describe(self) -> dict[str, object]:
        """For /health: how many workers there should be, and how many serve."""
        pids = {str(slot): pid for slot, pid in self.pids().items()}
        return {"expected": len(self._clients), "ready": len(self.ready), "pids": pids}

    def pids(self) -> dict[int, int]:
        return {slot: p.pid for slot, p in self._processes.items() if p.returncode is None}

    async def flush_logs(self, forget_streams: bool) -> None:
        """Every worker's buffered function output, written (a reader then sees it all);
        `forget_streams` after a delete: their cached stream ids may name deleted ones."""
        what = "flush-logs?forget=1" if forget_streams else "flush-logs"
        await asyncio.gather(*(self._ask(slot, what) for slot in self.pids()))

    async def environments(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        for answer in await asyncio.gather(
            *(self._ask(slot, "environments") for slot in self.pids())
        ):
            for row in answer.get("environments", []):
                rows.append({**row, "worker": answer["slot"]})
        return rows

    async def _ask(self, slot: int, what: str) -> dict[str, Any]:
        path, _, query = what.partition("?")
        response = await self._clients[slot].whole(
            "POST", INTERNAL + path, query, self._auth, b"", ""
        )
        if response.status != 200:
            log.warning("worker %d did not answer %s: %s", slot, what, response.body[:200])
            return {"slot": slot}
        return {**orjson.loads(response.body), "slot": slot}

    async def _keep(self, slot: int) -> None:
        await _until_listening(primary_socket(self._data))
        delay = 0.5
        while not self._closing:
            started = time.monotonic()
            try:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "lamina.serving.worker",
                    env={**self._env, SLOT_VAR: str(slot)}, stdin=asyncio.subprocess.DEVNULL,
                    # A terminal's Ctrl-C reaches the primary alone, which stops its
                    # workers in order (before what they forward to).
                    start_new_session=True,
                )  # fmt: skip
            except OSError:
                log.exception("could not start worker %d", slot)
            else:
                self._processes[slot] = process
                waiting = asyncio.get_running_loop().create_task(process.wait())
                ready = asyncio.get_running_loop().create_task(
                    _until_listening(worker_socket(self._data, slot))
                )
                await asyncio.wait([waiting, ready], return_when=asyncio.FIRST_COMPLETED)
                if ready.done():
                    self.ready.add(slot)
                else:
                    ready.cancel()
                code = await waiting
                self.ready.discard(slot)
                self._shared.clear(slot)  # what it held in flight and in memory is gone
                if self._closing:
                    return
                log.warning(
                    "worker %d (pid %d) exited with %s; starting it again", slot, process.pid, code
                )
            delay = 0.5 if time.monotonic() - started > STABLE_S else min(delay * 2, RESTART_MAX_S)
            await asyncio.sleep(delay)


async def _until_listening(path: Path) -> None:
    """Workers forward to the primary's socket: start them once it answers."""
    while True:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_unix_connection(str(path))
            writer.close()
            return
        await asyncio.sleep(0.05)
