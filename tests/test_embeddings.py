"""The MiniLM encoder (onnxruntime, graph built from the bundled weights, matrices at 8 bits)
against vectors computed by sentence-transformers, and its batching: order, determinism,
truncation."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from memory.encoders.bert_encoders import BertEncoder, MiniLMEncoder
from memory.encoders.embeddings import LocalEmbeddings
from memory.encoders.encoder import Encoder, distances
from memory.encoders.int8 import quantised
from memory.encoders.minilm_weights import MAX_TOKENS, graph_weights, load_tokenizer, model_dir
from memory.encoders.paired import PairedEncoder, of_every_language, other_languages
from memory.words import reads_as_english
from test_e5 import MIXED as E5_MIXED

REFERENCE = json.loads((Path(__file__).parent / "data" / "minilm_reference.json").read_text(encoding="utf-8"))
# The same text's vector, however it is batched: float32 sums in another order at most.
TOLERANCE = 1e-5
# sentence-transformers' float32 vectors against the 8-bit graph's (0.98-0.99 on these texts).
REFERENCE_COSINE = 0.97

# Mixed lengths, so a batch spans several runs on both workers (of different padded lengths for e5).
MIXED = [
    "hi",
    "",
    "user: I adopted a dog named Rex last spring.\nassistant: That's wonderful! How is Rex adjusting?",
    "What did we discuss yesterday about the alpha-5675 deployment?",
    "Bună ziua, ce mai faci? 今日は良い天気ですね。 🙂",
    " ".join(f"word{i}" for i in range(400)),
    "assistant: " + "We talked about the garden, the roses and the new fence. " * 12,
] * 9


@pytest.fixture(scope="module")
def encoder(minilm: LocalEmbeddings) -> MiniLMEncoder:
    return minilm.encoder


def test_vectors_match_sentence_transformers(encoder: MiniLMEncoder) -> None:
    vectors = encoder.encode(REFERENCE["texts"])  # includes "" and a 3 000-character text
    reference = np.array(REFERENCE["vectors"], dtype=np.float32)
    assert ((vectors * reference).sum(axis=1) >= REFERENCE_COSINE).all()
    # What ranking reads: each text's nearest other is the same, and no similarity moves by 0.04.
    self_pairs = 2 * np.eye(len(reference))
    ours, theirs = vectors @ vectors.T - self_pairs, reference @ reference.T - self_pairs
    np.testing.assert_array_equal(ours.argmax(axis=1), theirs.argmax(axis=1))
    np.testing.assert_allclose(ours, theirs, atol=0.04)


def test_minilm_at_float32_is_sentence_transformers_to_float_precision() -> None:
    encoder = MiniLMEncoder(int8=False)  # as the seed's side of `goat bench --sections seed` runs it
    assert encoder.record == "minilm-l6"  # the float32 archives' record: another version's than the 8-bit one
    np.testing.assert_allclose(encoder.encode(REFERENCE["texts"]), np.array(REFERENCE["vectors"], dtype=np.float32),
                               atol=TOLERANCE)


@pytest.fixture(params=["minilm-l6", "e5-small", "minilm-l6+e5-small"])
def batching(request: pytest.FixtureRequest, encoder: MiniLMEncoder, e5: LocalEmbeddings,
             paired: PairedEncoder) -> tuple[Encoder, list[str]]:
    """Each encoder, with texts of mixed lengths (and, with e5, languages and windows)."""
    return {"minilm-l6": (encoder, MIXED), "e5-small": (e5.encoder, E5_MIXED),
            "minilm-l6+e5-small": (paired, E5_MIXED)}[request.param]


def test_vectors_are_float32_rows_of_unit_blocks_in_input_order(batching: tuple[Encoder, list[str]]) -> None:
    encoder, mixed = batching
    vectors = encoder.encode(mixed[:7])
    assert vectors.shape == (7, encoder.dimensions) and vectors.dtype == np.float32
    blocks = np.linalg.norm(vectors.reshape(7, -1, 384), axis=2)  # the pair's: MiniLM, e5, e5
    np.testing.assert_allclose(blocks[blocks > 0], 1.0, atol=1e-6)
    # In input order: each row is closest to its own text encoded alone.
    alone = np.stack([encoder.encode([text])[0] for text in mixed[:7]])
    assert ((vectors @ alone.T).argmax(axis=1) == np.arange(7)).all()


def test_no_texts_give_no_rows(batching: tuple[Encoder, list[str]]) -> None:
    encoder, _ = batching
    assert encoder.encode([]).shape == encoder.encode([], query=True).shape == (0, encoder.dimensions)


def test_a_text_encodes_the_same_in_a_large_batch_as_alone(batching: tuple[Encoder, list[str]]) -> None:
    encoder, mixed = batching
    batch = encoder.encode(mixed)
    for text, vector in zip(mixed, batch, strict=True):
        np.testing.assert_allclose(vector, encoder.encode([text])[0], atol=TOLERANCE)


def test_encoding_is_deterministic(batching: tuple[Encoder, list[str]]) -> None:
    encoder, mixed = batching
    np.testing.assert_array_equal(encoder.encode(mixed), encoder.encode(mixed))


def test_a_chat_is_of_every_language_from_its_second_latin_line_of_another_language_or_one_in_another_script() -> None:
    slang = ["yt", "Sus is short for suspicious", "Im gonna head to bed"]  # real chats' informal English
    assert other_languages(["Where does my sister live?", *slang]) == ([], False)
    assert other_languages(["Where does my sister live?", "¿Qué le pasó a mi teléfono?", "Ich habe einen Hund"]) == ([1, 2], False)
    assert not of_every_language(1, False) and of_every_language(2, False)
    assert other_languages(["Where does my sister live?", "Где живёт моя сестра?"]) == ([], True)
    assert of_every_language(0, True)


def test_paired_encoder_scores_english_pairs_by_minilm_and_any_other_pair_by_e5(
    paired: PairedEncoder, encoder: MiniLMEncoder, e5: LocalEmbeddings
) -> None:
    english = ["Where does my sister live?", "The cat sleeps all day."]
    spanish = ["¿Dónde vive mi hermana ahora mismo?", "Mi hermana vive en Valencia con su marido."]

    def cosines(model, queries: list[str], passages: list[str]) -> np.ndarray:
        return model.encode(queries, query=True) @ model.encode(passages).T

    scores = cosines(paired, english + spanish, english + spanish)
    np.testing.assert_allclose(scores[:2, :2], cosines(encoder, english, english), atol=1e-5)
    alone = cosines(e5.encoder, english + spanish, english + spanish)
    np.testing.assert_allclose(scores[2:, :], alone[2:, :], atol=1e-5)  # a Spanish query: e5's cosine
    np.testing.assert_allclose(scores[:2, 2:], alone[:2, 2:], atol=1e-5)  # a Spanish passage: e5's cosine
    query = paired.encode(spanish[:1], query=True)[0]
    np.testing.assert_allclose(distances(paired.encode(spanish), query), 2 - 2 * alone[2, 2:], atol=1e-5)


def test_for_a_chat_of_english_alone_the_pair_runs_minilm_alone_and_fills_e5_in_later(
    paired: PairedEncoder, encoder: MiniLMEncoder, e5: LocalEmbeddings
) -> None:
    english, russian = ["Where does my sister live?", "The cat sleeps all day."], ["Где живёт моя сестра?"]
    bare = paired.encode(english, every_language=False)
    np.testing.assert_array_equal(bare[:, :384], encoder.encode(english))
    assert not bare[:, 384:].any()  # no e5 block: e5 was not run for them
    query = paired.encode(["Where is my sister's home?"], query=True, every_language=False)[0]
    assert not query[384:].any() and [space.passages for space in paired.spaces(query)] == ["english"]
    # A question in Latin script that reads as another language's is asked as English there.
    assert not reads_as_english("¿Qué le pasó a mi teléfono?")
    np.testing.assert_array_equal(paired.encode(["¿Qué le pasó a mi teléfono?"], query=True, every_language=False)[0][:384],
                                  encoder.encode(["¿Qué le pasó a mi teléfono?"], query=True)[0])
    # A Russian question meets them only once e5's block is filled in, as a chat of every language needs.
    russian_query = paired.encode(russian, query=True, every_language=False)[0]
    np.testing.assert_array_equal(distances(bare, russian_query), 2.0)
    filled = paired.fill(english, bare)
    np.testing.assert_allclose(filled, paired.encode(english), atol=1e-6)
    # Its one Latin-script line of another language is encoded as English there; once the chat
    # is of every language, filling lays it out as another language's, as it is encoded now.
    spanish = ["Mi hermana vive en Valencia con su marido."]
    held = paired.encode(spanish, every_language=False)
    np.testing.assert_array_equal(held[:, :384], encoder.encode(spanish))
    assert not held[:, 384:].any()
    np.testing.assert_allclose(paired.fill(spanish, held), paired.encode(spanish), atol=1e-6)
    np.testing.assert_allclose(distances(filled, russian_query),
                               2 - 2 * (e5.encoder.encode(russian, query=True) @ e5.encoder.encode(english).T)[0],
                               atol=1e-5)


def test_distances_are_squared_l2_for_unit_queries(encoder: MiniLMEncoder) -> None:
    passages, query = encoder.encode(MIXED[:5]), encoder.encode(["what is my dog called"], query=True)[0]
    np.testing.assert_allclose(distances(passages, query), np.sum(np.square(passages - query), axis=1), atol=1e-5)


def test_text_beyond_the_token_limit_does_not_change_the_vector(encoder: MiniLMEncoder) -> None:
    head = " ".join(f"topic{i}" for i in range(300))
    assert len(load_tokenizer(truncate=False).encode(head).ids) > MAX_TOKENS
    first, second = encoder.encode([head + " about dogs", head + " about tax law and spreadsheets"])
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("text", ["", " ", "\n\n", "\u200b", "?"])
def test_empty_and_blank_texts_get_finite_unit_vectors(encoder: MiniLMEncoder, text: str) -> None:
    vector = encoder.encode([text])[0]
    assert np.isfinite(vector).all()
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)


def test_langchain_adapter_gives_query_and_document_vectors_alike(encoder: MiniLMEncoder) -> None:
    embeddings = LocalEmbeddings(encoder)
    assert embeddings.name == "minilm-l6"
    text = "What is my dog called?"
    query = embeddings.embed_query(text)
    assert isinstance(query, list) and len(query) == 384 and all(isinstance(x, float) for x in query)
    np.testing.assert_allclose(query, embeddings.embed_documents(["something else", text])[1], atol=TOLERANCE)


def counted_runs(model: BertEncoder, monkeypatch: pytest.MonkeyPatch) -> tuple[list[list[str]], Callable]:
    """The texts the model is run on from now on, one list per run, and its run uncounted."""
    asked: list[list[str]] = []
    run = model._encode

    def counted(texts: list[str], query: bool) -> np.ndarray:
        asked.append(list(texts))
        return run(texts, query)

    monkeypatch.setattr(model, "_encode", counted)
    return asked, run


def test_a_question_embedded_ahead_lends_its_minilm_block_when_its_chat_holds_every_language(
    encoder: MiniLMEncoder, e5: LocalEmbeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A turn's message is embedded ahead for a chat of English alone; when the chat holds other
    languages too it is embedded again with e5's block, and MiniLM is not run a second time."""
    asked, run = counted_runs(encoder, monkeypatch)
    paired = PairedEncoder(encoder, e5.encoder)
    question = "Where does my sister Ioana live now?"
    ahead = paired.encode([question], query=True, every_language=False)[0]
    both = paired.encode([question], query=True, every_language=True)[0]
    assert asked == [[question]]
    np.testing.assert_array_equal(both[:384], ahead[:384])
    np.testing.assert_array_equal(both[:384], run([question], True)[0])
    np.testing.assert_array_equal(both, PairedEncoder(encoder, e5.encoder).encode([question], query=True)[0])
    # Passages are not queries: each is encoded as a passage, every time.
    paired.encode([question])
    assert asked == [[question], [question]]


@pytest.mark.parametrize("name", ["minilm-l6", "e5-small"])
def test_every_encoder_runs_a_query_said_again_once_and_a_passage_every_time(
    name: str, encoder: MiniLMEncoder, e5: LocalEmbeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message said again ("thanks", a question repeated) is not run through the model again,
    under every encoder; what is remembered is a copy, which a caller cannot change."""
    model = {"minilm-l6": encoder, "e5-small": e5.encoder}[name]
    asked, run = counted_runs(model, monkeypatch)
    said = f"Thanks a lot, that settles it ({name})"
    first = model.encode([said], query=True)
    first[0, :] = 0.0  # the caller's copy
    again = model.encode([said, said], query=True)
    assert asked == [[said]]
    np.testing.assert_array_equal(again[0], again[1])
    np.testing.assert_array_equal(again[0], run([said], True)[0])
    model.encode([said])
    model.encode([said])
    assert asked == [[said], [said], [said]]


def test_forgotten_queries_are_run_again_under_the_pair(
    encoder: MiniLMEncoder, e5: LocalEmbeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a benchmark of new messages asks before each turn: the pair's remembered queries,
    MiniLM's and e5's, forgotten, so a message said before is run through both models again."""
    paired = PairedEncoder(encoder, e5.encoder)
    minilm_asked, _ = counted_runs(encoder, monkeypatch)
    e5_asked, _ = counted_runs(e5.encoder, monkeypatch)
    said = "What did we talk about yesterday? (forgotten queries)"
    remembered = paired.encode([said], query=True)
    paired.encode([said], query=True)
    assert minilm_asked == e5_asked == [[said]]
    paired.forget_queries()
    np.testing.assert_allclose(paired.encode([said], query=True), remembered, atol=1e-6)
    assert minilm_asked == e5_asked == [[said], [said]]


def test_minilms_matrices_are_quantised_to_int8_a_scale_per_column_and_its_tables_stay_float32() -> None:
    weights = graph_weights(model_dir())
    int8 = quantised(weights)
    np.testing.assert_array_equal(int8["word"], weights["word"])  # the tables are read, not multiplied
    for name in ("qkv_w0", "up_w3", "down_w5"):
        matrix, values, scale = weights[name], int8[f"{name}_quantized"].astype(np.float32), int8[f"{name}_scale"]
        assert name not in int8 and int8[f"{name}_quantized"].dtype == np.int8
        # 7 bits of 8: no 16-bit sum of two products overflows on CPUs without VNNI.
        assert (np.abs(values).max(axis=0) == 64).all() and not int8[f"{name}_zero_point"].any()
        assert (np.abs(values * scale - matrix) <= scale / 2 + 1e-7).all()  # each weight to its nearest step
