"""The sentence encoders (MiniLM, multilingual e5-small, both side by side), run locally by onnxruntime."""

from memory.encoders.embeddings import LocalEmbeddings, encoder_files, load_encoder

__all__ = ["LocalEmbeddings", "encoder_files", "load_encoder"]
