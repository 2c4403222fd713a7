"""Transcripts imported into memory: JSON Lines, and Telegram's and ChatGPT's exports (goat import)."""
