"""Make ``synthetic-chats.json`` beside this file: the labelled chats the tuning notebooks run on.

Five chats between two friends, each 10 to 17 sessions over two to four months and 150 to 275
turns, written in LoCoMo's JSON format (``bench/support/locomo.py`` reads it unchanged) with questions of
LoCoMo's four answerable categories and the turns that hold their answers.

How a chat is made, all from one seeded random generator, with templates and no model:

- **Storylines.** Each chat draws about ten topics from ``TOPICS`` (a pet adopted, a new job, a
  trip, ...), gives each to one speaker, fills its slots (breed, city, teacher...) and tells its
  *event* in one session ("last Saturday we brought a beagle home...", the date resolved from
  the session's date) and, for most, a *follow-up* in a later session that names the event only
  by a handle (the pet's name), so the two turns together answer a multi-hop question.
- **Distractors.** After its event, a storyline's owner comes back to it in *callbacks* that
  answer nothing ("the dog knocked a glass off the table again"); every session also holds
  chatter on the chat's topics ("my neighbour's greyhound barks at every van"), an *echo* of a
  storyline's words in another context ("my boss is flying to Lisbon"), and small talk, replies
  often going on with encouragement or a question back, as in LoCoMo. So a question meets many
  turns that share its words, and the recent ones are seldom its answer.
- **Questions** are paraphrases, not copies, of their evidence lines: single-hop (category 4),
  temporal (2: "when did ...", answered from the session's date; "on 14 March 2023"; "last
  week", relative to the chat's last session, when the lab asks), multi-hop (1: event and
  follow-up, or a speaker's two trips) and open-domain (3: an inference from a storyline).

Run it to rewrite the file; ``--check`` exits 1 when the file differs from what it makes
(``tests/test_notebooks.py`` checks the same, byte for byte)::

    .venv/bin/python notebooks/data/make_dataset.py [--check]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # its templates beside it, also when loaded from its file
from synthetic_life_events import FAMILY, HOME, INJURY, JOB, PET  # noqa: E402
from synthetic_pastimes import BOOK, CONCERT, COOKING, CRAFT, GARDEN, RACE, TRIP, VOLUNTEER  # noqa: E402
from synthetic_small_talk import CLOSERS, OPENERS, PROMPTS, REPLY_TAILS, SMALL_TALK  # noqa: E402
from synthetic_topic import MULTI_HOP, TEMPORAL, Topic  # noqa: E402

OUTPUT = Path(__file__).with_name("synthetic-chats.json")
SEED = 26

# Spelled out, not strftime's %A/%B: those follow the process's locale, and the output must not.
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


@dataclass(frozen=True)
class ChatPlan:
    sample_id: str
    speakers: tuple[str, str]
    first_day: date
    sessions: int


# Sizes differ so the deadline notebook sees chats of several lengths; the first two are the
# notebooks' default subset.
CHATS = (
    ChatPlan("synthetic-1", ("Maya", "Tom"), date(2023, 1, 9), 14),
    ChatPlan("synthetic-2", ("Priya", "Daniel"), date(2023, 3, 6), 10),
    ChatPlan("synthetic-3", ("Lucas", "Hannah"), date(2022, 9, 5), 17),
    ChatPlan("synthetic-4", ("Sofia", "Marcus"), date(2023, 5, 1), 12),
    ChatPlan("synthetic-5", ("Elena", "Sam"), date(2022, 11, 14), 15),
)
SESSION_GAP_DAYS = (4, 12)
UTTERANCES_PER_SESSION = (34, 46)
CHATTER_SHARE = 0.45  # of a session's filler exchanges: chatter on the chat's topics; the rest small talk
DATED_SHARE = 0.4  # of the storylines: also asked about by the date they were told on
REPLY_TAIL_SHARE = 0.5  # of the second lines of exchanges
# The storylines' topics, in the order the chats draw them from.
TOPICS = (PET, JOB, TRIP, RACE, HOME, CRAFT, FAMILY, INJURY, COOKING, BOOK, GARDEN, VOLUNTEER, CONCERT)


# ---- dates -------------------------------------------------------------------------------------

def day_text(day: date) -> str:
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def session_date_time(day: date, hour: int, minute: int) -> str:
    """LoCoMo's form, ``"1:56 pm on 8 May, 2023"``."""
    return f"{(hour - 1) % 12 + 1}:{minute:02d} {'am' if hour < 12 else 'pm'} on {day.day} {MONTHS[day.month - 1]}, {day.year}"


def time_phrases(day: date) -> list[tuple[str, str]]:
    """Past time phrases said on ``day``, each with the date it names as an answer to "when"."""
    phrases = [("this morning", day_text(day)), ("yesterday", day_text(day - timedelta(days=1))),
               ("two days ago", day_text(day - timedelta(days=2))),
               ("last week", f"the week before {day_text(day)}")]
    if day.weekday() < 5:
        phrases.append(("last weekend", f"the weekend before {day_text(day)}"))
    for weekday, name in enumerate(WEEKDAYS):
        back = (day.weekday() - weekday) % 7
        if 2 <= back <= 5:
            phrases.append((f"on {name}", day_text(day - timedelta(days=back))))
    return phrases


# ---- a chat -------------------------------------------------------------------------------------

@dataclass
class Exchange:
    """Lines said in turn; ``first`` must say the first one (None: whoever speaks next). ``marks``:
    line index -> evidence key, for the lines that hold a storyline's answers. ``addressed``: the
    lines name the speakers (``{first}``, ``{second}``), known only once placed."""

    lines: list[str]
    first: int | None = None
    marks: dict[int, str] = field(default_factory=dict)
    addressed: bool = False


@dataclass
class Storyline:
    key: str
    topic: Topic
    owner: int  # 0: speaker A, 1: speaker B
    values: dict[str, str]  # the slots' values, the speakers' names (owner, partner), the event's date
    others: dict[str, str]  # per slot, a value this storyline does not have (for chatter)
    event_session: int
    follow_up_session: int | None
    event: Exchange
    follow_up: Exchange | None


def fill(slots: dict[str, tuple], rng: random.Random, taken: list[dict[str, str]]) -> dict[str, str]:
    """One option per slot, avoiding the values of ``taken`` (the speaker's earlier storylines of
    the topic); a dict option sets several slots."""
    values: dict[str, str] = {}
    for slot, options in slots.items():
        picks = [o if isinstance(o, dict) else {slot: o} for o in options]
        fresh = [p for p in picks if not any(t.get(k) == v for t in taken for k, v in p.items())]
        values.update(rng.choice(fresh or picks))
    return values


def alternatives(slots: dict[str, tuple], values: dict[str, str], rng: random.Random) -> dict[str, str]:
    """Per slot value, one value other than the storyline's: chatter mentions those."""
    choices: dict[str, list[str]] = {}
    for slot, options in slots.items():
        for option in options:
            for name, value in (option.items() if isinstance(option, dict) else [(slot, option)]):
                if value != values[name]:
                    choices.setdefault(name, []).append(value)
    return {name: rng.choice(found) for name, found in choices.items()}


class Deck:
    """Draws without repeats until every item has been drawn, then reshuffles."""

    def __init__(self, items, rng: random.Random) -> None:
        self.items, self.rng, self.left = list(items), rng, []

    def draw(self):
        if not self.left:
            self.left = self.rng.sample(self.items, len(self.items))
        return self.left.pop()


def told(template: str, replies: tuple[str, ...], owner: int, key: str, values: dict[str, str],
         rng: random.Random) -> Exchange:
    """The owner's line (evidence ``key``) and the partner's reply."""
    line = template.format(**values)
    return Exchange([line[0].upper() + line[1:], rng.choice(replies).format(**values)], owner, {0: key})


def plan_storylines(plan: ChatPlan, days: list[date], rng: random.Random) -> list[Storyline]:
    """Storylines on distinct topics (three fewer than the sessions), owners alternating, plus a
    second storyline of a tallied topic (trip or concert) for one speaker. Each event has a session
    of its own, any but the last; follow-ups come one to four sessions later."""
    topics = rng.sample(TOPICS, min(len(TOPICS), plan.sessions - 3))
    repeated = rng.choice([t for t in TOPICS if t.tally])
    if repeated not in topics:
        topics[-1] = repeated
    topics.append(repeated)
    sessions = rng.sample(range(plan.sessions - 1), len(topics))
    first_owner = rng.randrange(2)
    storylines: list[Storyline] = []
    for n, (topic, session) in enumerate(zip(topics, sessions)):
        key = f"s{n}"
        earlier = [s for s in storylines if s.topic is topic]
        owner = earlier[0].owner if earlier else (first_owner + n) % 2
        values = fill(topic.slots, rng, [s.values for s in earlier])
        phrase, named_date = rng.choice(time_phrases(days[session]))
        values.update(owner=plan.speakers[owner], partner=plan.speakers[1 - owner], date=named_date)
        event = told(rng.choice(topic.event), topic.reaction, owner, f"{key}:event",
                     {**values, "when": phrase, "When": phrase[0].upper() + phrase[1:]}, rng)
        follow_up_session = min(plan.sessions - 1, session + rng.randint(1, 4)) if topic.follow_up else None
        follow_up = (told(rng.choice(topic.follow_up), topic.follow_up_reaction, owner, f"{key}:follow_up", values, rng)
                     if topic.follow_up else None)
        storylines.append(Storyline(key, topic, owner, values, alternatives(topic.slots, values, rng),
                                    session, follow_up_session, event, follow_up))
    return storylines


def build_chat(plan: ChatPlan, rng: random.Random) -> dict:
    names = plan.speakers
    # The sessions' days and start times: a gap of several days between two sessions.
    days = [plan.first_day]
    for _ in range(plan.sessions - 1):
        days.append(days[-1] + timedelta(days=rng.randint(*SESSION_GAP_DAYS)))
    starts = [(rng.randint(8, 20), rng.randrange(60)) for _ in days]
    storylines = plan_storylines(plan, days, rng)

    # Per session, what it must hold: events, follow-ups, callbacks in later sessions, and each
    # storyline's echo in a session other than its event's, anywhere in the chat.
    told_in: dict[int, list[Exchange]] = {n: [] for n in range(plan.sessions)}
    for s in storylines:
        told_in[s.event_session].append(s.event)
        if s.follow_up is not None:
            told_in[s.follow_up_session].append(s.follow_up)
        echo_session = rng.choice([n for n in range(plan.sessions) if n != s.event_session])
        told_in[echo_session].extend(Exchange([line.format(**s.values) for line in pair]) for pair in s.topic.echo)
        for pair in s.topic.callbacks:
            session = rng.randint(s.event_session + 1, plan.sessions - 1)
            told_in[session].append(Exchange([line.format(**s.values) for line in pair], s.owner))

    chatter = {s.topic.name: (Deck(s.topic.chatter, rng), s.others) for s in storylines}
    topics = list(chatter)
    small_talk, openers, closers, prompts, tails = (
        Deck(items, rng) for items in (SMALL_TALK, OPENERS, CLOSERS, PROMPTS, REPLY_TAILS))

    conversation: dict = {"speaker_a": names[0], "speaker_b": names[1]}
    evidence: dict[str, str] = {}  # evidence key -> dia id
    for session, day in enumerate(days):
        body = list(told_in[session])
        target = rng.randint(*UTTERANCES_PER_SESSION)
        # Each exchange may need a prompt before it; opener and closer take two lines each.
        while 4 + sum(len(e.lines) + 1 for e in body) < target:
            if rng.random() < CHATTER_SHARE:
                deck, others = chatter[rng.choice(topics)]
                body.append(Exchange([line.format(other=others) for line in deck.draw()]))
            else:
                body.append(Exchange(list(small_talk.draw())))
        rng.shuffle(body)
        opener, closer = (Exchange(list(source.draw()), addressed=True) for source in (openers, closers))
        number = session + 1
        turns = []
        for i, (speaker, text, mark) in enumerate(place([opener, *body, closer], rng.randrange(2), names, prompts, tails, rng), 1):
            turns.append({"speaker": names[speaker], "dia_id": f"D{number}:{i}", "text": text})
            if mark:
                evidence[mark] = f"D{number}:{i}"
        conversation[f"session_{number}_date_time"] = session_date_time(day, *starts[session])
        conversation[f"session_{number}"] = turns
    return {"sample_id": plan.sample_id, "conversation": conversation,
            "qa": questions(storylines, names, days, evidence, rng)}


def place(exchanges: list[Exchange], opener: int, names: tuple[str, str], prompts: Deck, tails: Deck,
          rng: random.Random) -> list[tuple[int, str, str | None]]:
    """The session's lines, speakers alternating: (speaker, text, evidence key or None). When an
    exchange's first speaker has just spoken, the other asks what is new first; replies often
    go on with a tail."""
    lines: list[tuple[int, str, str | None]] = []
    speaker = opener
    for exchange in exchanges:
        if exchange.first is not None and exchange.first != speaker:
            lines.append((speaker, prompts.draw(), None))
            speaker = 1 - speaker
        first, second = names[speaker], names[1 - speaker]
        for i, line in enumerate(exchange.lines):
            text = line.format(first=first, second=second) if exchange.addressed else line
            if i == 1 and rng.random() < REPLY_TAIL_SHARE:
                text = f"{text} {tails.draw()}"
            lines.append((speaker, text, exchange.marks.get(i)))
            speaker = 1 - speaker
    return lines


def questions(storylines: list[Storyline], names: tuple[str, str], days: list[date],
              evidence: dict[str, str], rng: random.Random) -> list[dict]:
    """Every storyline's questions, the tallies and the dated questions, in the order of the chat
    (by the session of their last evidence line)."""
    found: list[tuple[int, dict]] = []

    def ask(category: int, question: str, answer: str, keys: list[str]) -> None:
        ids = [evidence[k] for k in keys]
        last_session = max(int(i[1:].split(":")[0]) for i in ids)
        found.append((last_session, {"question": question, "answer": answer, "evidence": ids, "category": category}))

    for s in storylines:
        for a in s.topic.asks:
            keys = [f"{s.key}:event", f"{s.key}:follow_up"] if a.needs == "both" else [f"{s.key}:event"]
            ask(a.category, a.question.format(**s.values), a.answer.format(**s.values), keys)

    # A speaker's storylines of one tallied topic, together (multi-hop across sessions).
    tallied: dict[tuple[str, int], list[Storyline]] = {}
    for s in storylines:
        if s.topic.tally:
            tallied.setdefault((s.topic.name, s.owner), []).append(s)
    for group in tallied.values():
        if len(group) > 1:
            question, slot = group[0].topic.tally
            ask(MULTI_HOP, question.format(**group[0].values), ", ".join(s.values[slot] for s in group),
                [f"{s.key}:event" for s in group])

    # Dated questions (for the temporal mechanism): "last week" for what was said in the calendar
    # week before the last session's (the lab asks an hour after it), else some on their date.
    last_monday = days[-1] - timedelta(days=days[-1].weekday())
    for s in storylines:
        said_on = days[s.event_session]
        about = f"What did {s.values['owner']} tell {s.values['partner']} about {s.topic.label}"
        summary = s.topic.summary.format(**s.values)
        if last_monday - timedelta(days=7) <= said_on < last_monday:
            ask(TEMPORAL, f"{about} last week?", summary, [f"{s.key}:event"])
        elif rng.random() < DATED_SHARE:
            ask(TEMPORAL, f"{about} on {day_text(said_on)}?", summary, [f"{s.key}:event"])
    return [q for _, q in sorted(found, key=lambda item: item[0])]


def build() -> str:
    """The whole data set as the JSON text written to ``OUTPUT``."""
    rng = random.Random(SEED)
    chats = [build_chat(plan, rng) for plan in CHATS]
    return json.dumps(chats, ensure_ascii=False, indent=1) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from what this makes")
    text = build()
    if parser.parse_args().check:
        same = OUTPUT.is_file() and OUTPUT.read_text(encoding="utf-8") == text
        print(f"{OUTPUT.name}: {'up to date' if same else 'differs from what make_dataset.py makes'}")
        return 0 if same else 1
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT} ({len(text.encode()) / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
