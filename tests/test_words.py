"""The word index's words in every language: per script and language folding (Snowball stems in
the text's own language, character pairs for scripts written without spaces), short queries
folded like the entries that hold their words, and BM25 over them in real Redis."""

from __future__ import annotations

import unicodedata

import pytest
import redis.asyncio
import Stemmer

from graph.settings import Settings, load_settings
from memory.stores.lexical import LexicalIndex
from memory.words import AUTO, SCHEME, Words, names_nothing, reads_as_english, stemmers, terms
from memory.settings import SettingsError

WORDS = Words()


def stemmed(language: str, text: str) -> list[str]:
    """``text``'s words as one language's Snowball stemmer folds them."""
    return Stemmer.Stemmer(language).stemWords(terms(text))


def matched(query: str, entry: str) -> list[str]:
    """The query's words the entry holds in some form, as the index would match them."""
    return WORDS.found_in(query, entry)


# ---------------------------------------------------------------- cutting texts into words


def test_terms_keep_each_script_whole_and_apart() -> None:
    assert terms("Când AM fost la Brașov? e-mail_2, ȘI ţara") == ["cand", "am", "fost", "la", "brasov", "e",
                                                                  "mail_2", "si", "tara"]
    # Marks that are parts of letters stay (Devanagari's, й); a change of script ends a word.
    assert terms("हिन्दी में बात") == ["हिन्दी", "में", "बात"]
    assert terms("Красный ёжик") == ["красный", "ежик"]
    assert terms("東京2020オリンピックに行きました") == ["東京", "2020", "オリンピック", "に", "行", "きました"]
    assert terms("ｶﾞｷﾞ ＡＢＣ") == ["ガギ", "abc"]  # half- and full-width forms as people mostly type them
    assert terms("user: 我用Python写了一个API") == ["user", "我用", "python", "写了一个", "api"]


def test_scripts_without_spaces_are_cut_into_character_pairs() -> None:
    # Han (and Hangul): single characters are words too; kana, Thai: pairs only.
    assert WORDS("大熊猫") == ["大", "大熊", "熊", "熊猫", "猫"]
    assert WORDS("コーヒー") == ["コー", "ーヒ", "ヒー"]
    assert WORDS("猫") == ["猫"] and WORDS("を") == ["を"]
    assert WORDS("ภาษาไทย") == ["ภา", "าษ", "ษา", "าไ", "ไท", "ทย"]
    assert matched("老虎", "上个周末我们去了北京动物园，看到了大熊猫。") == []  # no pair of it there


# ---------------------------------------------------------------- each language its own stems


@pytest.mark.parametrize(("query", "entry"), [
    ("собака", "Мы купили собаке новый ошейник, потому что старый порвался."),
    ("собаку", "Наши собаки очень любят гулять в парке по утрам."),
    ("собаки", "Вчера мы долго гуляли с нашей собакой в парке, и она нашла там мяч."),
    ("perros", "Mi hermano tiene un perro muy grande que siempre corre en la playa."),
    ("perro", "El fin de semana llevamos a los perros a la playa y corrieron durante horas."),
    ("Hunde", "Meine Schwester hat einen großen Hund, der jeden Morgen im Park spielt."),
    ("Hund", "Meine Schwester hat zwei Hunde, die jeden Morgen im Park spielen."),
    ("chiens", "Nous avons promené le chien de ma sœur dans le parc hier soir."),
    ("gatti", "Il mio gatto dorme tutto il giorno sul divano del soggiorno."),
    ("cachorros", "O meu cachorro gosta muito de brincar no jardim com as crianças."),
    ("σκύλοι", "Ο σκύλος μου παίζει κάθε πρωί στο πάρκο με τα παιδιά."),
])
def test_a_word_finds_another_form_of_it_in_its_language(query: str, entry: str) -> None:
    """A short query (one word, no stopword to tell its language) folds as the entry does."""
    assert matched(query, entry) == [terms(query)[0]]


def test_each_text_is_stemmed_in_its_own_language() -> None:
    spanish = "Los perros de mi vecina ladran toda la noche y no puedo dormir porque están en el patio."
    english = "Her dogs were barking all night and I could not sleep because they stayed in the garden."
    russian = "Мы гуляли с собаками в парке, потому что погода была очень хорошая."
    assert WORDS(spanish) == stemmed("spanish", spanish) != stemmed("english", spanish)
    assert WORDS(english) == stemmed("english", english) != stemmed("spanish", english)
    assert WORDS(russian) == stemmed("russian", russian)
    # A language Snowball has no stemmer for keeps its words whole (Ukrainian is not Russian).
    ukrainian = "Вчора ми гуляли з собакою в парку, бо погода була дуже гарна."
    assert WORDS(ukrainian) == terms(ukrainian)
    assert WORDS("Dnes som bol v obchode, pretože sme potrebovali mlieko a chlieb.") == terms(
        "Dnes som bol v obchode, pretože sme potrebovali mlieko a chlieb.")  # Slovak


def test_english_is_folded_as_before() -> None:
    for text in ["She visited Rome; her visits to Rome, ticket-000250",
                 "user: we adopted a puppy called Biscuit\nassistant: lovely name",
                 "user: booked flights to Rome\nassistant: enjoy the trip",
                 "The café's naïve owner — Zoë — visited us twice.", "puppies", "Where is Biscuit?"]:
        assert WORDS(text) == stemmed("english", text) == Words("english")(text)
    assert WORDS("She visited Rome; her visits to Rome, ticket-000250") == [
        "she", "visit", "rome", "her", "visit", "to", "rome", "ticket", "000250"]


def test_mixed_texts_fold_each_script_by_its_own_language() -> None:
    # Cyrillic words in Russian, the English words among them in English.
    assert WORDS("Я вчера обновил все Docker containers на сервере") == [
        "я", "вчер", "обнов", "все", "docker", "contain", "на", "сервер"]
    # Japanese around Latin words and numbers: each run by itself.
    assert WORDS("iPhone15を買いました") == ["iphone15", "を", "買", "いま", "まし", "した"]
    assert matched("iPhone", "昨日iPhoneを買いました") == ["iphone"]
    assert matched("図書館", "昨日は市立図書館で本を三冊借りました。") == ["図書館"]


@pytest.mark.parametrize(("query", "entry", "found"), [
    ("熊猫", "上个周末我们去了北京动物园，看到了大熊猫，孩子们特别开心。", ["熊猫"]),
    ("动物园", "上个周末我们去了北京动物园，看到了大熊猫。", ["动物园"]),
    ("猫", "我的猫叫小白，它很喜欢睡觉。", ["猫"]),
    ("大熊猫在哪里", "上个周末我们去了北京动物园，看到了大熊猫。", ["大熊猫"]),
    ("コーヒー", "毎朝コーヒーを飲んでから会社に行きます。", ["コーヒー"]),
    ("강아지", "우리 강아지가 공원에서 뛰어놀았어요.", ["강아지"]),
    ("ข้าวผัด", "ฉันชอบกินข้าวผัดมาก", ["ข้าวผัด"]),
])
def test_a_word_is_found_inside_a_run_of_a_script_without_spaces(query: str, entry: str, found: list[str]) -> None:
    assert matched(query, entry) == found


# ---------------------------------------------------------------- queries too short to tell


def test_a_short_query_takes_the_folding_the_index_holds() -> None:
    spanish_chat = set(WORDS("Los perros de mi vecina ladran toda la noche y no puedo dormir."))
    english_chat = set(WORDS("user: my dog Biscuit chewed the tickets; a tick bit him in Rome"))
    asked = WORDS.query("perros")
    assert len(asked.lookups) > 1  # one word tells no language: every candidate form is looked up
    assert asked.choose(spanish_chat) == ["perr"]
    # In an English chat the English form wins, even where another language's is held too
    # ("ticket" is "tick" in Danish): English queries match as they did.
    assert WORDS.query("ticket").choose(english_chat) == ["ticket"] == Words("english")("ticket")
    assert WORDS.query("visiting Rome").choose(english_chat) == ["visit", "rome"]
    # Nothing held: the likeliest folding, as the text itself is indexed.
    assert WORDS.query("perros").choose(set()) == WORDS("perros")


def test_a_query_that_tells_its_language_has_one_folding() -> None:
    asked = WORDS.query("¿Dónde están los perros de mi vecina?")
    assert asked.lookups == asked.choose(set()) == list(dict.fromkeys(stemmed("spanish", "dónde están los perros "
                                                                              "de mi vecina")))
    english = "what did the vet say about the dog's teeth"
    assert WORDS.query(english).lookups == list(dict.fromkeys(Words("english")(english)))


def test_found_in_names_the_query_words_as_written() -> None:
    assert matched("perros ladran", "El perro de mi vecina ladra toda la noche.") == ["perros", "ladran"]
    assert WORDS.found_in("собаки парк", "Мы гуляли с собакой.") == ["собаки"]
    assert Words("none").found_in("puppies", "a puppy") == []


# ---------------------------------------------------------------- the setting and the index's mark


def test_the_scheme_is_named_and_the_setting_takes_a_language_or_auto() -> None:
    assert Settings().words.stemmer == AUTO
    assert Words().stemmer == f"auto-{SCHEME}" != "auto"
    assert Words("english").stemmer == f"english-{SCHEME}" != "english"  # indexes of before: afresh
    assert {"auto", "russian", "spanish", "none"} <= set(stemmers())
    assert load_settings(environ={"GOAT_WORDS__STEMMER": "russian"}).words.stemmer == "russian"
    with pytest.raises(SettingsError, match="unknown stemmer 'klingon'"):
        load_settings(environ={"GOAT_WORDS__STEMMER": "klingon"})
    with pytest.raises(ValueError, match="unknown stemmer"):
        Words("klingon")
    # A forced language folds every spaced word with it, as before; runs are cut into pairs.
    assert Words("spanish")("perros dogs собаки") == ["perr", "dogs", "собаки"]
    assert Words("none")("Perros 熊猫") == ["perros", "熊", "熊猫", "猫"]


def test_a_text_reads_as_english_unless_both_libraries_read_another_language_or_it_is_in_another_script() -> None:
    # What MiniLM (English only) is given by the paired encoder.
    english = ["Hey Mel! How are you?", "user: Where does my sister live?\nassistant: In Valencia.", "hi", "ok",
               "user: I need a gift idea for my dad, he likes woodworking.\nassistant: A Japanese pull saw.",
               "12:30", "Caroline", "I went to Valencia with mi amigo", "Where does Лена live?",
               # As people type in real chats: each read as another language by one of the two libraries.
               "no idea", "Im gonna grab lunch", "cuz im tired", "Man", "Picked up a van", "yt",
               "Sus is short for suspicious", "Im gonna head to bed", "Bye have funnn", "Yeah im the latter",
               "Nah im home and a stray cat followed me", "Picasso, van gogh", "Texas barbecue?", "Hes unsanitary"]
    others = ["¿Qué le pasó a mi teléfono?", "Ich habe einen Hund", "Vou ao mercado amanhã", "bin im Zug", "co robisz",
              "com certeza", "Mi hermana vive en Valencia con su marido.", "Je suis allé à Paris avec ma sœur.",
              "user: Mi hermana se casa en septiembre.\nassistant: ¡Qué buena noticia!",
              "Ojalá encuentres a alguien", unicodedata.normalize("NFD", "Ojalá encuentres a alguien"),
              # Another script is never English, however short.
              "Моя сестра живёт в Валенсии", "妹はバレンシアに住んでいます", "Щедро!",
              "user: Наш пёс Барон порвал диван.\nassistant: Ох, собаки скучают."]
    # Too short for CLD2 to be sure: read as English (a chat of English alone stores them so anyway).
    too_short = ["gracias", "Vamos a la playa", "Mi hermana vive en Valencia.", "Lecker!"]
    assert [text for text in english + too_short if not reads_as_english(text)] == []
    assert [text for text in others if reads_as_english(text)] == []
    assert reads_as_english("\udc80 a lone surrogate")  # a text CLD2 cannot take tells nothing


def test_a_message_names_nothing_when_its_words_are_all_its_languages_commonest() -> None:
    nothing = ["hi, how are you?", "thanks, that's all for now", "thanks, that's all for today", "see you tomorrow!",
               "what about you?", "ok", "👍", "?", "Danke schön", "и что?"]
    # "war" and "men" are German's and Danish's commonest words, but these read as English.
    something = ["war?", "men", "how was your day?", "hola, ¿qué tal?", "42", "Zorblax?", "привет, как дела?"]
    assert [text for text in nothing if not names_nothing(text)] == []
    assert [text for text in something if names_nothing(text)] == []


# ---------------------------------------------------------------- BM25 in Redis

CHAT = [
    ("ru1", "user: Мы купили собаке новый ошейник, потому что старый порвался.\n"
            "assistant: Отличная покупка, собаке будет удобно."),
    ("ru2", "user: Вчера мы ходили в кино на новый фильм.\nassistant: Какой фильм вы смотрели?"),
    ("es1", "user: Los perros de mi vecina ladran toda la noche.\n"
            "assistant: Quizás puedas hablar con ella sobre el problema."),
    ("es2", "user: Mañana tengo una reunión importante en el trabajo.\nassistant: ¡Mucha suerte con la reunión!"),
    ("de1", "user: Meine Schwester hat zwei Hunde, die jeden Morgen im Park spielen.\n"
            "assistant: Das klingt nach viel Bewegung für die Hunde."),
    ("zh1", "user: 上个周末我们去了北京动物园，看到了大熊猫。\nassistant: 大熊猫真的很可爱！"),
    ("zh2", "user: 我的猫叫小白，它很喜欢睡觉。\nassistant: 小白这个名字真好听。"),
    ("zh3", "user: 小猫在白色的沙发上睡觉。\nassistant: 听起来很舒服。"),
    ("ja1", "user: 東京タワーに登りました。\nassistant: 景色はどうでしたか？"),
    ("ja2", "user: 京都の東寺を見ました。\nassistant: 五重塔がきれいですね。"),
    ("en1", "user: We adopted a puppy called Biscuit.\nassistant: Lovely name!"),
    ("en2", "user: My concert ticket arrived today.\nassistant: Enjoy the show."),
    ("en3", "user: A tick bit the dog in the garden.\nassistant: Check him for more."),
]


@pytest.fixture
async def index(redis_url: str):
    client = redis.asyncio.Redis.from_url(redis_url)  # bytes: postings are binary
    index = LexicalIndex(client, "words", Words())
    await index.add("chat", [(entry_id, content, [1.0, float(n), 0.0]) for n, (entry_id, content) in enumerate(CHAT)])
    yield index
    await client.aclose()


@pytest.mark.parametrize(("query", "first"), [
    ("собака", "ru1"), ("собаки", "ru1"), ("новый фильм", "ru2"), ("perro", "es1"), ("reunion", "es2"),
    ("Hund", "de1"), ("熊猫", "zh1"), ("小白", "zh2"), ("東京", "ja1"), ("puppies", "en1"), ("tickets", "en2"),
    ("¿Qué hacen los perros de la vecina?", "es1"),
])
async def test_the_entry_holding_the_words_ranks_first(index: LexicalIndex, query: str, first: str) -> None:
    found = await index.search("chat", query, k=5, max_df_share=0.5)
    assert found and found[0][0] == first, found


async def test_the_words_mark_and_every_word_search(index: LexicalIndex) -> None:
    meta = await index._redis.hget(index.entries.key("chat", "meta"), "words")
    assert meta.decode() == f"auto-{SCHEME}" and not await index.outdated("chat")
    assert await LexicalIndex(index._redis, "words", Words("english")).outdated("chat")
    ids = [entry_id for entry_id, _ in CHAT]

    async def holding(text: str) -> list[str]:
        return [ids[n] for n in await index.holding_every_word("chat", text, limit=10)]

    assert await holding("perros") == ["es1"]
    assert await holding("собаку") == ["ru1"]
    assert await holding("小白") == ["zh2"]  # zh3 holds 小 and 白, not 小白
    assert await holding("ticket") == ["en2"]  # not "tick" (Danish for "ticket")
