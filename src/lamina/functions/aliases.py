"""Aliases (a name for a version, maybe splitting traffic to a second one by weight),
per-function concurrency reservations and event invoke configs."""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Protocol

from lamina.errors import InvalidParameterValue, LaminaError, ResourceConflict, ResourceNotFound
from lamina.functions.model import (
    LATEST,
    Alias,
    EventInvokeConfig,
    Function,
    FunctionConfig,
    ProvisionedConfig,
)
from lamina.functions.registry import FunctionRegistry, lambda_timestamp
from lamina.functions.validation import validate_alias_name
from lamina.invocation.concurrency import Concurrency
from lamina.storage.functions import FunctionRepository


def route(
    registry: FunctionRegistry,
    name: str,
    qualifier: str | None,
    draw: Callable[[], float] = random.random,
) -> FunctionConfig:
    """The configuration one invocation runs: a weighted alias picks a version per call."""
    fn = registry.get(name)
    if qualifier is not None:
        alias = fn.aliases.get(qualifier)
        if alias is not None:
            point = draw()
            for version, weight in alias.weights.items():
                if point < weight:
                    return registry.config(name, version)
                point -= weight
            return registry.config(name, alias.version)
    return registry.config(name, qualifier)


class ProvisionedSink(Protocol):
    """What keeps provisioned environments running (environments.ProvisionedFleets)."""

    def set(self, function: str, qualifier: str, config: FunctionConfig, count: int) -> None: ...
    def remove(self, function: str, qualifier: str | None = None) -> None: ...


class FunctionSettings:
    def __init__(
        self,
        registry: FunctionRegistry,
        repo: FunctionRepository,
        concurrency: Concurrency,
        arn: Callable[[str, str | None], str],
        clock: Callable[[], float] = time.time,
        provisioned: ProvisionedSink | None = None,
    ) -> None:
        self._registry = registry
        self._repo = repo
        self._concurrency = concurrency
        self._arn = arn
        self._clock = clock
        self._provisioned = provisioned

    def load(self) -> None:
        for name in self._registry.names():
            fn = self._registry.get(name)
            if fn.reserved_concurrency is not None:
                self._concurrency.reserve(name, fn.reserved_concurrency)
            if self._provisioned is not None:
                for qualifier, config in fn.provisioned.items():
                    with contextlib.suppress(ResourceNotFound):
                        target = self._registry.config(name, qualifier)
                        self._provisioned.set(name, qualifier, target, config.requested)

    # ----------------------------------------------------------------- aliases

    def _check_version(self, fn: Function, version: str) -> None:
        if version != LATEST and version not in fn.versions:
            raise ResourceNotFound(f"Function not found: {self._arn(fn.name, version)}")

    def _check_weights(self, fn: Function, version: str, weights: Mapping[str, float]) -> None:
        if len(weights) > 1:
            raise InvalidParameterValue(
                "An alias can route traffic to at most one additional version."
            )
        for extra, weight in weights.items():
            self._check_version(fn, extra)
            if LATEST in (extra, version):
                raise InvalidParameterValue(
                    "$LATEST is not supported for an alias pointing to more than 1 version"
                )
            if extra == version:
                raise InvalidParameterValue(
                    "Alias routing config may not list the alias's own version."
                )
            if not 0.0 <= weight <= 1.0:
                raise InvalidParameterValue(
                    f"Weight {weight} for version {extra} must be between 0.0 and 1.0."
                )

    async def create_alias(
        self,
        name: str,
        alias_name: str,
        version: str,
        description: str,
        weights: Mapping[str, float],
    ) -> Alias:
        fn = self._registry.get(name)
        validate_alias_name(alias_name)
        if alias_name in fn.aliases:
            raise ResourceConflict(f"Alias already exists: {self._arn(name, alias_name)}")
        self._check_version(fn, version)
        self._check_weights(fn, version, weights)
        alias = Alias(name, alias_name, version, description, dict(weights), str(uuid.uuid4()))
        await self._repo.save_alias(alias)
        fn.aliases[alias_name] = alias
        return alias

    def get_alias(self, name: str, alias_name: str) -> Alias:
        alias = self._registry.get(name).aliases.get(alias_name)
        if alias is None:
            raise ResourceNotFound(f"Alias not found: {self._arn(name, alias_name)}")
        return alias

    async def update_alias(
        self,
        name: str,
        alias_name: str,
        version: str | None,
        description: str | None,
        weights: Mapping[str, float] | None,
        revision_id: str | None,
    ) -> Alias:
        fn = self._registry.get(name)
        current = self.get_alias(name, alias_name)
        if revision_id is not None and revision_id != current.revision_id:
            from lamina.errors import PreconditionFailed

            raise PreconditionFailed(
                "The Revision Id provided does not match the latest Revision Id. "
                "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
            )
        new_version = version if version is not None else current.version
        new_weights = dict(weights) if weights is not None else dict(current.weights)
        self._check_version(fn, new_version)
        self._check_weights(fn, new_version, new_weights)
        alias = Alias(
            name,
            alias_name,
            new_version,
            description if description is not None else current.description,
            new_weights,
            str(uuid.uuid4()),
        )
        await self._repo.save_alias(alias)
        fn.aliases[alias_name] = alias
        return alias

    async def delete_alias(self, name: str, alias_name: str) -> None:
        fn = self._registry.get(name)
        self.get_alias(name, alias_name)
        await self._repo.delete_alias(name, alias_name)
        del fn.aliases[alias_name]

    # ------------------------------------------------------------- concurrency

    async def put_concurrency(self, name: str, count: int) -> None:
        fn = self._registry.get(name)
        self._concurrency.reserve(name, count)  # raises if it starves the shared pool
        previous = fn.reserved_concurrency
        fn.reserved_concurrency = count
        try:
            await self._repo.save_function(fn)
        except BaseException:
            fn.reserved_concurrency = previous
            if previous is None:
                self._concurrency.unreserve(name)
            else:
                self._concurrency.reserve(name, previous)
            raise

    async def delete_concurrency(self, name: str) -> None:
        fn = self._registry.get(name)
        fn.reserved_concurrency = None
        await self._repo.save_function(fn)
        self._concurrency.unreserve(name)

    # ------------------------------------------------------ event invoke config

    def _qualifier_key(self, fn: Function, qualifier: str | None) -> str:
        key = qualifier or LATEST
        if key != LATEST and key not in fn.versions and key not in fn.aliases:
            raise ResourceNotFound(f"Function not found: {self._arn(fn.name, key)}")
        return key

    async def put_invoke_config(
        self,
        name: str,
        qualifier: str | None,
        max_retries: int | None,
        max_age_s: int | None,
        destinations: Mapping[str, str] | None,
        merge: bool,
    ) -> tuple[str, EventInvokeConfig]:
        fn = self._registry.get(name)
        key = self._qualifier_key(fn, qualifier)
        base = fn.event_invoke_configs.get(key) if merge else None
        if merge and base is None:
            base = EventInvokeConfig()
        config = EventInvokeConfig(
            max_retries=max_retries
            if max_retries is not None
            else (base.max_retries if base else 2),
            max_event_age_s=max_age_s
            if max_age_s is not None
            else (base.max_event_age_s if base else 21600),
            last_modified=self._clock(),
            destinations=dict(destinations)
            if destinations is not None
            else dict(base.destinations if base else {}),
        )
        await self._repo.save_invoke_config(name, key, config)
        fn.event_invoke_configs[key] = config
        return key, config

    def get_invoke_config(self, name: str, qualifier: str | None) -> tuple[str, EventInvokeConfig]:
        fn = self._registry.get(name)
        key = self._qualifier_key(fn, qualifier)
        config = fn.event_invoke_configs.get(key)
        if config is None:
            raise ResourceNotFound(
                f"The function {self._arn(name, key)} doesn't have an EventInvokeConfig"
            )
        return key, config

    def effective_invoke_config(self, name: str, qualifier: str | None) -> EventInvokeConfig:
        """The retry policy an async event gets: its qualifier's, else $LATEST's, else defaults."""
        fn = self._registry.get(name)
        return fn.event_invoke_configs.get(qualifier or LATEST) or EventInvokeConfig()

    # ----------------------------------------------------- provisioned concurrency

    async def put_provisioned(self, name: str, qualifier: str | None, count: int) -> ProvisionedConfig:
        fn = self._registry.get(name)
        if not qualifier or qualifier == LATEST:
            raise InvalidParameterValue(
                "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
            )
        target = self._registry.config(name, qualifier)  # 404 for an unknown version/alias
        if count < 1:
            raise InvalidParameterValue("ProvisionedConcurrentExecutions must be at least 1.")
        reserved = fn.reserved_concurrency
        if reserved is not None and count > reserved:
            raise InvalidParameterValue(
                f"Requested Provisioned Concurrency should not be greater than the "
                f"reservedConcurrentExecution for function ({reserved})."
            )
        config = ProvisionedConfig(count, lambda_timestamp(self._clock()))
        await self._repo.save_provisioned(name, qualifier, config)
        fn.provisioned[qualifier] = config
        if self._provisioned is not None:
            self._provisioned.set(name, qualifier, target, count)
        return config

    def get_provisioned(self, name: str, qualifier: str | None) -> ProvisionedConfig:
        config = self._registry.get(name).provisioned.get(qualifier or "")
        if config is None:
            raise LaminaError(
                "No Provisioned Concurrency Config found for this function",
                code="ProvisionedConcurrencyConfigNotFoundException",
                status=404,
            )
        return config

    async def delete_provisioned(self, name: str, qualifier: str | None) -> None:
        self.get_provisioned(name, qualifier)
        assert qualifier is not None
        await self._repo.delete_provisioned(name, qualifier)
        del self._registry.get(name).provisioned[qualifier]
        if self._provisioned is not None:
            self._provisioned.remove(name, qualifier)

    async def delete_invoke_config(self, name: str, qualifier: str | None) -> None:
        key, _ = self.get_invoke_config(name, qualifier)
        await self._repo.delete_invoke_config(name, key)
        del self._registry.get(name).event_invoke_configs[key]
