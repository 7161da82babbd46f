"""`local-embeddings`: a sentence-transformers model run in this process, so that
`/v1/embeddings` works with no provider and no network.

Unlike the other providers nothing is sent anywhere: `embed` runs the model. The
transforms around it stay pure (`texts_of`, `embeddings_body`) and are tested without
a model. The model is loaded on first use, once, in a worker thread (torch and the
weights take seconds and must not stall the event loop); encoding runs in a worker
thread too, and requests that arrive while one batch is encoding are coalesced into
the next batch, so concurrent callers share one forward pass.

sentence-transformers is an optional extra (`pip install 'lamina[embeddings]'`);
config.py refuses a local-embeddings provider at load when it is missing, and it is
imported only here, only when a model is first loaded.
"""

from __future__ import annotations

import asyncio
import base64
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

from lamina.gateway.config import ProviderConfig
from lamina.gateway.errors import InvalidGatewayRequest, UpstreamError, UpstreamTimeout
from lamina.gateway.providers.base import (
    JSON,
    Deployment,
    EventSource,
    StreamDecoder,
    UpstreamRequest,
)

TYPE = "local-embeddings"


class Encoder(Protocol):
    """A loaded model. Both methods block (they run in a worker thread)."""

    def encode(self, texts: list[str]) -> list[list[float]]: ...

    def count_tokens(self, texts: list[str]) -> list[int]: ...


# (model name or directory, its provider's config: device, threads) → Encoder
Loader = Callable[[str, ProviderConfig], Encoder]


def texts_of(body: JSON) -> list[str]:
    """The inputs to embed. Token-id inputs are refused: they are ids of OpenAI's
    tokenizer, which mean nothing to a local model's vocabulary."""
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if (
        not isinstance(inputs, list)
        or not inputs
        or not all(isinstance(text, str) for text in inputs)
    ):
        raise InvalidGatewayRequest(
            "'input' must be a string or a list of strings for a "
            "local-embeddings model (token ids are not accepted)"
        )
    if body.get("encoding_format", "float") not in ("float", "base64"):
        raise InvalidGatewayRequest("'encoding_format' must be 'float' or 'base64'")
    return inputs


def embeddings_body(
    vectors: Sequence[Sequence[float]],
    tokens: int,
    model: str,
    encoding_format: str = "float",
    dimensions: int | None = None,
) -> JSON:
    """OpenAI's embeddings response. `base64` is little-endian float32, which the
    openai SDK asks for by default and decodes itself."""
    if dimensions is not None and vectors and dimensions != len(vectors[0]):
        raise InvalidGatewayRequest(
            f"'dimensions' {dimensions} does not match the local "
            f"model's {len(vectors[0])}; leave it out"
        )
    data = []
    for index, vector in enumerate(vectors):
        embedding: list[float] | str = list(vector)
        if encoding_format == "base64":
            packed = struct.pack(f"<{len(vector)}f", *vector)
            embedding = base64.b64encode(packed).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


@dataclass(slots=True)
class _Request:
    texts: list[str]
    done: asyncio.Future[tuple[list[list[float]], list[int]]]


@dataclass(slots=True)
class _Batcher:
    """One model's queue: at most one batch encodes at a time; whatever arrives
    meanwhile goes into the next. Driven by the finished batch's callback, so no
    task outlives the requests, and a caller that leaves cannot strand the others."""

    load: Callable[[], Encoder]
    encoder: Encoder | None = None
    pending: list[_Request] = field(default_factory=list)
    busy: bool = False

    async def submit(self, texts: list[str]) -> tuple[list[list[float]], list[int]]:
        loop = asyncio.get_running_loop()
        request = _Request(texts, loop.create_future())
        self.pending.append(request)
        self._next(loop)
        return await request.done

    def _next(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = [r for r in self.pending if not r.done.done()]
        self.pending = []
        if self.busy or not batch:
            self.pending = batch
            return
        self.busy = True
        texts = [text for request in batch for text in request.texts]
        running = loop.run_in_executor(None, self._run, texts)
        running.add_done_callback(lambda f: self._finished(loop, batch, f))

    def _run(self, texts: list[str]) -> tuple[list[list[float]], list[int]]:
        # In the worker thread; batches never overlap, so the load happens once.
        if self.encoder is None:
            self.encoder = self.load()
        return self.encoder.encode(texts), self.encoder.count_tokens(texts)

    def _finished(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[_Request],
        running: asyncio.Future[tuple[list[list[float]], list[int]]],
    ) -> None:
        self.busy = False
        # Cancelled only when the loop's executor shuts down under it.
        error = asyncio.CancelledError() if running.cancelled() else running.exception()
        start = 0
        for request in batch:
            end = start + len(request.texts)
            if request.done.done():
                pass  # its caller left
            elif error is not None:
                request.done.set_exception(error)
            else:
                vectors, counts = running.result()
                request.done.set_result((vectors[start:end], counts[start:end]))
            start = end
        self._next(loop)


class LocalEmbeddingsProvider:
    """Embeddings only; chat and token counting are refused as the request's fault."""

    def __init__(self, loader: Loader | None = None) -> None:
        self._loader = loader or load_sentence_transformer
        self._models: dict[tuple[str, str, int | None], _Batcher] = {}

    async def embed(self, body: JSON, deployment: Deployment, timeout_s: float) -> JSON:
        texts = texts_of(body)
        provider = deployment.provider
        where = (deployment.model, provider.device, provider.threads)
        batcher = self._models.get(where)
        if batcher is None:
            name = deployment.model
            batcher = _Batcher(lambda: self._loader(name, provider))
            self._models[where] = batcher
        try:
            vectors, counts = await asyncio.wait_for(batcher.submit(texts), timeout_s)
        except TimeoutError:
            raise UpstreamTimeout(
                f"local model {deployment.model!r} did not answer in {timeout_s:g}s"
            ) from None
        except (InvalidGatewayRequest, UpstreamError):
            raise
        except Exception as exc:
            # A model that cannot be loaded (not on disk, no network to fetch it) or
            # that fails to encode: a 500 that names the cause, not a stack trace.
            raise UpstreamError(
                f"local model {deployment.model!r} failed: {type(exc).__name__}: {exc}", status=500
            ) from exc
        dimensions = body.get("dimensions")
        return embeddings_body(
            vectors,
            sum(counts),
            deployment.model,
            str(body.get("encoding_format") or "float"),
            dimensions if isinstance(dimensions, int) else None,
        )

    # -- the Provider protocol: nothing else is served locally --------------------------

    def _refuse(self, what: str) -> NoReturn:
        raise InvalidGatewayRequest(
            f"a local-embeddings provider serves only embeddings, not {what}"
        )

    def chat_request(self, body: JSON, deployment: Deployment) -> UpstreamRequest:
        self._refuse("chat")

    def chat_response(self, data: JSON, created: int) -> JSON:
        self._refuse("chat")

    def chat_stream(self, created: int) -> StreamDecoder:
        self._refuse("chat")

    def stream_events(self) -> EventSource:
        self._refuse("chat")

    def embeddings_request(self, body: JSON, deployment: Deployment) -> UpstreamRequest:
        raise InvalidGatewayRequest("local-embeddings runs in process; call embed()")

    def embeddings_response(self, data: JSON) -> JSON:
        return data

    def count_tokens_request(self, body: JSON, deployment: Deployment) -> UpstreamRequest:
        self._refuse("token counting")

    def count_tokens_response(self, data: JSON) -> int:
        self._refuse("token counting")

    def error_message(self, status: int, body: bytes) -> str:
        return body.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class _SentenceTransformerEncoder:
    model: Any  # a SentenceTransformer; typed loosely: the extra may not be installed

    def encode(self, texts: list[str]) -> list[list[float]]:
        vectors = self.model.encode(
            texts, batch_size=32, convert_to_numpy=True, show_progress_bar=False
        )
        rows: list[list[float]] = vectors.tolist()  # numpy float32 → Python floats
        return rows

    def count_tokens(self, texts: list[str]) -> list[int]:
        # Every token the caller sent, as the model's tokenizer splits it (with its
        # special tokens), even past the model's window where encode() truncates.
        ids = self.model.tokenizer(texts, truncation=False, verbose=False)["input_ids"]
        return [len(row) for row in ids]


def load_sentence_transformer(model: str, provider: ProviderConfig) -> Encoder:
    """Blocking: imports sentence-transformers (and torch) and loads the weights."""
    import torch
    from sentence_transformers import SentenceTransformer

    if provider.threads:
        # Process-wide. torch takes one thread per core by default, and they spin while
        # they wait: on cores shared with lamina's event loop fewer may serve better.
        torch.set_num_threads(provider.threads)
    return _SentenceTransformerEncoder(SentenceTransformer(model, device=provider.device))
