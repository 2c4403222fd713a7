"""One typed settings object: defaults < ``goat.toml`` < environment < per-run overrides.

Every knob has a dotted name (``prefetch.timeout``, ``retrieval.gap_significance``).
The same names are used in the file (``[prefetch] timeout = 0.3``), in the
environment (``GOAT_PREFETCH__TIMEOUT=0.3``, plus the short aliases in
:data:`memory.settings_sources.ENV_ALIASES`) and in the graph's run-time context
(``{"prefetch.timeout": 0.3}``), and all three go through one validation that names the
offending key (:mod:`memory.settings_sources` reads them). This module holds memory's sections
and the tree's base, :class:`MemorySettings`; each layer above adds its own sections (the model's in
nodes/settings.py, the faces' and the server's in graph/settings.py, which composes the whole tree).
"""

from __future__ import annotations

from functools import lru_cache, reduce
from pathlib import Path
from typing import Any, Literal, Mapping, Self, get_args
from urllib.parse import urlsplit

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator

from memory.settings_sources import (SettingsError, current_names, drop_dotted, read_sources, refuse_unknown_names,
                                     set_dotted, validated)
from memory.words import stemmers

# What a single run may change: the knobs nodes read per turn. Backends, the model
# client and the cache are built once per process from the process's settings.
RUN_TIME_SECTIONS = ("identity", "memory", "prefetch", "retrieval", "aits", "budget")


class Section(BaseModel):
    """A section of settings (every layer's derive from it): unknown names, booleans given for
    numbers, nan, inf and text that is not UTF-8 are refused."""

    # nan and inf pass every bound a knob has (nan compares false, inf is above any minimum).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic would take true as 1 and false as 0.
        if isinstance(value, bool) and cls.model_fields[info.field_name].annotation in (int, float):
            raise ValueError("expected a number, not a boolean")
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _valid_unicode(cls, value: Any) -> Any:
        # Bytes that are not UTF-8 (in a variable, say) arrive as lone surrogates, which every
        # later encode (the tokenizer, Redis, a log line) refuses: stop them at the start.
        if isinstance(value, str) and value.encode("utf-16", "surrogatepass").decode("utf-16", "replace") != value:
            raise ValueError("not valid UTF-8")
        return value


# The sections a run may change (RUN_TIME_SECTIONS) describe each knob: the run-time context
# (nodes/context.py) shows the descriptions, in Studio's form among other places.


class Identity(Section):
    base_prompt: str = Field(
        "You are GOAT, a helpful assistant with a long memory. Use what you recall "
        "from earlier conversations when it is relevant, and say so when you are unsure.",
        description="L0: the persona at the head of every prompt",
    )


REDIS_URL_SCHEMES = ("redis://", "rediss://", "unix://")


class Redis(Section):
    url: str | None = Field(None, description="redis://host:port/db (user:password@ before the host when it "
                            "wants them), rediss://… (TLS) or unix:///path/to/redis.sock; unset: an embedded "
                            "redis-server in the data folder")
    # The embedded server is a single node, so a cluster needs a URL.
    cluster: bool = Field(False, description="redis.url names any node of a Redis Cluster; the others are "
                          "found from it")
    # A turn needs its own checkpoint to resume; older ones only cost memory.
    checkpoint_keep_turns: int = Field(2, ge=1, description="turns whose checkpoints each chat keeps")
    chat_lock_seconds: float = Field(5.0, gt=0, description="a chat's turn lease: a running turn renews it "
                                     "every third of this; a dead worker's chats wait this long at most")

    @field_validator("url")
    @classmethod
    def _a_redis_url(cls, url: str | None) -> str | None:
        # Checked here, so that every command says it in one line, as for any setting.
        if url is None:
            return url
        if not url.startswith(REDIS_URL_SCHEMES):
            raise ValueError("not a Redis URL: use redis://host:port/db (user:password@ before the host when it "
                             "wants them), rediss://… over TLS, or unix:///path/to/redis.sock")
        from redis.connection import parse_url  # what the client reads it with; imported only for a URL set

        try:
            parse_url(url)
        except ValueError as exc:  # the parser's own words may quote the URL's userinfo: only safe ones are kept
            said = str(exc)
            reason = (said if said.startswith("Invalid value for") else
                      "its port is not a number from 0 to 65535 (a / ? # or @ in the password must be "
                      "percent-encoded)" if said.startswith("Port") else
                      "its host part cannot be read")
            raise ValueError(f"not a valid Redis URL: {reason}") from None
        return url

    @model_validator(mode="after")
    def _cluster_needs_a_node(self) -> "Redis":
        if self.cluster and not self.url:
            raise ValueError("redis.cluster needs redis.url (GOAT_REDIS_URL) naming any node of the cluster; "
                             "the embedded server is a single node")
        if self.cluster and self.url and not self.url.startswith(("redis://", "rediss://")):
            raise ValueError(f"redis.cluster needs a redis:// or rediss:// URL (a cluster is not reached "
                             f"over a unix socket), got {self.url.split('://')[0]}://…")
        if self.cluster and self.url and urlsplit(self.url).path.strip("/") not in ("", "0"):
            raise ValueError("redis.cluster: a Redis Cluster has database 0 only; drop the /<db> from redis.url")
        return self


class Chroma(Section):
    url: str | None = Field(None, description="a Chroma server, http://host:8000; unset: Chroma's embedded "
                            "PersistentClient in the data folder")
    open_chats: int = Field(100, ge=1, description="the embedded store's chats whose vector index a process "
                            "holds in memory (~5-10 KB an entry); past it every one is let go and the chats "
                            "asked next are read in again (0.1-0.2 s for 500 entries): memory bounded by the "
                            "chats touched, not the archive")


class Letta(Section):
    url: str | None = Field(None, description="a Letta server keeping L1's facts; unset: facts in Redis")
    token: SecretStr | None = Field(None, description="a Letta server started with a password wants it as a "
                                    "bearer token")
    timeout: float = Field(5.0, gt=0, le=120, description="seconds a request to Letta may take (a turn waits "
                           "for L1 no longer than prefetch.timeout anyway)")


# Whose L3 a turn searches.
Scope = Literal["chat", "user", "global"]


class MemorySection(Section):  # the section named memory (the façade is memory.facade.Memory)
    scope: Scope = Field(
        "chat", description="whose L3 a turn searches: its chat's, its user's chats', or every chat's")
    l2_max_messages: int = Field(400, ge=2, description="how far back L2 is read before it is trimmed to its share")


class Prefetch(Section):
    timeout: float = Field(0.5, gt=0, le=30, description="seconds the turn waits for L3 at most (the hard deadline)")
    max_results: int = Field(15, ge=1, le=200, description="L3 entries kept after fusion, at most")
    # Twice what fits the L3 share, so fusion has candidates to choose from (50 measured no
    # better on LoCoMo and cost ~6 ms more at 100 000 turns).
    search_k: int = Field(30, ge=1, le=200,
                          description="results each ranked list (meaning, words, period) brings to fusion")
    timezone: str = Field("UTC", description="the users' clock (IANA name): what 'yesterday' means")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Bucharest)") from None
        return name


class Retrieval(Section):
    # Relevance is judged against the chat's background: the query's mean distance to its entries.
    relevance_ratio: float = Field(0.75, gt=0, description="a hit by meaning stands out below this × the background")
    lexical_relevance_ratio: float = Field(
        0.85, gt=0, description="a hit by words stands out below this × the background (the words already point)")
    # A long reply or pasted page holds some of any message's words ("thanks", "times", "today").
    long_lexical_relevance_ratio: float = Field(
        0.82, gt=0, description="a hit by words in a turn holding a message over whole_message_chars stands out "
                                "below this × the background")
    # A statement about oneself bears on what the person said before more by meaning than by
    # words ("they talked me into the weekend rota" ~ "I started turning down shifts"), and in a
    # chat mostly of another language a question's function words are rare there, so a search by
    # words ranks the lines sharing them first: both are judged by meaning first.
    meaning_first_relevance_ratio: float = Field(
        0.82, gt=0, description="a statement about oneself, or a question in another language than English: a "
        "hit by meaning stands out below this × the background")
    meaning_first_lexical_weight: float = Field(
        0.0, ge=0, description="a statement about oneself, or a question in another language than English: the "
        "weight of the word list's ranks in fusion (the others' 1)")
    context_ratio: float = Field(0.5, ge=0, description="next best candidates added as context, per relevant entry")
    rrf_k: float = Field(10.0, gt=0, description="reciprocal-rank fusion: each list gives 1/(rrf_k + rank)")
    beside_weight: float = Field(0.25, ge=0, description="share of the fused scores of the turns beside an "
                                 "entry added to its own")
    lexical_max_df_share: float = Field(
        0.1, gt=0, le=1, description="words in more than this share of a chat's entries are not searched by")
    gap_significance: float = Field(
        3.0, gt=0, description="before a chat has a background: keep a list's head when max gap / mean gap ≥ this")
    small_result_ceiling: float = Field(
        1.5, gt=0, description="before a background, with < 3 results: the distance kept below (squared L2)")
    # "What did we discuss yesterday?" has no topic to stand out.
    temporal_min_results: int = Field(5, ge=0, description="a named period's closest entries kept at least")
    # "What are Kate's hobbies?": her lines need not stand out from the whole chat's to bear on it.
    person_min_results: int = Field(3, ge=0, description="a named person's closest lines kept at least")
    weight_similarity: float = Field(0.6, ge=0, description="blend weight of relevance in an entry's score")
    # A tie-breaker: the recent conversation is L2's, and in L3 an older turn on the subject
    # counts as much as a newer one (each line shows its date); ranked by age, evidence fell out.
    weight_recency: float = Field(0.05, ge=0, description="blend weight of recency in an entry's score")
    weight_popularity: float = Field(0.1, ge=0, description="blend weight of past accesses in an entry's score")
    # Chosen on LoCoMo's tuning conversations: the largest share losing under a point of recall there.
    min_score_share: float = Field(
        0.4, ge=0, le=1, description="an entry is injected only when its score is at least this share of the best's")
    # An event is told over a few turns, and a question's words often match one of them.
    # A statement about its speaker gets, in their place, as many of the next nearest by meaning.
    beside_best: int = Field(
        2, ge=0, description="the turns just before and after this many of the best entries are injected beside them "
        "(for a statement about its speaker: twice this many of the next nearest by meaning instead)")
    # A long reply or pasted page bears on the message in a few sentences: those are injected. A
    # person's message of a few hundred characters is dense with what they did: it stays whole.
    whole_message_chars: int = Field(
        600, ge=0, description="a turn's message up to this many characters is injected whole; a longer one as an "
                               "excerpt of its sentences holding the most of the message's words, and no turns "
                               "beside it are injected")
    excerpt_chars: int = Field(
        200, gt=0, description="at most this many characters of a long message's sentences are injected")
    recency_window_days: float = Field(30.0, gt=0, description="an entry's recency falls to 0 over this many days")
    popularity_norm: float = Field(10.0, gt=0, description="accesses that count as fully popular")


class AITS(Section):
    base: int = Field(2000, ge=0, description="AITS: every turn's token budget starts here")
    confidence_multiplier: int = Field(4000, ge=0, description="AITS: tokens added × the message's question cues (0-1)")
    complexity_bonus: int = Field(2000, ge=0, description="AITS: tokens added × the message's length and parts (0-1)")
    hard_cap: int = Field(12000, gt=0, description="AITS: a turn's budget at most")


class Budget(Section):
    l3_min_guarantee_tokens: int = Field(1200, ge=0, description="L3's first claim on the budget, before L2")
    l2_floor_tokens: int = Field(500, ge=0, description="L2's share at least (wins over L3 on tiny budgets)")
    l1_facts_max_tokens: int = Field(500, ge=0, description="the facts block at most: a fact past it is refused")


class Cache(Section):
    ttl_seconds: int = Field(300, ge=1, description="seconds a question's searches stay in the L2.5 cache")


Encoder = Literal["minilm-l6", "e5-small", "minilm-l6+e5-small"]
ENCODERS: tuple[str, ...] = get_args(Encoder)
DEFAULT_ENCODER: Encoder = "minilm-l6+e5-small"


def encoder_of(record: str) -> str:
    """The encoder's name in what an archive records of the encoder its vectors came from (its
    name, then what else they depend on: ``minilm-l6+e5-small (layout 2, MiniLM 8-bit)``)."""
    return record.split(" ", 1)[0]


# What stands out from the chat's background depends on how an encoder spreads its distances:
# the relevance ratios of e5-small alone (MiniLM's are Retrieval's defaults, and the pair's, which
# compares English by MiniLM), measured on the LoCoMo dev conversations (docs/benchmarks.md). A
# ratio set anywhere (file, environment, run) wins.
ENCODER_RATIOS: dict[str, dict[str, float]] = {
    "e5-small": {"relevance_ratio": 0.8, "lexical_relevance_ratio": 0.85},
}


class Embeddings(Section):
    # The archive is written with it: a process set to another encoder than the archive's
    # refuses to start until `goat reembed` has re-embedded it.
    model: Encoder = Field(
        DEFAULT_ENCODER, description="the sentence encoder of L3's meaning search: minilm-l6+e5-small (both "
        "side by side: English compared by MiniLM, every other language by e5), minilm-l6 (English only) or "
        "e5-small (multilingual)")


class Words(Section):
    # The word index is written with it: a chat indexed with another one is indexed afresh.
    stemmer: str = Field("auto", description="how the word index folds word endings (visited, visits → "
                         "visit): \"auto\" with each text's language's Snowball stemmer (told per script "
                         "and text; Chinese, Japanese, Thai… by character pairs), a Snowball language's "
                         "name for every word, \"none\" keeps words whole")

    @field_validator("stemmer")
    @classmethod
    def _known_stemmer(cls, name: str) -> str:
        if name not in stemmers():
            raise ValueError(f"unknown stemmer {name!r} (one of: {', '.join(stemmers())})")
        return name


class Tools(Section):
    enabled: bool = Field(True, description="offer the memory tools and the plugins' tools to the model")
    plugins_dir: Path | None = Field(None, description="the plugins' folder; unset: <data_dir>/plugins (a "
                                     "missing folder: no plugins)")
    timeout: float = Field(30.0, gt=0, description="seconds per tool call: a stuck tool costs its call, not "
                           "the turn")
    max_calls: int = Field(8, ge=1, description="tool calls per turn; further requests get an error result")


class MemorySettings(Section):
    """Memory's part of the settings tree. The tree a process loads is a subclass, with the
    sections of the layers above (graph/settings.py composes it): memory is given that whole
    object, and a copy it makes (:meth:`with_overrides`) is of that type too."""

    data_dir: Path = Field(Path(".goat"), description="the data folder: the embedded Redis and Chroma, the "
                           "turn log, the plugins")
    identity: Identity = Identity()
    redis: Redis = Redis()
    chroma: Chroma = Chroma()
    letta: Letta = Letta()
    memory: MemorySection = MemorySection()
    prefetch: Prefetch = Prefetch()
    retrieval: Retrieval = Retrieval()
    aits: AITS = AITS()
    budget: Budget = Budget()
    cache: Cache = Cache()
    embeddings: Embeddings = Embeddings()
    words: Words = Words()
    tools: Tools = Tools()

    @model_validator(mode="before")
    @classmethod
    def _encoder_ratios(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        embeddings, retrieval = data.get("embeddings") or {}, data.get("retrieval") or {}
        model = embeddings.model if isinstance(embeddings, Embeddings) else embeddings.get("model", DEFAULT_ENCODER)
        if isinstance(retrieval, Retrieval):
            retrieval = retrieval.model_dump(include=retrieval.model_fields_set)
        if model in ENCODER_RATIOS and isinstance(retrieval, dict):
            data = {**data, "retrieval": {**ENCODER_RATIOS[model], **retrieval}}
        return data

    def with_overrides(self, overrides: Mapping[str, Any], origin: str = "run-time context") -> Self:
        """A copy with dotted-key overrides applied and validated (used for per-run context);
        ``origin`` is where they came from, as errors name it (``--set``)."""
        if not overrides:
            return self
        overrides = current_names(overrides)
        self.check_names(dict.fromkeys(overrides, origin))
        for key in overrides:
            if key.split(".", 1)[0] not in RUN_TIME_SECTIONS:
                raise SettingsError(
                    f"setting {key} is fixed for the process (backends, model, cache are built once); "
                    f"per run only {', '.join(RUN_TIME_SECTIONS)}.* can change"
                )
        items = tuple(sorted(overrides.items(), key=lambda kv: kv[0]))
        try:
            return _overridden(self, items, origin)  # cached: a run resolves them in every node
        except TypeError:  # an unhashable value (a list, a dict) cannot be a cache key
            return _overridden.__wrapped__(self, items, origin)

    @classmethod
    def check_names(cls, origins: Mapping[str, str]) -> None:
        """Refuse names no setting of this tree has (dotted name -> where it came from), every one at once."""
        refuse_unknown_names(cls, origins)

    @classmethod
    def load(cls, path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Self:
        """This tree, read from ``path`` (or ``$GOAT_CONFIG``, or ``./goat.toml`` if present) and the environment."""
        return validated(cls, *read_sources(cls, path, environ))

    @classmethod
    def load_leaving_out_invalid(
        cls, path: str | Path | None = None, environ: Mapping[str, str] | None = None
    ) -> tuple[Self, SettingsError | None]:
        """As :meth:`load`, but a value refused is left at its default instead of stopping the
        load: for `goat doctor`, which reports it among its checks and goes on with the others.

        Returns:
            The settings, and the error naming every value left out (None when none was).

        Raises:
            SettingsError: the file cannot be read, or a name is no setting's.
        """
        data, origins = read_sources(cls, path, environ)
        refused: list[SettingsError] = []
        while True:  # each round drops at least one value: it ends
            try:
                settings = validated(cls, data, origins)
            except SettingsError as exc:
                if not [key for key in exc.keys if drop_dotted(data, key)]:
                    raise
                refused.append(exc)
                continue
            if not refused:
                return settings, None
            return settings, SettingsError("; ".join(map(str, refused)), tuple(k for exc in refused for k in exc.keys))


@lru_cache(maxsize=64)
def _overridden(base: MemorySettings, items: tuple[tuple[str, Any], ...], origin: str) -> MemorySettings:
    data = base.model_dump()
    in_force = {}
    for key, value in items:
        in_force[key] = reduce(getattr, key.split("."), base)  # an encoder's own default shows
        set_dotted(data, key, value)
    return validated(type(base), data, {key: origin for key, _ in items}, in_force)
