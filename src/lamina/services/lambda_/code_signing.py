"""Lambda's code signing: the config operations, and the check every deployment passes.

    CreateCodeSigningConfig / Get / List / Update / DeleteCodeSigningConfig
    PutFunctionCodeSigningConfig / Get / DeleteFunctionCodeSigningConfig
    ListFunctionsByCodeSigningConfig

`CodeSigning.admit` runs at CreateFunction and UpdateFunctionCode for a function
with a config (see signing/verification.py for the checks):

    tampered or unverifiable signature   InvalidCodeSignatureException, in both modes
    unsigned, profile not allowed,       Enforce: CodeVerificationFailedException
      revoked or expired                 Warn: deployed, with a warning in lamina's log
                                         and in the function's log group
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from lamina.errors import LaminaError, ResourceConflict, ResourceNotFound
from lamina.functions.registry import FunctionRegistry
from lamina.functions.validation import parse_function_ref
from lamina.protocols.context import RequestContext
from lamina.services.lambda_.functions_api import _paginate
from lamina.services.lambda_.shapes import Shapes
from lamina.services.operations import Operation, Params
from lamina.signing.configs import (
    CodeSigningConfig,
    ConfigStore,
    UntrustedArtifactPolicy,
    check_publishers,
    parse_policy,
)
from lamina.signing.profiles import ProfileStore
from lamina.signing.verification import Finding, Verdict, verify_package

log = logging.getLogger("lamina.code_signing")
WARNING_STREAM = "lamina-code-signing"
# (log group, stream, [(timestamp ms, message)]): LogStore.append
AppendLog = Callable[[str, str, Sequence[tuple[int, str]]], None]


class CodeSigningConfigNotFound(LaminaError):
    code = "CodeSigningConfigNotFoundException"
    status = 404
    sender_fault = True


class CodeVerificationFailed(LaminaError):
    code = "CodeVerificationFailedException"
    status = 400
    sender_fault = True


class InvalidCodeSignature(LaminaError):
    code = "InvalidCodeSignatureException"
    status = 400
    sender_fault = True


def _config_out(config: CodeSigningConfig) -> Params:
    return {
        "CodeSigningConfigId": config.config_id,
        "CodeSigningConfigArn": config.arn,
        "Description": config.description,
        "AllowedPublishers": {"SigningProfileVersionArns": list(config.allowed)},
        "CodeSigningPolicies": {"UntrustedArtifactOnDeployment": config.policy.value},
        "LastModified": config.last_modified,
    }


class CodeSigning:
    def __init__(
        self,
        configs: ConfigStore,
        profiles: ProfileStore,
        registry: FunctionRegistry,
        shapes: Shapes,
        append_log: AppendLog | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._configs = configs
        self._profiles = profiles
        self._registry = registry
        self._shapes = shapes
        self._append_log = append_log
        self._clock = clock

    def operations(self) -> dict[str, Operation]:
        return {
            "CreateCodeSigningConfig": self.create_config,
            "GetCodeSigningConfig": self.get_config,
            "ListCodeSigningConfigs": self.list_configs,
            "UpdateCodeSigningConfig": self.update_config,
            "DeleteCodeSigningConfig": self.delete_config,
            "PutFunctionCodeSigningConfig": self.put_function_config,
            "GetFunctionCodeSigningConfig": self.get_function_config,
            "DeleteFunctionCodeSigningConfig": self.delete_function_config,
            "ListFunctionsByCodeSigningConfig": self.list_functions,
        }

    # -- the deployment check ---------------------------------------------------------

    async def admit(
        self, function: str, zip_file: bytes, config_arn: str | None, creating: bool
    ) -> None:
        """Refuse `zip_file` for `function` if its config says so.

        Creating, the config is the request's CodeSigningConfigArn (a config bound to a
        deleted function of the same name does not apply); updating, the function's.
        """
        arn = config_arn if creating else self._configs.bindings.get(function)
        if not arn:
            return
        config = self._configs.configs.get(arn)
        if config is None:
            if creating:
                raise CodeSigningConfigNotFound(
                    f"The code signing configuration {arn} does not exist."
                )
            return  # cannot happen: a config in use cannot be deleted
        verdict = await asyncio.to_thread(
            verify_package, zip_file, self._profiles.version, config.allowed, self._clock()
        )
        self._judge(function, config, verdict)

    def _judge(self, function: str, config: CodeSigningConfig, verdict: Verdict) -> None:
        if verdict.finding is Finding.VALID:
            return
        if verdict.finding is Finding.INTEGRITY:
            raise InvalidCodeSignature(
                f"Lambda cannot deploy the function {function}: the code signature failed the "
                f"integrity check. {verdict.reason}"
            )
        if config.policy is UntrustedArtifactPolicy.ENFORCE:
            raise CodeVerificationFailed(
                f"Lambda cannot deploy the function {function}: the code signature failed "
                f"verification ({verdict.finding.value}) and {config.arn} enforces signing. "
                f"{verdict.reason}"
            )
        message = (
            f"WARNING code signing: deployed {function} although its code failed verification "
            f"({verdict.finding.value}); {config.arn} is in Warn mode. {verdict.reason}"
        )
        log.warning("%s", message)
        if self._append_log is not None:
            self._append_log(
                f"/aws/lambda/{function}", WARNING_STREAM, [(int(self._clock() * 1000), message)]
            )

    async def created(self, function: str, config_arn: str | None) -> None:
        """After CreateFunction: bind its config, or drop a stale one left by its name."""
        if config_arn or function in self._configs.bindings:
            await self._configs.bind(function, config_arn or None)

    # -- configs ----------------------------------------------------------------------

    def _config(self, arn: str) -> CodeSigningConfig:
        config = self._configs.configs.get(arn)
        if config is None:
            raise ResourceNotFound(f"The code signing configuration {arn} does not exist.")
        return config

    def _bound_functions(self, arn: str) -> list[str]:
        names = set(self._registry.names())
        return sorted(
            f for f, bound in self._configs.bindings.items() if bound == arn and f in names
        )

    async def create_config(self, p: Params, ctx: RequestContext) -> Params:
        allowed = check_publishers(
            (p.get("AllowedPublishers") or {}).get("SigningProfileVersionArns") or []
        )
        policy = parse_policy(
            (p.get("CodeSigningPolicies") or {}).get("UntrustedArtifactOnDeployment")
        )
        config = await self._configs.create(p.get("Description", ""), allowed, policy)
        return {"CodeSigningConfig": _config_out(config)}

    async def get_config(self, p: Params, ctx: RequestContext) -> Params:
        return {"CodeSigningConfig": _config_out(self._config(p["CodeSigningConfigArn"]))}

    async def list_configs(self, p: Params, ctx: RequestContext) -> Params:
        configs = sorted(self._configs.configs.values(), key=lambda c: c.arn)
        page, marker = _paginate(configs, p)
        out: Params = {"CodeSigningConfigs": [_config_out(c) for c in page]}
        if marker:
            out["NextMarker"] = marker
        return out

    async def update_config(self, p: Params, ctx: RequestContext) -> Params:
        config = self._config(p["CodeSigningConfigArn"])
        changes: dict[str, Any] = {}
        if "Description" in p:
            changes["description"] = p["Description"]
        if "AllowedPublishers" in p:
            changes["allowed"] = check_publishers(
                p["AllowedPublishers"].get("SigningProfileVersionArns") or []
            )
        if "CodeSigningPolicies" in p:
            changes["policy"] = parse_policy(
                p["CodeSigningPolicies"].get("UntrustedArtifactOnDeployment")
            )
        updated = await self._configs.update(replace(config, **changes))
        return {"CodeSigningConfig": _config_out(updated)}

    async def delete_config(self, p: Params, ctx: RequestContext) -> Params:
        arn = p["CodeSigningConfigArn"]
        self._config(arn)
        users = self._bound_functions(arn)
        if users:
            raise ResourceConflict(
                f"The code signing configuration cannot be deleted because it is used by "
                f"{len(users)} function(s): {', '.join(users[:5])}."
            )
        for stale in [f for f, bound in self._configs.bindings.items() if bound == arn]:
            await self._configs.bind(stale, None)
        await self._configs.delete(arn)
        return {}

    # -- functions --------------------------------------------------------------------

    def _function(self, p: Params) -> str:
        name = parse_function_ref(p["FunctionName"]).name
        self._registry.get(name)  # 404 for an unknown function
        return name

    async def put_function_config(self, p: Params, ctx: RequestContext) -> Params:
        name = self._function(p)
        arn = p["CodeSigningConfigArn"]
        if arn not in self._configs.configs:
            raise CodeSigningConfigNotFound(f"The code signing configuration {arn} does not exist.")
        await self._configs.bind(name, arn)
        return {"CodeSigningConfigArn": arn, "FunctionName": name}

    async def get_function_config(self, p: Params, ctx: RequestContext) -> Params:
        name = self._function(p)
        return {"CodeSigningConfigArn": self._configs.bindings.get(name, ""), "FunctionName": name}

    async def delete_function_config(self, p: Params, ctx: RequestContext) -> Params:
        name = self._function(p)
        await self._configs.bind(name, None)
        return {}

    async def list_functions(self, p: Params, ctx: RequestContext) -> Params:
        arn = p["CodeSigningConfigArn"]
        self._config(arn)
        page, marker = _paginate(self._bound_functions(arn), p)
        out: Params = {"FunctionArns": [self._shapes.arn(name) for name in page]}
        if marker:
            out["NextMarker"] = marker
        return out
