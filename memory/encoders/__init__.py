"""The sentence encoders (MiniLM, multilingual e5-small, both side by side), run locally by onnxruntime."""

from memory.encoders.bert_encoders import MiniLMEncoder
from memory.encoders.embeddings import LocalEmbeddings, encoder_files, load_encoder
from memory.encoders.encoder import Encoder
from memory.encoders.paired import of_every_language, other_languages

__all__ = ["Encoder", "LocalEmbeddings", "MiniLMEncoder", "encoder_files", "load_encoder", "of_every_language",
           "other_languages"]
