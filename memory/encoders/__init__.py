"""The sentence encoders (MiniLM, multilingual e5-small, both side by side), run locally by onnxruntime."""

from memory.encoders.embeddings import LocalEmbeddings, encoder_files, load_encoder
from memory.encoders.encoder import Encoder

__all__ = ["Encoder", "LocalEmbeddings", "encoder_files", "load_encoder"]
