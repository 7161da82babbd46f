"""Code-signing configs and which function uses which, kept in memory and in SQL.

A config lists the profile versions allowed to publish code and says what happens to
code that fails the checks: `Warn` (deploy, and log why) or `Enforce` (refuse).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import ClassVar

from sqlalchemy import MetaData, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from lamina.errors import InvalidParameterValue
from lamina.signing.tables import code_signing_configs, function_code_signing, signing_metadata

MAX_PUBLISHERS = 20  # Lambda's limit on SigningProfileVersionArns


class UntrustedArtifactPolicy(Enum):
    WARN = "Warn"
    ENFORCE = "Enforce"


@dataclass(frozen=True, slots=True)
class CodeSigningConfig:
    arn: str
    config_id: str
    description: str
    allowed: tuple[str, ...]  # signing profile version ARNs
    policy: UntrustedArtifactPolicy
    last_modified: str  # ISO 8601, as Lambda renders it


def check_publishers(arns: Sequence[str]) -> tuple[str, ...]:
    if not 1 <= len(arns) <= MAX_PUBLISHERS:
        raise InvalidParameterValue(
            f"AllowedPublishers.SigningProfileVersionArns must list 1 to {MAX_PUBLISHERS} ARNs."
        )
    for arn in arns:
        if not (arn.startswith("arn:aws:signer:") and "/signing-profiles/" in arn):
            raise InvalidParameterValue(f"{arn!r} is not a signing profile version ARN.")
    return tuple(dict.fromkeys(arns))


def parse_policy(value: str | None) -> UntrustedArtifactPolicy:
    try:
        return UntrustedArtifactPolicy(value or "Warn")
    except ValueError:
        raise InvalidParameterValue(
            f"UntrustedArtifactOnDeployment {value!r} is invalid: use Warn or Enforce."
        ) from None


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


class ConfigStore:
    metadata: ClassVar[MetaData] = signing_metadata

    def __init__(
        self,
        engine: AsyncEngine,
        region: str,
        account_id: str,
        now_iso: Callable[[], str] = _now_iso,
    ) -> None:
        self._engine = engine
        self._prefix = f"arn:aws:lambda:{region}:{account_id}:code-signing-config:"
        self._now_iso = now_iso
        self.configs: dict[str, CodeSigningConfig] = {}
        self.bindings: dict[str, str] = {}  # function name -> config ARN

    async def load(self) -> None:
        async with self._engine.connect() as conn:
            for row in (await conn.execute(select(code_signing_configs))).mappings():
                self.configs[row["arn"]] = CodeSigningConfig(
                    row["arn"], row["config_id"], row["description"],
                    tuple(json.loads(row["allowed_arns"])),
                    UntrustedArtifactPolicy(row["policy"]), row["last_modified"],
                )  # fmt: skip
            for row in (await conn.execute(select(function_code_signing))).mappings():
                self.bindings[row["function_name"]] = row["config_arn"]

    async def create(
        self, description: str, allowed: tuple[str, ...], policy: UntrustedArtifactPolicy
    ) -> CodeSigningConfig:
        config_id = "csc-" + secrets.token_hex(9)[:17]
        config = CodeSigningConfig(
            self._prefix + config_id, config_id, description, allowed, policy, self._now_iso()
        )
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(code_signing_configs).values(
                    arn=config.arn, config_id=config_id, description=description,
                    allowed_arns=json.dumps(list(allowed)), policy=policy.value,
                    last_modified=config.last_modified,
                )
            )  # fmt: skip
        self.configs[config.arn] = config
        return config

    async def update(self, config: CodeSigningConfig) -> CodeSigningConfig:
        updated = CodeSigningConfig(
            config.arn, config.config_id, config.description, config.allowed,
            config.policy, self._now_iso(),
        )  # fmt: skip
        async with self._engine.begin() as conn:
            await conn.execute(
                update(code_signing_configs)
                .where(code_signing_configs.c.arn == config.arn)
                .values(
                    description=updated.description, allowed_arns=json.dumps(list(updated.allowed)),
                    policy=updated.policy.value, last_modified=updated.last_modified,
                )
            )  # fmt: skip
        self.configs[config.arn] = updated
        return updated

    async def delete(self, arn: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(code_signing_configs).where(code_signing_configs.c.arn == arn)
            )
        self.configs.pop(arn, None)

    async def bind(self, function: str, arn: str | None) -> None:
        """Give `function` the config `arn`, or (None) take its config away."""
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(function_code_signing).where(
                    function_code_signing.c.function_name == function
                )
            )
            if arn is not None:
                await conn.execute(
                    insert(function_code_signing).values(function_name=function, config_arn=arn)
                )
        if arn is None:
            self.bindings.pop(function, None)
        else:
            self.bindings[function] = arn
