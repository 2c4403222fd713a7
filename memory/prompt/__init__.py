"""The prompt's arithmetic and words: a turn's token budget from its message (AITS) and its
split between the layers, token counts, and the text of the system prompt's blocks (every
stored text rendered on one line, so it can never pose as a block of its own)."""

from memory.prompt.aits import assess
from memory.prompt.blocks import one_line, people_note, recall_block, speaker_name, system_header, tool_guidance
from memory.prompt.budget import (format_recall_line, l2_ceiling, named_messages, pack_recalls, trim_working,
                                  turn_split)
from memory.prompt.tokens import count_tokens, count_tokens_each

__all__ = ["assess", "count_tokens", "count_tokens_each", "format_recall_line", "l2_ceiling", "named_messages",
           "one_line", "pack_recalls", "people_note", "recall_block", "speaker_name", "system_header",
           "tool_guidance", "trim_working", "turn_split"]
