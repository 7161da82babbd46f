"""AWS Signature Version 4 verification of incoming requests.

Two forms, as AWS accepts them:
- header: `Authorization: AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/lambda/
  aws4_request, SignedHeaders=host;x-amz-date, Signature=<hex>` with `X-Amz-Date`
  (or `Date`);
- presigned URL: `X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`,
  `X-Amz-SignedHeaders`, `X-Amz-Signature` in the query string.

We rebuild the canonical request from the request as it arrived and recompute the
signature. The canonical URI is the raw path as sent: for every service but S3 it
is normalised (dot segments, repeated slashes) and URI-encoded once more, exactly as
botocore signs it (so `%3A` in a label becomes `%253A`); S3 signs the path as is.
Errors carry the codes and messages AWS returns, so clients report them the same way.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote

from lamina.errors import LaminaError

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_AMZ_DATE_FORM = re.compile(
    r"^\d{4}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3])[0-5]\d[0-5]\dZ$"
)
_MAX_SKEW_SECONDS = 15 * 60
_PLAIN_PATH = re.compile(r"^[A-Za-z0-9/\-._~]*$")
_PLAIN_QUERY_PART = re.compile(r"^[A-Za-z0-9\-._~]*$")
_MAX_PRESIGN_EXPIRES = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class SigV4Identity:
    access_key_id: str
    region: str
    service: str  # the signing name from the credential scope: "lambda", "logs", ...
    session_token: str | None


class SigV4Error(LaminaError):
    """A refused signature. `service` is the scope's service when the request named one,
    so the router can answer in that service's protocol."""

    status = 403
    sender_fault = True

    def __init__(self, code: str, message: str, service: str | None = None) -> None:
        super().__init__(message, code=code)
        self.service = service


def _missing_token() -> SigV4Error:
    return SigV4Error("MissingAuthenticationTokenException", "Missing Authentication Token")


@dataclass(frozen=True, slots=True)
class _Signed:
    """What the request claims: the parts of its signature, before we check them."""

    access_key_id: str
    date: str  # YYYYMMDD from the credential scope
    region: str
    service: str
    amz_date: str  # YYYYMMDDTHHMMSSZ the request was signed at
    signed_headers: str
    signature: str
    session_token: str | None
    expires: int | None  # presigned URLs only


class SigV4Verifier:
    """Verifies SigV4 requests against secrets from `lookup_secret` (access key -> secret)."""

    def __init__(
        self,
        lookup_secret: Callable[[str], str | None],
        clock: Callable[[], float] = time.time,
        *,
        key_cache_size: int = 1024,
    ) -> None:
        self._lookup_secret = lookup_secret
        self._clock = clock
        # Deriving a signing key is four HMACs; clients reuse one per day, so cache it.
        self._keys: dict[tuple[str, str, str, str], bytes] = {}
        self._key_cache_size = key_cache_size

    def verify(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
    ) -> SigV4Identity:
        """Check one request; `path` and `query_string` are raw, as sent on the wire."""
        header_values: dict[str, list[str]] = {}
        for name, value in headers:
            name = name.lower()
            if name in header_values:
                header_values[name].append(value)
            else:
                header_values[name] = [value]
        pairs = [_split_pair(p) for p in query_string.split("&") if p] if query_string else []
        query = {unquote(k): unquote(v) for k, v in pairs}

        presigned = "X-Amz-Algorithm" in query and "authorization" not in header_values
        signed = (
            _from_query(query)
            if presigned
            else _from_header(header_values.get("authorization", [""])[0], header_values)
        )
        secret = self._lookup_secret(signed.access_key_id)
        if secret is None:
            raise SigV4Error(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
                signed.service,
            )
        if signed.amz_date[:8] != signed.date:
            raise SigV4Error(
                "InvalidSignatureException",
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                f"date from HTTP: '{signed.date}' != '{signed.amz_date[:8]}', "
                f"from '{signed.amz_date}'.",
                signed.service,
            )

        content_sha = header_values.get("x-amz-content-sha256", [None])[0]
        if content_sha is not None:
            payload_hash = content_sha
        elif presigned and signed.service == "s3":
            payload_hash = UNSIGNED_PAYLOAD
        else:
            payload_hash = hashlib.sha256(body).hexdigest()

        canonical = "\n".join(
            (
                method.upper(),
                _canonical_uri(path, signed.service),
                _canonical_query(pairs, drop_signature=presigned),
                _canonical_headers(signed.signed_headers, header_values),
                signed.signed_headers,
                payload_hash,
            )
        )
        scope = f"{signed.date}/{signed.region}/{signed.service}/aws4_request"
        string_to_sign = (
            f"{ALGORITHM}\n{signed.amz_date}\n{scope}\n"
            f"{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        key = self._signing_key(secret, signed.date, signed.region, signed.service)
        expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        # Bytes, not str: compare_digest refuses non-ASCII str, and the signature is input.
        if not hmac.compare_digest(expected.encode(), signed.signature.encode()):
            raise SigV4Error(
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you "
                "provided. Check your AWS Secret Access Key and signing method. "
                "Consult the service documentation for details.",
                signed.service,
            )
        self._check_time(signed)
        if (
            content_sha is not None
            and _HEX_SHA256.match(content_sha)
            and hashlib.sha256(body).hexdigest() != content_sha
        ):
            # The signature covers the declared hash, not the body: check the body too.
            raise LaminaError(
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
                code="XAmzContentSHA256Mismatch",
                status=400,
            )
        return SigV4Identity(
            signed.access_key_id, signed.region, signed.service, signed.session_token
        )

    def _check_time(self, signed: _Signed) -> None:
        # Compare epoch seconds; build the (AWS-worded) messages only on failure.
        signed_at = _epoch(signed.amz_date)
        now = self._clock()
        skew = _MAX_SKEW_SECONDS
        if signed.expires is not None:
            # A presigned URL is good for X-Amz-Expires seconds after signing.
            if now > signed_at + signed.expires:
                raise _expired(
                    signed,
                    f"{_stamp(now - signed.expires)} ({_stamp(now)} - {signed.expires} sec.)",
                )
        elif now - signed_at > skew:
            raise _expired(signed, f"{_stamp(now - skew)} ({_stamp(now)} - 15 min.)")
        if signed_at - now > skew:
            raise SigV4Error(
                "InvalidSignatureException",
                f"Signature not yet current: {signed.amz_date} is still later than "
                f"{_stamp(now + skew)} ({_stamp(now)} + 15 min.)",
                signed.service,
            )

    def _signing_key(self, secret: str, date: str, region: str, service: str) -> bytes:
        cache_key = (secret, date, region, service)
        key = self._keys.get(cache_key)
        if key is None:
            key = _hmac(f"AWS4{secret}".encode(), date)
            for part in (region, service, "aws4_request"):
                key = _hmac(key, part)
            if len(self._keys) >= self._key_cache_size:
                del self._keys[next(iter(self._keys))]  # oldest first: dicts keep order
            self._keys[cache_key] = key
        return key


def _split_pair(pair: str) -> tuple[str, str]:
    key, _, value = pair.partition("=")
    return key, value


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def _incomplete(message: str, service: str | None = None) -> SigV4Error:
    return SigV4Error("IncompleteSignatureException", message, service)


def _split_credential(credential: str) -> tuple[str, str, str, str]:
    # AKID/YYYYMMDD/region/service/aws4_request; split from the right, the key id is first.
    parts = credential.rsplit("/", 4)
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts):
        raise _incomplete(
            f"Credential should be scoped to a valid region and service: '{credential}'."
        )
    return parts[0], parts[1], parts[2], parts[3]


def _from_header(authorization: str, headers: dict[str, list[str]]) -> _Signed:
    if not authorization:
        raise _missing_token()
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise _incomplete(f"Unsupported authorization algorithm '{algorithm}'; use {ALGORITHM}.")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    missing = [n for n in ("Credential", "SignedHeaders", "Signature") if not fields.get(n)]
    if missing:
        raise _incomplete(
            " ".join(f"Authorization header requires '{n}' parameter." for n in missing)
            + f" Authorization={authorization}"
        )
    access_key, date, region, service = _split_credential(fields["Credential"])
    amz_date = headers.get("x-amz-date", [""])[0]
    if not amz_date and "date" in headers:
        try:
            amz_date = parsedate_to_datetime(headers["date"][0]).strftime(_AMZ_DATE)
        except (TypeError, ValueError):
            amz_date = ""
    if "host" not in fields["SignedHeaders"].split(";"):
        raise _incomplete("'Host' must be a 'SignedHeader' in the AWS Authorization.", service)
    return _Signed(
        access_key_id=access_key,
        date=date,
        region=region,
        service=service,
        amz_date=_checked_date(amz_date, service),
        signed_headers=fields["SignedHeaders"],
        signature=fields["Signature"],
        session_token=headers.get("x-amz-security-token", [None])[0],
        expires=None,
    )


def _from_query(query: dict[str, str]) -> _Signed:
    if query.get("X-Amz-Algorithm") != ALGORITHM:
        raise _incomplete(f"X-Amz-Algorithm must be {ALGORITHM}.")
    missing = [
        n
        for n in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature")
        if not query.get(n)
    ]
    if missing:
        raise _incomplete(
            " ".join(f"Query-string authentication requires the {n} parameter." for n in missing)
        )
    access_key, date, region, service = _split_credential(query["X-Amz-Credential"])
    try:
        expires = int(query.get("X-Amz-Expires", "900"))
    except ValueError:
        raise _incomplete("X-Amz-Expires should be a number", service) from None
    if not 0 < expires <= _MAX_PRESIGN_EXPIRES:
        raise _incomplete(
            f"X-Amz-Expires must be between 1 and {_MAX_PRESIGN_EXPIRES} seconds", service
        )
    return _Signed(
        access_key_id=access_key,
        date=date,
        region=region,
        service=service,
        amz_date=_checked_date(query["X-Amz-Date"], service),
        signed_headers=query["X-Amz-SignedHeaders"],
        signature=query["X-Amz-Signature"],
        session_token=query.get("X-Amz-Security-Token"),
        expires=expires,
    )


@functools.lru_cache(maxsize=64)  # requests signed in the same second share one
def _epoch(amz_date: str) -> int:
    """YYYYMMDDTHHMMSSZ (already checked) as epoch seconds; strptime is ~20x slower."""
    d = amz_date
    return calendar.timegm(
        (int(d[0:4]), int(d[4:6]), int(d[6:8]), int(d[9:11]), int(d[11:13]), int(d[13:15]))
    )


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime(_AMZ_DATE)


def _expired(signed: _Signed, limit: str) -> SigV4Error:
    return SigV4Error(
        "InvalidSignatureException",
        f"Signature expired: {signed.amz_date} is now earlier than {limit}",
        signed.service,
    )


def _checked_date(amz_date: str, service: str) -> str:
    if not amz_date:
        raise _incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
            service,
        )
    if not _AMZ_DATE_FORM.match(amz_date):
        raise _incomplete(f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'.", service)
    return amz_date


def _canonical_uri(path: str, service: str) -> str:
    if service == "s3":
        return path or "/"
    normalized = _remove_dot_segments(path)
    # Most paths need no escaping; `quote` walks every character, so skip it when it
    # would be the identity.
    return normalized if _PLAIN_PATH.match(normalized) else quote(normalized, safe="/~")


def _remove_dot_segments(path: str) -> str:
    # RFC 3986 5.2.4, plus collapsing repeated slashes, as botocore does before signing.
    if not path:
        return "/"
    if "//" not in path and "/." not in path:
        return path  # no empty, "." or ".." segment: nothing to remove (the usual path)
    out: list[str] = []
    for segment in path.split("/"):
        if not segment or segment == ".":
            continue
        if segment == "..":
            if out:
                out.pop()
        else:
            out.append(segment)
    trailing = "/" if path.endswith("/") and out else ""
    return ("/" if path.startswith("/") else "") + "/".join(out) + trailing


def _canonical_query(pairs: list[tuple[str, str]], *, drop_signature: bool) -> str:
    # Decode then re-encode every key and value the one strict way, so what a client
    # chose to escape (or not) does not matter; then sort by key, then value.
    encoded = sorted(
        (_strict_encode(k), _strict_encode(v))
        for k, v in pairs
        if not (drop_signature and k == "X-Amz-Signature")
    )
    return "&".join(f"{k}={v}" for k, v in encoded)


def _strict_encode(text: str) -> str:
    if _PLAIN_QUERY_PART.match(text):
        return text  # only unreserved characters: already canonical
    return quote(unquote(text), safe="-_.~")


def _canonical_headers(signed_headers: str, headers: dict[str, list[str]]) -> str:
    lines = []
    for name in signed_headers.split(";"):
        value = ",".join(" ".join(v.split()) for v in headers.get(name, ()))
        lines.append(f"{name}:{value}\n")
    return "".join(lines)
