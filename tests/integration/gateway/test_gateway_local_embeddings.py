"""The local-embeddings provider with a real sentence-transformers model: a tiny,
randomly initialised BERT built in a temporary directory (no network, no hub).

Runs where the `embeddings` extra is installed and is skipped elsewhere: torch and
sentence-transformers are ~1.1 GB and ~2.5 minutes to install, which the CI's `test`
extra does not carry (docs/gateway.md, "Local embeddings")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest
from sqlalchemy import select

from tests.integration.gateway.harness import Launch, Mocks, base_config

pytest.importorskip("sentence_transformers", reason="the embeddings extra is not installed")

pytestmark = pytest.mark.embeddings

WORDS = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "user",
    ":",
    "hello",
    "world",
    "the",
    "cat",
    "sat",
    "on",
    "mat",
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sentence_transformers import SentenceTransformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    try:
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # before sentence-transformers 6
        from sentence_transformers.models import Pooling, Transformer

    root = tmp_path_factory.mktemp("tiny-st")
    bert = root / "bert"
    bert.mkdir()
    (bert / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    BertTokenizerFast(vocab_file=str(bert / "vocab.txt")).save_pretrained(bert)
    BertModel(
        BertConfig(
            vocab_size=len(WORDS),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        )
    ).save_pretrained(bert)
    words = Transformer(str(bert), max_seq_length=64)
    dimension = (
        words.get_embedding_dimension()
        if hasattr(words, "get_embedding_dimension")
        else words.get_word_embedding_dimension()
    )
    pooling = Pooling(dimension, "mean")
    SentenceTransformer(modules=[words, pooling], device="cpu").save(str(root / "model"))
    return root / "model"


def local_config(mocks: Mocks, model: Path | str) -> dict[str, Any]:
    config = base_config(mocks)
    config["providers"].append(
        {"name": "local", "type": "local-embeddings", "model": str(model), "device": "cpu"}
    )
    config["models"].append({"name": "local-embed", "routes": [{"provider": "local"}]})
    return config


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as this machine is: no hub at all


async def test_embeddings_from_a_local_model(
    launch: Launch, mocks: Mocks, tiny_model: Path
) -> None:
    from sentence_transformers import SentenceTransformer

    texts = ["hello world", "the cat sat on the mat"]
    async with launch(local_config(mocks, tiny_model)) as gw:
        client = gw.openai()
        raw = await client.embeddings.with_raw_response.create(model="local-embed", input=texts)
        packed = raw.parse()  # the SDK asks for base64 and unpacks it
        plain = await client.embeddings.create(
            model="local-embed", input="hello world", encoding_format="float"
        )
        await gw.gateway.drain()
        async with gw.gateway.engine.connect() as conn:
            rows = (await conn.execute(select(gw.gateway.tables.usage))).all()
    expected = SentenceTransformer(str(tiny_model), device="cpu").encode(texts).tolist()
    assert raw.headers["x-lamina-provider"] == "local"
    assert [len(d.embedding) for d in packed.data] == [32, 32]
    for got, want in zip([d.embedding for d in packed.data], expected, strict=True):
        assert got == pytest.approx(want, abs=1e-6)
    assert plain.data[0].embedding == pytest.approx(expected[0], abs=1e-6)
    # [CLS] hello world [SEP] and [CLS] the cat sat on the mat [SEP]
    assert packed.usage.prompt_tokens == 4 + 8 and plain.usage.prompt_tokens == 4
    assert [(r.provider, r.upstream_model, r.cost_usd, r.prompt_tokens) for r in rows] == [
        ("local", str(tiny_model), 0.0, 12),
        ("local", str(tiny_model), 0.0, 4),
    ]
    assert mocks.openai.requests == []


async def test_the_semantic_cache_on_local_embeddings(
    launch: Launch, mocks: Mocks, tiny_model: Path
) -> None:
    config = local_config(mocks, tiny_model)
    config["models"][0]["cache"] = {
        "ttl_s": 300,
        "semantic": {"embeddings_model": "local-embed", "threshold": 0.99},
    }
    async with launch(config) as gw:
        client = gw.openai()
        first = await client.chat.completions.with_raw_response.create(
            model="gpt", messages=[{"role": "user", "content": "hello world"}]
        )
        # Another exact key, the same prompt text once whitespace is collapsed.
        again = await client.chat.completions.with_raw_response.create(
            model="gpt", messages=[{"role": "user", "content": "hello \n  world "}]
        )
    assert first.headers["x-lamina-cache"] == "miss"
    assert again.headers["x-lamina-cache"] == "semantic-hit"
    assert again.parse().choices[0].message.content == "openai-mock says: hello world"
    assert len(mocks.openai.requests) == 1


async def test_a_model_that_is_not_there_is_a_clear_error(
    launch: Launch, mocks: Mocks, tmp_path: Path
) -> None:
    async with launch(local_config(mocks, tmp_path / "no-such-model")) as gw:
        with pytest.raises(openai.InternalServerError) as failed:
            await gw.openai().embeddings.create(model="local-embed", input="hello")
    assert "local model" in failed.value.message and "no-such-model" in failed.value.message
