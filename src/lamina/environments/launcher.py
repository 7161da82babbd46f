"""How an environment's process is started: argv, environment variables, folders.

The variables are Lambda's reserved ones (same names, same meanings), then the
function's own. Nothing of lamina's own process environment leaks in beyond PATH
and the locale: a function sees what a Lambda function sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lamina.environments.process import LaunchSpec
from lamina.environments.sandbox import Confinement, Sandbox
from lamina.functions.model import FunctionConfig

BOOTSTRAP = Path(__file__).resolve().parent.parent / "runtimes" / "python" / "bootstrap.py"


@dataclass(frozen=True, slots=True)
class HostFacts:
    """What the launcher needs to know about this lamina: passed down from settings."""

    region: str
    account_id: str
    endpoint: str  # AWS_ENDPOINT_URL: functions' own SDK calls reach lamina
    interpreters: Mapping[str, str]  # runtime -> python executable
    code_root: Path  # extracted packages, by code sha256
    run_root: Path  # per-environment scratch folders (the /tmp equivalent)
    path: str  # PATH given to functions
    # Libraries lamina lends every Python function, behind its own code on sys.path
    # (snapshot_restore_py, for SnapStart's runtime hooks).
    runtime_lib: Path | None = None
    # The sandbox environments start in (None or disabled: none).
    sandbox: Sandbox | None = None


def function_arn(region: str, account: str, name: str, qualifier: str | None = None) -> str:
    arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier else arn


def build_spec(
    config: FunctionConfig,
    env_id: str,
    runtime_api: str,
    facts: HostFacts,
    log_stream: str,
    initialization: str | None = None,
    egress: bool = True,
) -> LaunchSpec:
    """How to start one environment. The paths are the host's; a spawner that confines
    the environment shows them as the sandbox has them (`Confinement.inside`)."""
    task_root = facts.code_root / config.code_sha256
    tmp = facts.run_root / env_id / "tmp"
    env = {
        "PATH": facts.path,
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "TMPDIR": str(tmp),
        "TMP": str(tmp),
        "TEMP": str(tmp),
        "HOME": str(tmp),
        "_HANDLER": config.handler,
        "AWS_REGION": facts.region,
        "AWS_DEFAULT_REGION": facts.region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{config.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": config.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": config.version,
        "AWS_LAMBDA_INITIALIZATION_TYPE": initialization
        or ("snap-start" if config.snapshotted else "on-demand"),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_ENDPOINT_URL": facts.endpoint,
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDA_RUNTIME_DIR": str(BOOTSTRAP.parent),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if config.log_format == "JSON":
        env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
    env.update(config.environment)
    confinement = None
    if facts.sandbox is not None and facts.sandbox.enabled:
        confinement = Confinement(
            env_id=env_id,
            code_dir=task_root,
            run_dir=tmp.parent,
            memory_mb=config.memory_mb,
            tmp_mb=config.ephemeral_storage_mb,
            egress=egress,
            runtime_api=runtime_api,
        )
    else:
        # Its /tmp. A sandboxed one mounts a tmpfs of its own there instead: no folder
        # of the host's is made for it (two mkdirs off every new environment's start).
        tmp.mkdir(parents=True, exist_ok=True)
    if config.runtime.startswith("provided"):
        argv = (str(task_root / "bootstrap"),)
        return LaunchSpec(argv, env, str(task_root), tmp.parent, sandbox=confinement)
    if facts.runtime_lib is not None:
        env["LAMINA_LAYER_PATHS"] = str(facts.runtime_lib)
    python = facts.interpreters[config.runtime]
    # -s: no user site-packages, so the host's packages never shadow the function's.
    return LaunchSpec(
        argv=(python, "-s", str(BOOTSTRAP)),
        env=env,
        cwd=str(task_root),
        tmp_dir=tmp.parent,
        python=python,
        runtime_argv=(str(BOOTSTRAP),),
        sandbox=confinement,
    )
