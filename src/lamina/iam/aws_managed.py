"""The few AWS managed policies that Lambda set-ups attach by ARN.

Scripts and templates written for AWS attach these (`AWSLambdaBasicExecutionRole`
above all) without creating them; lamina provides them read-only under their real
ARNs so such scripts work unchanged.
"""

from __future__ import annotations

import json

from lamina.iam.model import ManagedPolicy

AWS_POLICY_PREFIX = "arn:aws:iam::aws:policy/"


def _document(*statements: dict[str, object]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def aws_managed_policies() -> dict[str, ManagedPolicy]:
    """ARN -> policy, built on each call (callers keep the result)."""
    logs = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
    entries = {
        "AdministratorAccess": (
            "/",
            _document({"Effect": "Allow", "Action": "*", "Resource": "*"}),
        ),
        "service-role/AWSLambdaBasicExecutionRole": (
            "/service-role/",
            _document({"Effect": "Allow", "Action": logs, "Resource": "*"}),
        ),
        "AWSLambda_FullAccess": (
            "/",
            _document({"Effect": "Allow", "Action": ["lambda:*", "logs:*"], "Resource": "*"}),
        ),
        "service-role/AWSLambdaRole": (
            "/service-role/",
            _document({"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "*"}),
        ),
    }
    out: dict[str, ManagedPolicy] = {}
    for path_name, (path, document) in entries.items():
        name = path_name.rsplit("/", 1)[-1]
        arn = AWS_POLICY_PREFIX + path_name
        out[arn] = ManagedPolicy(
            arn=arn,
            name=name,
            policy_id="ANPA" + name.upper().replace("_", "")[:17].ljust(17, "X"),
            path=path,
            description=f"AWS managed policy {name}",
            document=document,
            default_version_id="v1",
            created=0.0,
            updated=0.0,
        )
    return out
