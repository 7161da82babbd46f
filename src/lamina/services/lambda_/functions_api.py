"""Lambda control-plane operations: functions, versions, aliases, concurrency, configs."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from lamina.environments.provisioned import FleetState
from lamina.errors import InvalidParameterValue
from lamina.functions import package as packages
from lamina.functions.aliases import FunctionSettings
from lamina.functions.model import LATEST, FunctionConfig
from lamina.functions.registry import FunctionRegistry
from lamina.functions.validation import (
    parse_function_ref,
    validate_environment,
    validate_handler,
    validate_limits,
)
from lamina.protocols.context import RequestContext
from lamina.services.lambda_.shapes import Shapes
from lamina.services.operations import Operation

Params = dict[str, Any]
PAGE_DEFAULT, PAGE_MAX = 50, 10000


class CodeGate(Protocol):
    """Code signing's check of a package before it deploys (code_signing.py)."""

    async def admit(
        self, function: str, zip_file: bytes, config_arn: str | None, creating: bool
    ) -> None: ...

    async def created(self, function: str, config_arn: str | None) -> None: ...


def _marker_encode(position: int) -> str:
    return base64.urlsafe_b64encode(str(position).encode()).decode()


def _paginate(items: list[Any], params: Params) -> tuple[list[Any], str | None]:
    start = 0
    marker = params.get("Marker")
    if marker:
        try:
            start = int(base64.urlsafe_b64decode(marker.encode()).decode())
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidParameterValue(
                f"Invalid Marker {marker!r}: pass the NextMarker of the previous page."
            ) from exc
    size = params.get("MaxItems") or PAGE_DEFAULT
    if not 1 <= size <= PAGE_MAX:
        raise InvalidParameterValue(f"MaxItems must be between 1 and {PAGE_MAX}.")
    page = items[start : start + size]
    more = start + size < len(items)
    return page, _marker_encode(start + size) if more else None


def _vpc(p: Params) -> dict[str, tuple[str, ...]]:
    vpc = p.get("VpcConfig") or {}
    return {
        "vpc_subnets": tuple(vpc.get("SubnetIds") or ()),
        "vpc_security_groups": tuple(vpc.get("SecurityGroupIds") or ()),
    }


def _snap_start(p: Params, runtime: str) -> str | None:
    """SnapStart.ApplyOn from a request, or None when the request does not set it."""
    apply_on = (p.get("SnapStart") or {}).get("ApplyOn")
    if apply_on is None:
        return None
    if apply_on not in ("PublishedVersions", "None"):
        raise InvalidParameterValue(f"SnapStart ApplyOn {apply_on!r} is invalid: use PublishedVersions or None.")
    if apply_on == "PublishedVersions" and not runtime.startswith("python"):
        raise InvalidParameterValue(f"SnapStart is not supported for runtime {runtime}: use a python3.x runtime.")
    return str(apply_on)


class FunctionsApi:
    def __init__(
        self,
        registry: FunctionRegistry,
        settings: FunctionSettings,
        shapes: Shapes,
        runtimes: Callable[[], Mapping[str, str]],
        code_location: Callable[[FunctionConfig], str],
        fleet_state: Callable[[str, str], FleetState | None] = lambda _f, _q: None,
        role_check: Callable[[str], Awaitable[None]] | None = None,
        may_decrypt: Callable[[RequestContext, str], Awaitable[bool]] | None = None,
        code_gate: CodeGate | None = None,
    ) -> None:
        self._code_gate = code_gate
        self._fleet_state = fleet_state
        self._role_check = role_check
        self._may_decrypt = may_decrypt
        self._registry = registry
        self._settings = settings
        self._shapes = shapes
        self._runtimes = runtimes
        self._code_location = code_location

    def operations(self) -> dict[str, Operation]:
        return {
            "CreateFunction": self.create_function,
            "GetFunction": self.get_function,
            "GetFunctionConfiguration": self.get_function_configuration,
            "ListFunctions": self.list_functions,
            "UpdateFunctionCode": self.update_function_code,
            "UpdateFunctionConfiguration": self.update_function_configuration,
            "DeleteFunction": self.delete_function,
            "PublishVersion": self.publish_version,
            "ListVersionsByFunction": self.list_versions,
            "CreateAlias": self.create_alias,
            "GetAlias": self.get_alias,
            "UpdateAlias": self.update_alias,
            "DeleteAlias": self.delete_alias,
            "ListAliases": self.list_aliases,
            "PutFunctionConcurrency": self.put_concurrency,
            "GetFunctionConcurrency": self.get_concurrency,
            "DeleteFunctionConcurrency": self.delete_concurrency,
            "PutFunctionEventInvokeConfig": self.put_invoke_config,
            "UpdateFunctionEventInvokeConfig": self.update_invoke_config,
            "GetFunctionEventInvokeConfig": self.get_invoke_config,
            "DeleteFunctionEventInvokeConfig": self.delete_invoke_config,
            "PutProvisionedConcurrencyConfig": self.put_provisioned,
            "GetProvisionedConcurrencyConfig": self.get_provisioned,
            "DeleteProvisionedConcurrencyConfig": self.delete_provisioned,
            "ListProvisionedConcurrencyConfigs": self.list_provisioned,
        }

    # --------------------------------------------------------------- functions

    def _check_runtime(self, runtime: str) -> None:
        available = self._runtimes()
        if runtime not in available:
            raise InvalidParameterValue(
                f"The runtime parameter of {runtime} is not supported on this lamina server. "
                f"Available runtimes: {', '.join(available)}."
            )

    async def _check_role(self, role: str) -> None:
        """The execution role must exist and trust lambda.amazonaws.com (when IAM is on)."""
        if self._role_check is not None:
            await self._role_check(role)

    def _package(self, zip_file: bytes | None) -> packages.CodePackage:
        if not zip_file:
            raise InvalidParameterValue(
                "Code.ZipFile is required: upload the function's code as a zip "
                "(S3Bucket/S3Key and ImageUri are not supported yet)."
            )
        return packages.inspect(zip_file)

    async def create_function(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"])
        if ref.qualifier is not None:
            raise InvalidParameterValue(
                "FunctionName must not carry a qualifier when creating a function."
            )
        if p.get("PackageType", "Zip") != "Zip":
            raise InvalidParameterValue("PackageType Image is not supported yet: use Zip.")
        runtime = p.get("Runtime")
        handler = p.get("Handler")
        if not runtime or not handler:
            raise InvalidParameterValue("Runtime and Handler are required for a Zip package.")
        self._check_runtime(runtime)
        validate_handler(handler, runtime)
        memory = p.get("MemorySize", 128)
        timeout = p.get("Timeout", 3)
        ephemeral = (p.get("EphemeralStorage") or {}).get("Size", 512)
        validate_limits(memory, timeout, ephemeral)
        variables = (p.get("Environment") or {}).get("Variables") or {}
        validate_environment(variables)
        package = self._package((p.get("Code") or {}).get("ZipFile"))
        config = FunctionConfig(
            name=ref.name,
            version=LATEST,
            runtime=runtime,
            handler=handler,
            role=p["Role"],
            code_sha256="",
            code_size=0,
            revision_id="",
            last_modified="",
            memory_mb=memory,
            timeout_s=timeout,
            ephemeral_storage_mb=ephemeral,
            description=p.get("Description", ""),
            environment=dict(variables),
            architectures=tuple(p.get("Architectures") or ("x86_64",)),
            tracing_mode=(p.get("TracingConfig") or {}).get("Mode", "PassThrough"),
            log_format=(p.get("LoggingConfig") or {}).get("LogFormat", "Text"),
            snap_start=_snap_start(p, runtime) or "None",
            kms_key_arn=p.get("KMSKeyArn") or "",
            vpc_subnets=_vpc(p)["vpc_subnets"],
            vpc_security_groups=_vpc(p)["vpc_security_groups"],
        )
        await self._check_role(config.role)
        signing_config = p.get("CodeSigningConfigArn")
        if self._code_gate is not None:
            await self._code_gate.admit(ref.name, package.data, signing_config, creating=True)
        created = await self._registry.create(config, package, bool(p.get("Publish")))
        if self._code_gate is not None:
            await self._code_gate.created(ref.name, signing_config)
        return self._shapes.configuration(created)

    def _config(self, p: Params) -> FunctionConfig:
        ref = parse_function_ref(p["FunctionName"], p.get("Qualifier"))
        return self._registry.config(ref.name, ref.qualifier)

    async def get_function(self, p: Params, ctx: RequestContext) -> Params:
        config = self._config(p)
        fn = self._registry.get(config.name)
        out: Params = {
            "Configuration": await self._render(config, ctx),
            "Code": {"RepositoryType": "S3", "Location": self._code_location(config)},
        }
        if fn.reserved_concurrency is not None:
            out["Concurrency"] = {"ReservedConcurrentExecutions": fn.reserved_concurrency}
        return out

    async def get_function_configuration(self, p: Params, ctx: RequestContext) -> Params:
        return await self._render(self._config(p), ctx)

    async def _render(self, config: FunctionConfig, ctx: RequestContext) -> Params:
        """A configuration as this caller may see it: variables sealed with a customer KMS
        key are shown only to callers allowed kms:Decrypt on it, as Lambda does."""
        out = self._shapes.configuration(config)
        sealed = bool(config.kms_key_arn and config.environment)
        if sealed and self._may_decrypt and not await self._may_decrypt(ctx, config.kms_key_arn):
            out["Environment"] = {
                "Error": {
                    "ErrorCode": "AccessDeniedException",
                    "Message": "Lambda was unable to decrypt the environment variables "
                    "because KMS access was denied: the caller is not allowed "
                    f"kms:Decrypt on {config.kms_key_arn}.",
                }
            }
        return out

    async def list_functions(self, p: Params, ctx: RequestContext) -> Params:
        everything = p.get("FunctionVersion") == "ALL"
        configs: list[FunctionConfig] = []
        for name in self._registry.names():
            fn = self._registry.get(name)
            configs.append(fn.latest)
            if everything:
                configs.extend(fn.versions[v] for v in sorted(fn.versions, key=int))
        page, marker = _paginate(configs, p)
        out: Params = {"Functions": [await self._render(c, ctx) for c in page]}
        if marker:
            out["NextMarker"] = marker
        return out

    async def update_function_code(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"])
        package = self._package(p.get("ZipFile"))
        if self._code_gate is not None:
            await self._code_gate.admit(ref.name, package.data, None, creating=False)
        if p.get("DryRun"):
            return self._shapes.configuration(self._registry.get(ref.name).latest)
        updated = await self._registry.update_code(
            ref.name, package, bool(p.get("Publish")), p.get("RevisionId")
        )
        return self._shapes.configuration(updated)

    async def update_function_configuration(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"])
        current = self._registry.get(ref.name).latest
        changes: dict[str, Any] = {}
        simple = {"Role": "role", "Handler": "handler", "Description": "description",
                  "Timeout": "timeout_s", "MemorySize": "memory_mb", "Runtime": "runtime",
                  "KMSKeyArn": "kms_key_arn"}  # fmt: skip
        for member, field in simple.items():
            if member in p:
                changes[field] = p[member]
        if "Environment" in p:
            variables = (p["Environment"] or {}).get("Variables") or {}
            validate_environment(variables)
            changes["environment"] = dict(variables)
        if "VpcConfig" in p:
            changes.update(_vpc(p))
        if "EphemeralStorage" in p:
            changes["ephemeral_storage_mb"] = p["EphemeralStorage"]["Size"]
        if "TracingConfig" in p:
            changes["tracing_mode"] = p["TracingConfig"].get("Mode", "PassThrough")
        if "LoggingConfig" in p and "LogFormat" in p["LoggingConfig"]:
            changes["log_format"] = p["LoggingConfig"]["LogFormat"]
        if "role" in changes and changes["role"] != current.role:
            await self._check_role(changes["role"])
        runtime = changes.get("runtime", current.runtime)
        snap_start = _snap_start(p, runtime)
        if snap_start is not None:
            changes["snap_start"] = snap_start
        if "runtime" in changes:
            self._check_runtime(runtime)
        validate_handler(changes.get("handler", current.handler), runtime)
        validate_limits(
            changes.get("memory_mb", current.memory_mb),
            changes.get("timeout_s", current.timeout_s),
            changes.get("ephemeral_storage_mb", current.ephemeral_storage_mb),
        )
        updated = await self._registry.update_config(ref.name, changes, p.get("RevisionId"))
        return self._shapes.configuration(updated)

    async def delete_function(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"], p.get("Qualifier"))
        await self._registry.delete(ref.name, ref.qualifier)
        return {"StatusCode": 204}

    # ---------------------------------------------------------------- versions

    async def publish_version(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"])
        version = await self._registry.publish(
            ref.name, p.get("Description", ""), p.get("CodeSha256"), p.get("RevisionId")
        )
        return self._shapes.configuration(version)

    async def list_versions(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"])
        fn = self._registry.get(ref.name)
        configs = [fn.latest] + [fn.versions[v] for v in sorted(fn.versions, key=int)]
        page, marker = _paginate(configs, p)
        out: Params = {"Versions": [self._shapes.configuration(c) for c in page]}
        if marker:
            out["NextMarker"] = marker
        return out

    # ----------------------------------------------------------------- aliases

    @staticmethod
    def _weights(p: Params) -> dict[str, float] | None:
        routing = p.get("RoutingConfig")
        if routing is None:
            return None
        return {k: float(v) for k, v in (routing.get("AdditionalVersionWeights") or {}).items()}

    async def create_alias(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"])
        alias = await self._settings.create_alias(
            ref.name,
            p["Name"],
            p["FunctionVersion"],
            p.get("Description", ""),
            self._weights(p) or {},
        )
        return self._shapes.alias(alias)

    async def get_alias(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"])
        return self._shapes.alias(self._settings.get_alias(ref.name, p["Name"]))

    async def update_alias(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"])
        alias = await self._settings.update_alias(
            ref.name, p["Name"], p.get("FunctionVersion"), p.get("Description"),
            self._weights(p), p.get("RevisionId"),
        )  # fmt: skip
        return self._shapes.alias(alias)

    async def delete_alias(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"])
        await self._settings.delete_alias(ref.name, p["Name"])
        return {}

    async def list_aliases(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"])
        aliases = sorted(self._registry.get(ref.name).aliases.values(), key=lambda a: a.name)
        if p.get("FunctionVersion"):
            aliases = [a for a in aliases if a.version == p["FunctionVersion"]]
        page, marker = _paginate(aliases, p)
        out: Params = {"Aliases": [self._shapes.alias(a) for a in page]}
        if marker:
            out["NextMarker"] = marker
        return out

    # ------------------------------------------------------------- concurrency

    async def put_concurrency(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"])
        count = p["ReservedConcurrentExecutions"]
        if count < 0:
            raise InvalidParameterValue("ReservedConcurrentExecutions must be 0 or more.")
        await self._settings.put_concurrency(ref.name, count)
        return {"ReservedConcurrentExecutions": count}

    async def get_concurrency(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"])
        count = self._registry.get(ref.name).reserved_concurrency
        return {} if count is None else {"ReservedConcurrentExecutions": count}

    async def delete_concurrency(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"])
        await self._settings.delete_concurrency(ref.name)
        return {}

    # ------------------------------------------------------ event invoke config

    async def _put_invoke_config(self, p: Params, merge: bool) -> Params:
        ref = parse_function_ref(p["FunctionName"], p.get("Qualifier"))
        retries = p.get("MaximumRetryAttempts")
        age = p.get("MaximumEventAgeInSeconds")
        if retries is not None and not 0 <= retries <= 2:
            raise InvalidParameterValue("MaximumRetryAttempts must be between 0 and 2.")
        if age is not None and not 60 <= age <= 21600:
            raise InvalidParameterValue("MaximumEventAgeInSeconds must be between 60 and 21600.")
        destinations = None
        if "DestinationConfig" in p:
            destinations = {
                kind: spec["Destination"]
                for kind, spec in (p["DestinationConfig"] or {}).items()
                if spec and spec.get("Destination")
            }
        key, config = await self._settings.put_invoke_config(
            ref.name, ref.qualifier, retries, age, destinations, merge
        )
        return self._shapes.invoke_config(ref.name, key, config)

    async def put_invoke_config(self, p: Params, ctx: RequestContext) -> Params:
        return await self._put_invoke_config(p, merge=False)

    async def update_invoke_config(self, p: Params, ctx: RequestContext) -> Params:
        return await self._put_invoke_config(p, merge=True)

    async def get_invoke_config(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"], p.get("Qualifier"))
        key, config = self._settings.get_invoke_config(ref.name, ref.qualifier)
        return self._shapes.invoke_config(ref.name, key, config)

    async def delete_invoke_config(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"], p.get("Qualifier"))
        await self._settings.delete_invoke_config(ref.name, ref.qualifier)
        return {}

    # --------------------------------------------------- provisioned concurrency

    def _provisioned_shape(self, name: str, qualifier: str, arn: bool = False) -> Params:
        config = self._settings.get_provisioned(name, qualifier)
        state = self._fleet_state(name, qualifier)
        out: Params = {
            "RequestedProvisionedConcurrentExecutions": config.requested,
            "AllocatedProvisionedConcurrentExecutions": state.allocated if state else 0,
            "AvailableProvisionedConcurrentExecutions": state.available if state else 0,
            "Status": state.status.value if state else "IN_PROGRESS",
            "LastModified": config.last_modified,
        }
        if state is not None and state.reason:
            out["StatusReason"] = state.reason
        if arn:
            out["FunctionArn"] = self._shapes.arn(name, qualifier)
        return out

    async def put_provisioned(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"], p.get("Qualifier"))
        await self._settings.put_provisioned(
            ref.name, ref.qualifier, p["ProvisionedConcurrentExecutions"]
        )
        return self._provisioned_shape(ref.name, ref.qualifier or "")

    async def get_provisioned(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"], p.get("Qualifier"))
        return self._provisioned_shape(ref.name, ref.qualifier or "")

    async def delete_provisioned(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"], p.get("Qualifier"))
        await self._settings.delete_provisioned(ref.name, ref.qualifier)
        return {}

    async def list_provisioned(self, p: Params, ctx: RequestContext) -> Params:
        ref = parse_function_ref(p["FunctionName"])
        qualifiers = sorted(self._registry.get(ref.name).provisioned)
        page, marker = _paginate(qualifiers, p)
        out: Params = {
            "ProvisionedConcurrencyConfigs": [
                self._provisioned_shape(ref.name, q, arn=True) for q in page
            ]
        }
        if marker:
            out["NextMarker"] = marker
        return out
