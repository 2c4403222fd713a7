"""Section ``locomo``: how much evidence the injected L3 block holds, and what it costs in tokens.

Each LoCoMo conversation is imported as its own chat (speaker A the user, B the assistant, the
sessions' date-times as timestamps) and every question of categories 1–4 is asked in it, an
hour after its last session, through ``TurnRunner.inspect`` (the real graph up to the model).
Side by side, on the same chat and query vector: plain top-k vector search packed into the
tokens GOAT used for that question, into the whole L3 guarantee, and at fixed k. Off-topic
messages show what GOAT injects when nothing is relevant.

Recall is a question's share of evidence turns (archived user→assistant pairs) that are in the
block, averaged over questions; tokens are those of the injected lines, as the prompt counts them.
"""

from __future__ import annotations

import io
import shutil
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.harness import BenchOptions, bench_runner, conditions, isolated_settings
from bench.report import SectionResult, markdown_table, mean, percent
from graph.importing.importer import import_turns, transcript_of
from graph.runner import TurnRunner
from memory.facade import measurement_hooks
from memory.prompt import count_tokens, count_tokens_each, format_recall_line, pack_recalls
from memory.turns import USER_PREFIX, Hit, archive_id
from nodes.state import TurnState
from bench.support import locomo

FIXED_K = (5, 10, 15)
# Defaults are chosen on the first conversations (the tuning half); the last two of five are
# held back and decide whether a change stays.
HELD_BACK_CONVERSATIONS = 2
SEARCH_K = 60  # plain top-k results fetched: more than fit the L3 guarantee
# L3 claims its share before L2, so L2's length changes nothing of what is injected; reading
# only the last messages saves counting the tokens of a long conversation on every question.
INSPECT_OVERRIDES = {"memory.l2_max_messages": 2}
OFF_TOPIC = (
    "hi!",
    "hey, good morning!",
    "thanks, that's all for today",
    "ok bye, talk soon",
    "lol",
    "what's the capital of Peru?",
    "how do I reverse a list in Python?",
    "what is 17 times 23?",
    "who won the 1998 football World Cup?",
    "how many bones are in the human body?",
    "convert 30 degrees Celsius to Fahrenheit",
    "what's the boiling point of nitrogen?",
    "explain how a TCP handshake works",
    "what's a good name for a sourdough starter?",
    "how far is the Moon from the Earth?",
    "can you recommend a sci-fi novel?",
    "what does HTTP 418 mean?",
    "how do I convert a string to an int in JavaScript?",
    "what's the difference between a virus and a bacterium?",
    "write a haiku about autumn rain",
)


def methods(guarantee: int) -> list[str]:
    return ["GOAT prefetch", "top-k at GOAT's tokens", f"top-k in {guarantee} tokens (L3 guarantee)",
            *(f"top-{k}" for k in FIXED_K)]


def line_tokens(hit: Hit) -> int:
    return count_tokens(format_recall_line(hit))


def retrieved(state: TurnState, ranked: list[Hit], guarantee: int) -> dict[str, tuple[list[str], int]]:
    """Per method: (ids injected, tokens), for one message."""
    goat_tokens = state["tokens"]["l3"]
    at_goats_tokens = pack_recalls(ranked, goat_tokens, count_tokens_each)
    in_guarantee = pack_recalls(ranked, guarantee, count_tokens_each)
    found = {
        "GOAT prefetch": ([r["id"] for r in state.get("l3") or []], goat_tokens),
        "top-k at GOAT's tokens": ([h["id"] for h in at_goats_tokens.recalls], at_goats_tokens.tokens),
        f"top-k in {guarantee} tokens (L3 guarantee)": ([h["id"] for h in in_guarantee.recalls], in_guarantee.tokens),
    }
    for k in FIXED_K:
        found[f"top-{k}"] = ([h["id"] for h in ranked[:k]], sum(line_tokens(h) for h in ranked[:k]))
    return found


async def ask(runner: TurnRunner, conversation: locomo.Conversation, text: str,
              guarantee: int) -> dict[str, tuple[list[str], int]]:
    """``text`` asked in the conversation's chat an hour after its last session, by every method."""
    now = (conversation.last_time + timedelta(hours=1)).timestamp()
    state = await runner.inspect(conversation.chat_id, text, user_id=conversation.asker, now=now,
                                 overrides=INSPECT_OVERRIDES)
    return retrieved(state, await plain_ranked(runner, conversation, text), guarantee)


async def plain_ranked(runner: TurnRunner, conversation: locomo.Conversation, text: str) -> list[Hit]:
    """Plain top-k's entries nearest ``text`` by meaning: the chat's own, or a named chat's "Name:
    text" entries (its plain chat's, shown as "Name: text" alone), each named by the turn of the
    chat that holds the same line."""
    if conversation.plain_chat_id is None:
        return await measurement_hooks(runner.services.memory).nearest([conversation.chat_id], text, SEARCH_K)
    ranked = await measurement_hooks(runner.services.memory).nearest([conversation.plain_chat_id], text, SEARCH_K)
    return [{**hit, "id": archive_id(conversation.chat_id, int(hit["metadata"]["turn"])),
             "content": hit["content"].removeprefix(USER_PREFIX)} for hit in ranked]


async def run(options: BenchOptions) -> SectionResult:
    from tqdm import tqdm

    # Each speaker a person of their own, named apart from the text, as a chat between people imports.
    conversations = [locomo.build_conversation(record, named=True) for record in options.locomo_records]
    guarantee = options.settings.budget.l3_min_guarantee_tokens
    # Imported afresh every run (a minute or two): what the import writes changes with the code.
    folder = options.root / "locomo-scratch"
    shutil.rmtree(folder, ignore_errors=True)
    questions: list[dict[str, Any]] = []
    off_topic: list[dict[str, Any]] = []
    async with bench_runner(isolated_settings(options.settings, folder)) as (runner, _):
        await import_conversations(runner, conversations)
        with tqdm(total=sum(len(c.answerable()) + len(OFF_TOPIC) for c in conversations), unit="message",
                  desc="asking", file=sys.stderr) as bar:
            for number, conversation in enumerate(conversations):
                half = half_of(number, len(conversations))
                for question in conversation.answerable():
                    questions.append(question_row(conversation, question, half,
                                                  await ask(runner, conversation, question.text, guarantee)))
                    bar.update()
                for text in OFF_TOPIC:
                    found = await ask(runner, conversation, text, guarantee)
                    off_topic.append({"conversation": conversation.sample_id, "message": text,
                                      "methods": {name: {"tokens": tokens, "entries": len(ids)}
                                                  for name, (ids, tokens) in found.items()}})
                    bar.update()
    shutil.rmtree(folder, ignore_errors=True)
    data = summarise(questions, off_topic, methods(guarantee), guarantee)
    data["conditions"] = {**conditions(), "data": str(options.locomo_path),
                          "conversations": [c.sample_id for c in conversations],
                          "turns": sum(c.turns for c in conversations)}
    figure = plot(data, options.out / "locomo.png")
    return SectionResult("locomo", data, tables(data), [figure])


async def import_conversations(runner: TurnRunner, conversations: list[locomo.Conversation]) -> None:
    """Each conversation into its own chat, as `goat import` would, with a progress bar."""
    from tqdm import tqdm

    with tqdm(total=sum(c.turns for c in conversations), unit="turn", desc="importing", file=sys.stderr) as bar:
        for conversation in conversations:
            # Split at line feeds alone, as `goat import` reads a file: str.splitlines would also
            # split at the U+2028 a message may hold, and cut its JSON line in two.
            transcript = transcript_of(io.StringIO(conversation.jsonl()))
            await import_turns(runner.services.memory, transcript, progress=bar.update)
            if conversation.plain_chat_id is not None:  # plain top-k's own "Name: text" entries
                await import_turns(runner.services.memory, transcript_of(io.StringIO(conversation.plain_jsonl())))


def half_of(number: int, conversations: int) -> str:
    """"tuning" or "held-back": the last ``HELD_BACK_CONVERSATIONS`` of five or more are held back."""
    held_back = number >= conversations - HELD_BACK_CONVERSATIONS and conversations >= 5
    return "held-back" if held_back else "tuning"


def question_row(conversation: locomo.Conversation, question: locomo.Question, half: str,
                 found: dict[str, tuple[list[str], int]]) -> dict[str, Any]:
    return {
        "conversation": conversation.sample_id,
        "half": half,
        "category": question.category,
        "question": question.text,
        "evidence": sorted(question.evidence_ids),
        "methods": {name: {"recall": locomo.evidence_recall(question, set(ids)), "tokens": tokens,
                           "entries": len(ids)} for name, (ids, tokens) in found.items()},
    }


def summarise(questions: list[dict[str, Any]], off_topic: list[dict[str, Any]], names: list[str],
              guarantee: int) -> dict[str, Any]:
    def quality(rows: list[dict[str, Any]], name: str) -> dict[str, float]:
        recall = mean(r["methods"][name]["recall"] for r in rows)
        tokens = mean(r["methods"][name]["tokens"] for r in rows)
        return {
            "evidence_recall": round(recall, 4),
            "any_evidence": round(mean(r["methods"][name]["recall"] > 0 for r in rows), 4),
            "l3_tokens_mean": round(tokens, 1),
            "recall_per_1k_tokens": round(1000 * recall / tokens, 3) if tokens else None,
        }

    def cost(name: str) -> dict[str, float]:
        tokens = [r["methods"][name]["tokens"] for r in off_topic]
        return {"l3_tokens_mean": round(mean(tokens), 1), "l3_tokens_max": max(tokens, default=0),
                "injects_any": round(mean(t > 0 for t in tokens), 4)}

    def per_category(rows: list[dict[str, Any]]) -> dict[str, Any]:
        measured = {name: quality(rows, name) for name in names}
        return {"questions": len(rows), **{name: m["evidence_recall"] for name, m in measured.items()},
                "l3_tokens_mean": {name: m["l3_tokens_mean"] for name, m in measured.items()}}

    categories = sorted({q["category"] for q in questions})
    return {
        "questions": len(questions),
        "l3_guarantee_tokens": guarantee,
        "goat_within_guarantee": round(
            mean(q["methods"]["GOAT prefetch"]["tokens"] <= guarantee for q in questions), 4
        ),
        "methods": {name: quality(questions, name) for name in names},
        "by_category": {
            locomo.CATEGORY_NAMES[c]: per_category([q for q in questions if q["category"] == c])
            for c in categories
        },
        "halves": {half: {"all": per_category(rows), **{
            locomo.CATEGORY_NAMES[c]: per_category([q for q in rows if q["category"] == c]) for c in categories}}
            for half in ("tuning", "held-back") if (rows := [q for q in questions if q["half"] == half])},
        "off_topic": {"messages": len(off_topic), "methods": {name: cost(name) for name in names}},
        "per_question": questions,
        "per_off_topic_message": off_topic,
    }


def tables(data: dict[str, Any]) -> list[str]:
    names = list(data["methods"])
    overall = markdown_table(
        ["retrieval", "evidence recall", "≥ 1 evidence turn", "L3 tokens (mean)", "recall per 1k tokens"],
        [(name, percent(m["evidence_recall"]), percent(m["any_evidence"]), m["l3_tokens_mean"],
          "–" if m["recall_per_1k_tokens"] is None else f"{m['recall_per_1k_tokens']:.3f}")
         for name, m in data["methods"].items()],
        f"LoCoMo, {data['questions']} questions of categories 1–4 (GOAT within the "
        f"{data['l3_guarantee_tokens']}-token L3 guarantee on {percent(data['goat_within_guarantee'])} of them)",
    )
    by_category = markdown_table(
        ["category", "questions", *names],
        [(category, row["questions"], *(f"{percent(row[name])} @{row['l3_tokens_mean'][name]:.0f}" for name in names))
         for category, row in data["by_category"].items()],
        "Evidence recall by question category (@ mean L3 tokens)",
    )
    goat, plain = names[0], names[1]
    halves = markdown_table(
        ["half", "questions", *(f"{group}: GOAT / {plain}" for group in ("all", *data["by_category"]))],
        [(half, groups["all"]["questions"], *(
            f"{percent(row[goat])} @{row['l3_tokens_mean'][goat]:.0f} / {percent(row[plain])}"
            for row in groups.values())) for half, groups in data["halves"].items()],
        "Evidence recall by half: the tuning conversations and those held back (@ GOAT's mean L3 tokens)",
    )
    off = data["off_topic"]
    off_topic = markdown_table(
        ["retrieval", "L3 tokens (mean)", "max", "injects anything"],
        [(name, m["l3_tokens_mean"], m["l3_tokens_max"], percent(m["injects_any"]))
         for name, m in off["methods"].items()],
        f"Off-topic messages ({off['messages']}: greetings, unrelated questions)",
    )
    return [overall, by_category, halves, off_topic]


def plot(data: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for number, (name, m) in enumerate(data["methods"].items()):
        is_goat = name == "GOAT prefetch"
        ax.scatter(m["l3_tokens_mean"], m["evidence_recall"], s=80 if is_goat else 30,
                   marker="*" if is_goat else "o", color="C3" if is_goat else "C0", zorder=3)
        # Alternate above and below: neighbours (top-15, the whole guarantee) sit close together.
        ax.annotate(name, (m["l3_tokens_mean"], m["evidence_recall"]), textcoords="offset points",
                    xytext=(6, -11 if number % 2 else 5), fontsize=8)
    ax.set_xlim(0, 1.45 * max(m["l3_tokens_mean"] for m in data["methods"].values()))
    fixed = [data["methods"][f"top-{k}"] for k in FIXED_K]
    ax.plot([m["l3_tokens_mean"] for m in fixed], [m["evidence_recall"] for m in fixed], "--", color="C0", lw=1)
    ax.set_xlabel("mean L3 tokens per question")
    ax.set_ylabel("evidence recall")
    ax.set_title("LoCoMo: evidence in the injected block vs. its tokens")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
