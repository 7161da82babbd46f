"""SnapStart for Python: one template process per published version, forked from the
runtime's zygote after running the function's init and its before-snapshot hooks.

A new environment of that version is a fork of its template — the state after init,
copy-on-write — that runs the after-restore hooks and starts serving. This is the
same idea as Lambda's Firecracker snapshot, at the granularity of a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from lamina.environments.launcher import HostFacts, build_spec
from lamina.environments.logs import LineSplitter, LogSink, log_group, log_stream
from lamina.environments.prefault import PageLearner
from lamina.environments.process import Child, LaunchSpec
from lamina.environments.sandbox import Sandbox, SandboxedChild
from lamina.environments.spawn import ZygoteSpawner, confined_fork, fork
from lamina.environments.stems import StemPool
from lamina.environments.zygote import ForkedChild, ForkServer, TemplateInitError, ZygoteUnavailable
from lamina.errors import ResourceConflict
from lamina.functions.model import FunctionConfig

INIT_TIMEOUT_S = 120.0


class SnapshotFailed(Exception):
    """The version's init failed; `error` is the runtime's error document."""

    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message)
        self.error_type = error_type


@dataclass(slots=True)
class Template:
    config: FunctionConfig
    process: ForkedChild | SandboxedChild
    server: ForkServer
    init_ms: float
    # The sandbox it runs in (None: none); its environments are forked into it.
    sandbox: Sandbox | None = None
    confined: bool = False  # whether the template itself runs sandboxed
    # Forks of it parked in fresh cgroups ahead of need (stems.py), when confined.
    stems: StemPool | None = None
    # What its environments write as they start, for its stems to copy (prefault.py).
    learner: PageLearner | None = None

    def close(self) -> None:
        if self.learner is not None:
            self.learner.close()
        if self.stems is not None:
            self.stems.close()
        self.server.close()
        self.process.kill()
        if isinstance(self.process, SandboxedChild):
            # Its cgroups go once it is gone (SandboxedChild.wait removes them).
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().create_task(self.process.wait())


class TemplateSpawner:
    """Spawner for environments of one version: forks of its template."""

    def __init__(self, template: Template) -> None:
        self._template = template

    async def spawn(self, spec: LaunchSpec, out_fd: int, channel_fd: int | None = None) -> Child:
        template = self._template
        if not template.confined or template.sandbox is None or spec.sandbox is None:
            return await fork(template.server, spec, out_fd, template.sandbox, channel_fd)
        # A fork of a sandboxed template is in its sandbox already: the plan tells the
        # template's keeper which cgroups (and Runtime API port) are the environment's.
        try:
            child = await confined_fork(
                template.server, spec, template.sandbox, out_fd, channel_fd, template.stems,
                depth=0,  # the environment itself
            )  # fmt: skip
            if template.learner is not None:
                template.learner.watch(child)
            return child
        finally:
            if template.stems is not None:
                template.stems.refill(template.server)


class _OutputPump:
    """Copies a template's init output into the version's log group."""

    def __init__(self, fd: int, logs: LogSink, group: str, stream: str) -> None:
        self._fd, self._logs, self._group, self._stream = fd, logs, group, stream
        self._splitter = LineSplitter()
        os.set_blocking(fd, False)
        asyncio.get_running_loop().add_reader(fd, self.pump)

    def pump(self) -> None:
        import time

        while self._fd >= 0:
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            lines = self._splitter.feed(chunk) if chunk else self._splitter.flush()
            if lines:
                now = int(time.time() * 1000)
                self._logs.append(self._group, self._stream, [(now, line) for line in lines])
            if not chunk:
                self.close()

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1


class Snapshots:
    def __init__(
        self, zygotes: ZygoteSpawner, facts: HostFacts, logs: LogSink, stems: int = 1
    ) -> None:
        self._stems = stems  # parked per template
        self._zygotes = zygotes
        self._facts = facts
        self._logs = logs
        self._templates: dict[str, Template] = {}
        self._making: dict[str, asyncio.Task[Template]] = {}

    def get(self, config: FunctionConfig) -> Template | None:
        template = self._templates.get(config.code_key)
        if template is not None and not template.server.open:
            del self._templates[config.code_key]  # it died: make a new one next time
            return None
        return template

    async def ensure(self, config: FunctionConfig) -> Template:
        """The version's template, making it (once, however many callers ask) if needed."""
        template = self.get(config)
        if template is not None:
            return template
        task = self._making.get(config.code_key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._make(config))
            self._making[config.code_key] = task
            task.add_done_callback(lambda _: self._making.pop(config.code_key, None))
        return await asyncio.shield(task)

    async def _make(self, config: FunctionConfig) -> Template:
        python = self._facts.interpreters.get(config.runtime)
        server = await self._zygotes.server_for(python)
        if server is None:
            raise ResourceConflict(
                f"SnapStart needs the {config.runtime} zygote, which is not running."
            )
        template_id = "snapshot" + secrets.token_hex(12)
        stream = log_stream(config.version, template_id)
        spec = build_spec(
            config, template_id, "", self._facts, stream, "snap-start", egress=config.egress
        )
        # The function's init runs in the sandbox its environments run in.
        sandbox, confinement = self._facts.sandbox, spec.sandbox
        prepared = None
        env = spec.env
        if sandbox is not None and confinement is not None and sandbox.forks_confined:
            prepared = sandbox.prepare_template(confinement)
            env = confinement.inside(spec.env)
        read_fd, write_fd = os.pipe()
        pump = _OutputPump(read_fd, self._logs, log_group(config.name), stream)
        plan = prepared.plan if prepared else None
        made = False
        try:
            forked, template_server = await asyncio.wait_for(
                server.template(spec.runtime_argv, env, spec.cwd, write_fd, plan), INIT_TIMEOUT_S
            )
            made = True
        except TemplateInitError as exc:
            pump.pump()
            raise SnapshotFailed(
                str(exc.error.get("errorMessage", "init failed")),
                str(exc.error.get("errorType", "Runtime.Unknown")),
            ) from exc
        except (TimeoutError, ZygoteUnavailable) as exc:
            raise SnapshotFailed(
                f"the snapshot could not be made: {exc}", "Runtime.SnapshotError"
            ) from exc
        finally:
            os.close(write_fd)
            if prepared is not None and not made:
                prepared.release()  # best effort: a group still busy goes at shutdown
        ready = await template_server.ready
        init_ms = float(ready.get("init_ms", 0.0))
        process: ForkedChild | SandboxedChild = forked
        if prepared is not None:
            process = SandboxedChild(forked, prepared)
        stems = None
        if prepared is not None and sandbox is not None and sandbox.protections.cgroups:
            stems = StemPool(sandbox, self._stems, pidns=False)
        # Its own address space (the function's init ran in it): learned for it alone.
        learner = None
        if stems is not None and self._zygotes.prefault:
            learner = PageLearner(template_server.prefault)
        template = Template(
            config, process, template_server, init_ms, sandbox, confined=prepared is not None,
            stems=stems, learner=learner,
        )  # fmt: skip
        self._templates[config.code_key] = template
        return template

    def drop(self, function: str, keep: Callable[[FunctionConfig], bool] = lambda _: False) -> None:
        for key in [k for k in self._templates if k.split(":", 1)[0] == function]:
            if not keep(self._templates[key].config):
                self._templates.pop(key).close()

    def close(self) -> None:
        for task in self._making.values():
            task.cancel()
        for template in self._templates.values():
            template.close()
        self._templates.clear()
