"""FunctionName parsing and the limits Lambda puts on handlers, sizes and variables."""

from __future__ import annotations

import pytest

from lamina.errors import InvalidParameterValue, ValidationError
from lamina.functions.validation import (
    ENV_MAX_BYTES,
    RESERVED_ENV_KEYS,
    FunctionRef,
    parse_function_ref,
    validate_alias_name,
    validate_environment,
    validate_handler,
    validate_limits,
)

ARN = "arn:aws:lambda:us-east-1:123456789012:function"

# ---------------------------------------------------------- parse_function_ref


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("my-function", FunctionRef("my-function", None)),
        ("my_function_2", FunctionRef("my_function_2", None)),
        ("my-function:prod", FunctionRef("my-function", "prod")),
        ("my-function:7", FunctionRef("my-function", "7")),
        ("my-function:$LATEST", FunctionRef("my-function", "$LATEST")),
        ("123456789012:function:my-function", FunctionRef("my-function", None)),
        ("123456789012:function:my-function:prod", FunctionRef("my-function", "prod")),
        (f"{ARN}:my-function", FunctionRef("my-function", None)),
        (f"{ARN}:my-function:3", FunctionRef("my-function", "3")),
        (f"{ARN}:my-function:$LATEST", FunctionRef("my-function", "$LATEST")),
        ("arn:aws-cn:lambda:cn-north-1:123456789012:function:fn", FunctionRef("fn", None)),
        ("arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:fn:v", FunctionRef("fn", "v")),
        ("f" * 64, FunctionRef("f" * 64, None)),
    ],
)
def test_names_partial_arns_and_arns_parse(raw: str, expected: FunctionRef) -> None:
    assert parse_function_ref(raw) == expected


def test_separate_qualifier_is_used_when_the_name_has_none() -> None:
    assert parse_function_ref("fn", "prod") == FunctionRef("fn", "prod")
    assert parse_function_ref(f"{ARN}:fn", "2") == FunctionRef("fn", "2")


def test_same_qualifier_twice_is_fine() -> None:
    assert parse_function_ref("fn:prod", "prod") == FunctionRef("fn", "prod")


def test_empty_qualifier_means_none() -> None:
    assert parse_function_ref("fn", "") == FunctionRef("fn", None)


@pytest.mark.parametrize(("raw", "qualifier"), [("fn:prod", "dev"), (f"{ARN}:fn:1", "2")])
def test_qualifier_mismatch_is_invalid_parameter(raw: str, qualifier: str) -> None:
    with pytest.raises(InvalidParameterValue, match="does not match the specified qualifier"):
        parse_function_ref(raw, qualifier)


@pytest.mark.parametrize(
    "raw",
    ["", "my function", "my.function", "my/function", "fn:", "fn:a:b", "näme", "fn*"],
)
def test_bad_characters_fail_the_name_pattern(raw: str) -> None:
    with pytest.raises(ValidationError, match="functionName") as caught:
        parse_function_ref(raw)
    assert caught.value.code == "ValidationException"
    assert "failed to satisfy constraint: Member must satisfy regular expression" in str(
        caught.value
    )


def test_name_over_64_characters_fails_the_length_constraint() -> None:
    with pytest.raises(ValidationError, match="length less than or equal to 64"):
        parse_function_ref("f" * 65)
    with pytest.raises(ValidationError, match="length less than or equal to 64"):
        parse_function_ref(f"{ARN}:{'f' * 65}:prod")


@pytest.mark.parametrize("qualifier", ["bad.q", "has space", "q" * 129, "$latest!"])
def test_bad_qualifiers_are_refused(qualifier: str) -> None:
    with pytest.raises(ValidationError, match="qualifier"):
        parse_function_ref("fn", qualifier)


@pytest.mark.parametrize("name", ["prod", "v1", "blue-green_2", "1a"])
def test_alias_names(name: str) -> None:
    validate_alias_name(name)


@pytest.mark.parametrize("name", ["1", "123", "$LATEST", "a.b", "", "a" * 129])
def test_bad_alias_names(name: str) -> None:
    with pytest.raises(ValidationError):
        validate_alias_name(name)


# --------------------------------------------------------------- handlers


@pytest.mark.parametrize(
    "handler", ["app.handler", "src/app.handler", "pkg.module.handle_event", "a._private2"]
)
def test_python_handler_is_module_dot_function(handler: str) -> None:
    validate_handler(handler, "python3.12")


@pytest.mark.parametrize("handler", ["app", "app.", ".handler", "app.1handler", "app.han-dler"])
def test_malformed_python_handler_is_invalid_parameter(handler: str) -> None:
    with pytest.raises(InvalidParameterValue, match=r"module\.function"):
        validate_handler(handler, "python3.11")


@pytest.mark.parametrize("handler", ["bootstrap", "anything", "x", "not.a.python-handler!"])
def test_provided_runtimes_take_any_handler_without_spaces(handler: str) -> None:
    validate_handler(handler, "provided.al2023")


@pytest.mark.parametrize("runtime", ["python3.12", "provided.al2"])
@pytest.mark.parametrize("handler", ["", "app handler", "app.handler\n", "\tx", "h" * 129])
def test_empty_spaced_or_long_handlers_fail_the_pattern(handler: str, runtime: str) -> None:
    with pytest.raises(ValidationError, match="handler"):
        validate_handler(handler, runtime)


# ----------------------------------------------------------------- limits


@pytest.mark.parametrize(
    ("memory", "timeout", "ephemeral"),
    [(128, 1, 512), (10240, 900, 10240), (1769, 30, 2048)],
)
def test_limits_within_bounds(memory: int, timeout: int, ephemeral: int) -> None:
    validate_limits(memory, timeout, ephemeral)


@pytest.mark.parametrize(
    ("memory", "timeout", "message"),
    [
        (127, 3, "Value '127' at 'memorySize' .* greater than or equal to 128"),
        (10241, 3, "Value '10241' at 'memorySize' .* less than or equal to 10240"),
        (128, 0, "Value '0' at 'timeout' .* greater than or equal to 1"),
        (128, 901, "Value '901' at 'timeout' .* less than or equal to 900"),
    ],
)
def test_memory_and_timeout_out_of_bounds(memory: int, timeout: int, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        validate_limits(memory, timeout, 512)


@pytest.mark.parametrize("ephemeral", [511, 10241, 0])
def test_ephemeral_storage_out_of_bounds(ephemeral: int) -> None:
    with pytest.raises(InvalidParameterValue, match=f"{ephemeral} MB is out of range"):
        validate_limits(128, 3, ephemeral)


# ------------------------------------------------------------- environment


def test_ordinary_variables_are_fine() -> None:
    validate_environment({"A": "1", "TABLE_NAME": "t", "aws_region_lower": "ok", "x1_": ""})
    validate_environment({})


@pytest.mark.parametrize("key", sorted(RESERVED_ENV_KEYS))
def test_each_reserved_key_is_refused(key: str) -> None:
    with pytest.raises(InvalidParameterValue, match=f"Reserved keys used in this request: {key}$"):
        validate_environment({"MINE": "ok", key: "x"})


def test_reserved_keys_are_listed_sorted() -> None:
    with pytest.raises(InvalidParameterValue, match=r"request: AWS_REGION, _HANDLER$"):
        validate_environment({"_HANDLER": "x", "AWS_REGION": "y"})


@pytest.mark.parametrize("key", ["1ABC", "_LEADING", "has-dash", "has space", "ü"])
def test_keys_must_start_with_a_letter(key: str) -> None:
    with pytest.raises(ValidationError, match=r"environment\.variables"):
        validate_environment({key: "x"})


def test_environment_is_limited_to_4_kb_of_keys_and_values() -> None:
    validate_environment({"A": "x" * (ENV_MAX_BYTES - 1)})  # exactly 4096 bytes
    with pytest.raises(InvalidParameterValue, match=r"exceeded the 4KB limit.*4097 bytes"):
        validate_environment({"A": "x" * ENV_MAX_BYTES})


def test_environment_size_counts_utf8_bytes_across_all_variables() -> None:
    validate_environment({"K1": "é" * 1023, "K2": "y" * 2046})  # 2 + 2046 + 2 + 2046
    with pytest.raises(InvalidParameterValue, match="4097 bytes"):
        validate_environment({"K1": "é" * 1023, "K2": "y" * 2047})
