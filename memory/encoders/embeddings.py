"""Sentence embeddings computed locally with onnxruntime, by encoder name: all-MiniLM-L6-v2 and
multilingual-e5-small (:mod:`memory.encoders.bert_encoders`), or both side by side
(:mod:`memory.encoders.paired`); each encoder's class, its weight files, its loading, and the
LangChain adapters over a loaded one: the archive's, and one chat's questions'."""

from __future__ import annotations

from pathlib import Path

from langchain_core.embeddings import Embeddings

from memory.encoders.bert_encoders import E5SmallEncoder, MiniLMEncoder
from memory.encoders.e5_weights import weights_file
from memory.encoders.encoder import Encoder
from memory.encoders.minilm_weights import model_dir
from memory.encoders.paired import PairedEncoder
from memory.settings import DEFAULT_ENCODER, ENCODERS


_ENCODER_CLASSES: dict[str, type[Encoder]] = {
    "minilm-l6": MiniLMEncoder, "e5-small": E5SmallEncoder, "minilm-l6+e5-small": PairedEncoder,
}


def encoder_class(name: str) -> type[Encoder]:
    """The named encoder's class: its vectors' layout, known without loading it."""
    return _ENCODER_CLASSES[name]


def encoder_files(name: str) -> list[Path]:
    """Where the named encoder's weights are (raises RuntimeError when a package is missing)."""
    return [weights_file() if part == "e5-small" else model_dir() for part in name.split("+")]


def load_encoder(name: str) -> Encoder:
    """A freshly loaded encoder by name (one of :data:`ENCODERS`)."""
    if name not in _ENCODER_CLASSES:
        raise ValueError(f"unknown encoder {name!r}: expected one of {', '.join(ENCODERS)}")
    return _ENCODER_CLASSES[name]()


class LocalEmbeddings(Embeddings):
    """LangChain adapter over an :class:`Encoder`, which the L3 store embeds entries written
    without their vectors with: documents are encoded as passages, queries as queries. Without
    an encoder, loads the one ``name`` names."""

    def __init__(self, encoder: Encoder | None = None, name: str = DEFAULT_ENCODER) -> None:
        self.encoder = encoder or load_encoder(name)
        self.name, self.record = self.encoder.name, self.encoder.record

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encoder.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encoder.encode([text], query=True)[0].tolist()


class ChatEmbeddings(LocalEmbeddings):
    """LangChain's adapter over an :class:`Encoder` for one chat's archive: a question is embedded
    as GOAT's meaning search embeds it for that chat, in the space its own language is compared
    in (:meth:`Encoder.spaces`' first), and texts as the archive embeds that chat's lines. One
    vector query then ranks the chat's lines as that space of GOAT's search does; an English
    question in a chat of other languages too meets its English lines alone (GOAT's search meets
    the others in e5's space, on a scale one query cannot apply)."""

    def __init__(self, encoder: Encoder, every_language: bool) -> None:
        """Args:
            encoder: the archive's.
            every_language: whether the chat is one of every language
                (:func:`memory.encoders.paired.of_every_language`, :meth:`Encoder.encode`'s ``every_language``).
        """
        super().__init__(encoder)
        self.every_language = every_language

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Returns:
            Each text's vector as the archive embeds the chat's lines.
        """
        return self.encoder.encode(texts, every_language=self.every_language).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Returns:
            The question's vector as GOAT's search embeds it for the chat, its own language's
            part alone.
        """
        vector = self.encoder.encode([text], query=True, every_language=self.every_language)[0]
        return self.encoder.spaces(vector)[0].query.tolist()
