"""The function registry: every rule about creating, changing and versioning functions.

Reads come from memory (the invoke path never waits on SQL); every change is
written through to the repository before it is acknowledged. A new or changed
`$LATEST` is Pending / InProgress until its code is unpacked, then Active /
Successful — the states boto3's `function_active_v2` and `function_updated_v2`
waiters poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from lamina.errors import PreconditionFailed, ResourceConflict, ResourceNotFound
from lamina.functions import package as packages
from lamina.functions.model import LATEST, Function, FunctionConfig, State, UpdateStatus
from lamina.functions.package import CodePackage
from lamina.storage.functions import FunctionRepository

# Activation normally takes milliseconds; an operation that needs an Active function
# waits up to this long before answering Lambda's "operation in progress" conflict.
ACTIVATION_WAIT_S = 30.0


class BlobStore(Protocol):
    def put(self, digest: str, data: bytes) -> None: ...
    def get(self, digest: str) -> bytes: ...


def lambda_timestamp(now: float) -> str:
    """LastModified as Lambda renders it: 2024-01-31T12:00:00.000+0000."""
    millis = int(now * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{millis:03d}+0000"


class FunctionRegistry:
    def __init__(
        self,
        repo: FunctionRepository,
        blobs: BlobStore,
        code_root: Path,
        arn: Callable[[str, str | None], str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repo = repo
        self._blobs = blobs
        self._code_root = code_root
        self._arn = arn
        self._clock = clock
        self._functions: dict[str, Function] = {}
        self._activated: dict[str, asyncio.Event] = {}  # revision id -> set when settled
        self._tasks: set[asyncio.Task[None]] = set()
        self.on_change: list[Callable[[Function], None]] = []
        # Called when $LATEST's current revision has settled Active (deploy_warmer.py).
        self.on_active: list[Callable[[FunctionConfig], None]] = []
        # Makes a published version ready before it is Active (SnapStart's snapshot).
        self.prepare_version: Callable[[FunctionConfig], Awaitable[None]] | None = None

    async def load(self, *, settle: bool = True) -> None:
        """Read every function; `settle=False` only reads (a serving process other than
        the primary, which must never write: the primary finishes activations)."""
        self._functions = await self._repo.load_all()
        if not settle:
            return
        for fn in self._functions.values():
            if (
                fn.latest.state is State.PENDING
                or fn.latest.last_update_status is UpdateStatus.IN_PROGRESS
            ):
                self._activate(fn.latest)  # a restart during activation finishes it now
            for version in fn.versions.values():
                if version.state is State.PENDING:
                    self._activate(version)

    async def catch_up(self, mark: int | None) -> tuple[int, dict[str, FunctionConfig | None]]:
        """For a serving process that did not write them: read again the functions
        changed since `mark` (every function when None, or when the change log no longer
        reaches back). Returns the new mark, and each changed function's `$LATEST` as it
        was before (None: it did not exist here)."""
        if mark is not None:
            newest, names = await self._repo.changed_since(mark)
            if names is not None:
                changed: dict[str, FunctionConfig | None] = {}
                loaded = await self._repo.load_functions(names)
                for name in names:
                    was = self._functions.get(name)
                    changed[name] = was.latest if was is not None else None
                    fn = loaded.get(name)
                    if fn is None:
                        self._functions.pop(name, None)
                    else:
                        self._functions[name] = fn
                return newest, changed
        previous = {name: fn.latest for name, fn in self._functions.items()}
        newest = await self._repo.change_mark()  # first: a change after it is read again
        await self.load(settle=False)
        return newest, {name: previous.get(name) for name in previous.keys() | self._functions}

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------------- reads

    def get(self, name: str) -> Function:
        fn = self._functions.get(name)
        if fn is None:
            raise ResourceNotFound(f"Function not found: {self._arn(name, None)}")
        return fn

    def names(self) -> list[str]:
        return sorted(self._functions)

    def config(self, name: str, qualifier: str | None) -> FunctionConfig:
        """The configuration a qualifier names (an alias names its primary version)."""
        fn = self.get(name)
        if qualifier is None or qualifier == LATEST:
            return fn.latest
        if qualifier in fn.versions:
            return fn.versions[qualifier]
        alias = fn.aliases.get(qualifier)
        if alias is not None:
            return self.config(name, alias.version)
        raise ResourceNotFound(f"Function not found: {self._arn(name, qualifier)}")

    async def wait_active(self, config: FunctionConfig) -> FunctionConfig:
        """Let a just-created or just-updated function settle before it is used."""
        if (
            config.state is not State.PENDING
            and config.last_update_status is not UpdateStatus.IN_PROGRESS
        ):
            return config
        event = self._activated.get(config.revision_id)
        if event is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), ACTIVATION_WAIT_S)
        current = self.config(config.name, config.version)
        if current.state is State.PENDING or current.last_update_status is UpdateStatus.IN_PROGRESS:
            raise ResourceConflict(
                "The operation cannot be performed at this time. The function is currently "
                f"in the following state: {current.state.value}"
            )
        return current

    # ------------------------------------------------------------------ writes

    async def create(
        self, config: FunctionConfig, package: CodePackage, publish: bool
    ) -> FunctionConfig:
        if config.name in self._functions:
            raise ResourceConflict(f"Function already exist: {config.name}")
        await asyncio.to_thread(self._blobs.put, package.sha256_hex, package.data)
        config = dataclasses.replace(
            config,
            code_sha256=package.sha256_hex,
            code_size=len(package.data),
            revision_id=str(uuid.uuid4()),
            last_modified=lambda_timestamp(self._clock()),
            state=State.PENDING,
            last_update_status=UpdateStatus.IN_PROGRESS,
        )
        fn = Function(latest=config, created=self._clock())
        self._functions[config.name] = fn
        try:
            await self._repo.save_function(fn)
        except BaseException:
            self._functions.pop(config.name, None)
            raise
        self._activate(config)
        if publish:
            await self.publish(config.name, "", None, None)
        return self.get(config.name).latest

    async def update_code(
        self, name: str, package: CodePackage, publish: bool, revision_id: str | None
    ) -> FunctionConfig:
        fn = self.get(name)
        self._check_revision(fn.latest, revision_id)
        await asyncio.to_thread(self._blobs.put, package.sha256_hex, package.data)
        return await self._update_latest(
            fn, publish, code_sha256=package.sha256_hex, code_size=len(package.data)
        )

    async def update_config(
        self, name: str, changes: Mapping[str, Any], revision_id: str | None
    ) -> FunctionConfig:
        fn = self.get(name)
        self._check_revision(fn.latest, revision_id)
        return await self._update_latest(fn, False, **changes)

    async def _update_latest(self, fn: Function, publish: bool, **changes: Any) -> FunctionConfig:
        previous = fn.latest
        fn.latest = dataclasses.replace(
            previous,
            **changes,
            revision_id=str(uuid.uuid4()),
            last_modified=lambda_timestamp(self._clock()),
            last_update_status=UpdateStatus.IN_PROGRESS,
        )
        try:
            await self._repo.save_function(fn)
        except BaseException:
            fn.latest = previous
            raise
        self._notify(fn)
        self._activate(fn.latest)
        if publish:
            await self.publish(fn.name, "", None, None)
        return fn.latest

    async def delete(self, name: str, qualifier: str | None) -> None:
        fn = self.get(name)
        if qualifier is None:
            await self._repo.delete_function(name)
            del self._functions[name]
            self._notify(fn)
            return
        if qualifier == LATEST or qualifier in fn.aliases:
            from lamina.errors import InvalidParameterValue

            raise InvalidParameterValue(
                f"Deletion of {qualifier} is not allowed: delete the function (no qualifier), "
                "or a published version."
            )
        if qualifier not in fn.versions:
            raise ResourceNotFound(f"Function not found: {self._arn(name, qualifier)}")
        users = sorted(a.name for a in fn.aliases.values() if qualifier in (a.version, *a.weights))
        if users:
            raise ResourceConflict(
                f"Unable to delete version because the following aliases reference it: {users}"
            )
        await self._repo.delete_version(name, qualifier)
        del fn.versions[qualifier]
        self._notify(fn)

    async def publish(
        self, name: str, description: str, code_sha256: str | None, revision_id: str | None
    ) -> FunctionConfig:
        fn = self.get(name)
        latest = await self.wait_active(fn.latest)
        self._check_revision(latest, revision_id)
        if code_sha256 is not None and code_sha256 not in (
            latest.code_sha256,
            _b64(latest.code_sha256),
        ):
            raise PreconditionFailed(
                f"CodeSHA256 ({code_sha256}) is different from current CodeSHA256 in $LATEST "
                f"({_b64(latest.code_sha256)}). Please try again with the CodeSHA256 in $LATEST."
            )
        if fn.versions:
            newest = fn.versions[max(fn.versions, key=int)]
            if _same_code_and_config(newest, latest):
                return newest  # Lambda publishes nothing new when $LATEST is unchanged
        version = dataclasses.replace(
            latest,
            version=str(fn.next_version),
            description=description or latest.description,
            revision_id=str(uuid.uuid4()),
            last_modified=lambda_timestamp(self._clock()),
        )
        if version.snapshotted and self.prepare_version is not None:
            version = dataclasses.replace(version, state=State.PENDING)
        fn.next_version += 1
        fn.versions[version.version] = version
        try:
            await self._repo.save_function(fn, version)
        except BaseException:
            fn.next_version -= 1
            del fn.versions[version.version]
            raise
        if version.state is State.PENDING:
            self._activate(version)
        return version

    def _check_revision(self, config: FunctionConfig, revision_id: str | None) -> None:
        if revision_id is not None and revision_id != config.revision_id:
            raise PreconditionFailed(
                "The Revision Id provided does not match the latest Revision Id. "
                "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
            )

    def _notify(self, fn: Function) -> None:
        for callback in self.on_change:
            callback(fn)

    # -------------------------------------------------------------- activation

    def _activate(self, config: FunctionConfig) -> None:
        self._activated[config.revision_id] = asyncio.Event()
        task = asyncio.get_running_loop().create_task(self._settle(config))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, config: FunctionConfig) -> None:
        """Make a revision usable, then flip Pending/InProgress to Active/Successful (or
        Failed): for $LATEST, unpack its code; for a SnapStart version, take its snapshot."""
        state, status, reason, code = State.ACTIVE, UpdateStatus.SUCCESSFUL, "", ""
        try:
            if config.version == LATEST:
                data = await asyncio.to_thread(self._blobs.get, config.code_sha256)
                package = await asyncio.to_thread(packages.inspect, data)
                await asyncio.to_thread(packages.extract, package, self._code_root / config.code_sha256)
            elif self.prepare_version is not None:
                await self.prepare_version(config)
        except Exception as exc:  # a bad package or init fails the function, never the server
            state, status = State.FAILED, UpdateStatus.FAILED
            if config.version == LATEST:
                reason, code = f"Unpacking the code failed: {exc}", "InvalidZipFileException"
            else:
                reason, code = f"The SnapStart snapshot could not be made: {exc}", "FunctionError"
        fn = self._functions.get(config.name)
        try:
            if fn is None:
                return

            def settled(current: FunctionConfig) -> FunctionConfig:
                return dataclasses.replace(
                    current, state=state, last_update_status=status,
                    state_reason=reason, state_reason_code=code,
                )  # fmt: skip

            if config.version == LATEST and fn.latest.revision_id == config.revision_id:
                fn.latest = settled(fn.latest)
                await self._repo.save_function(fn)
                if state is State.ACTIVE:
                    for callback in self.on_active:
                        callback(fn.latest)
            elif config.version in fn.versions:
                version = settled(fn.versions[config.version])
                fn.versions[config.version] = version
                await self._repo.save_version(version)
        finally:
            event = self._activated.pop(config.revision_id, None)
            if event is not None:
                event.set()


def _b64(hex_digest: str) -> str:
    import base64

    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def _same_code_and_config(a: FunctionConfig, b: FunctionConfig) -> bool:
    ignore = {"version", "revision_id", "last_modified", "description", "state",
              "last_update_status", "state_reason", "state_reason_code"}  # fmt: skip
    return all(
        getattr(a, f.name) == getattr(b, f.name)
        for f in dataclasses.fields(FunctionConfig)
        if f.name not in ignore
    )
