"""A bilingual user: an English LoCoMo conversation with sixty-one lines in Russian, Spanish and
German told between its sessions, measured against the same conversation alone. `goat bench
--sections bilingual` reports it per conversation; tests/test_bilingual.py holds it to its aims.

What it asks of memory: English questions recall what they recall without the other lines,
at about the same L3 tokens, and draw almost none of them; an off-topic message injects
little; a question in the line's own language, in other words, finds its line among the three
best injected. Those questions come in two halves: the tuning one (Russian and Spanish), and a
held-back one, in topics and phrasings the first lacks and in German too, which decides.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from graph.observability.why_report import TurnReport
from bench.support.locomo import Conversation, build_conversation, evidence_recall, sessions_of

# (language, the user's line, the reply): twenty in each language, each about something of its
# own, told at the end of the conversation's sessions.
LINES: list[tuple[str, str, str]] = [
    ("ru", "Мой брат Костя наконец купил себе мотоцикл, красный «Иж» семидесятых годов.", "Классика! Пусть ездит осторожно."),
    ("ru", "Бабушка научила меня печь пирожки с капустой по её старому рецепту.", "Вкусно, наверное, получилось."),
    ("ru", "На даче у нас поселился ёжик, каждую ночь шуршит под крыльцом.", "Какой милый сосед."),
    ("ru", "Я записался в бассейн и плаваю по утрам три раза в неделю.", "Отличная привычка."),
    ("ru", "Соседи сверху опять затопили нашу ванную, пришлось вызывать сантехника.", "Какая неприятность."),
    ("ru", "Мы с друзьями сплавлялись на байдарках по Карелии целую неделю.", "Звучит как приключение."),
    ("ru", "Моя кошка Муся родила четырёх котят, двоих мы уже раздали.", "Поздравляю с пополнением!"),
    ("ru", "Я перечитываю «Мастера и Маргариту», в третий раз нахожу новое.", "Великая книга."),
    ("ru", "На работе меня назначили ответственным за переезд офиса на новое место.", "Большая ответственность."),
    ("ru", "Племянник сдал экзамен по вождению только с третьей попытки.", "Главное, что сдал."),
    ("ru", "Я купил старую гитару на барахолке и учусь играть по видеоурокам.", "Удачи в учёбе!"),
    ("ru", "У мамы юбилей в марте, мы собираем всю семью в ресторане.", "Прекрасный повод собраться."),
    ("ru", "Я сломал палец на ноге, когда споткнулся о табуретку в темноте.", "Выздоравливай скорее."),
    ("ru", "Мы посадили на балконе помидоры черри и базилик в ящиках.", "Летом будет свой урожай."),
    ("ru", "Дядя Миша подарил мне старинные карманные часы своего отца.", "Ценный подарок."),
    ("ru", "Я начал вести дневник расходов, чтобы копить на новую машину.", "Разумный подход."),
    ("ru", "В подъезде поставили новый лифт, и он уже дважды застревал.", "Надеюсь, починят."),
    ("ru", "Сестра переехала в Новосибирск и работает там в больнице медсестрой.", "Пусть ей там будет хорошо."),
    ("ru", "Я выиграл в лотерею пятьсот рублей и купил на них мороженое всем коллегам.", "Щедро!"),
    ("ru", "Зимой мы ездили в Суздаль и катались на санях с лошадьми.", "Очень атмосферно."),
    ("es", "Mi prima Carmen abrió una pastelería pequeña en el centro de Granada.", "¡Qué valiente! Mucho éxito."),
    ("es", "Mi abuelo me enseñó a jugar al mus durante las vacaciones.", "Es un juego muy divertido."),
    ("es", "Se me quemó la paella del domingo porque me quedé dormido en el sofá.", "Le pasa a cualquiera."),
    ("es", "Estoy entrenando para correr la media maratón de Valencia en diciembre.", "¡Mucho ánimo con los entrenamientos!"),
    ("es", "Mi vecina tiene un loro que dice mi nombre cada mañana.", "¡Qué gracioso!"),
    ("es", "Compré una furgoneta vieja y la estoy convirtiendo en una casa rodante.", "Un proyecto precioso."),
    ("es", "Mi hijo pequeño perdió su primer diente y lo dejó debajo de la almohada.", "¡Vendrá el Ratoncito Pérez!"),
    ("es", "Me apunté a clases de flamenco los jueves por la tarde.", "¡Olé! Disfrútalo."),
    ("es", "La caldera del piso se estropeó y pasamos tres días sin agua caliente.", "Qué incomodidad."),
    ("es", "Mi tía Rosa cumple noventa años y le preparamos una fiesta sorpresa.", "¡Qué bonito!"),
    ("es", "Encontré en el desván las cartas que mis padres se escribían de novios.", "Un tesoro familiar."),
    ("es", "Me han regalado una cafetera italiana y ahora hago el café como en Nápoles.", "¡Buen provecho!"),
    ("es", "Mi perra Luna aprendió a abrir la puerta de la nevera ella sola.", "¡Qué lista!"),
    ("es", "En el trabajo nos cambiaron a todos a la oficina nueva junto al puerto.", "Las vistas serán bonitas."),
    ("es", "Plantamos un limonero en el patio en memoria de mi abuela.", "Un homenaje muy bonito."),
    ("es", "Me robaron la bicicleta delante de la biblioteca aunque tenía candado.", "Qué rabia."),
    ("es", "Mi hermano se casa en Menorca el próximo verano y yo seré el padrino.", "¡Enhorabuena!"),
    ("es", "Estoy aprendiendo a tejer y ya terminé mi primera bufanda de lana.", "¡Qué habilidad!"),
    ("es", "Fuimos a ver las Fallas y los petardos asustaron muchísimo al bebé.", "Es mucho ruido para un bebé."),
    ("es", "Mi compañero de piso se va a vivir a Berlín y busco a alguien nuevo.", "Ojalá encuentres a alguien majo."),
]

# (line number in LINES, a question about it in its own language, in other words).
QUESTIONS: list[tuple[int, str]] = [
    (0, "Какой транспорт приобрёл мой брат?"),
    (2, "Какое животное живёт у нас за городом?"),
    (6, "Сколько детёнышей появилось у моей кошки?"),
    (12, "Что случилось с моей ногой?"),
    (17, "Куда переехала моя сестра и кем она работает?"),
    (20, "¿Qué negocio puso mi prima?"),
    (23, "¿Para qué carrera me estoy preparando?"),
    (26, "¿Qué le pasó a mi hijo con un diente?"),
    (32, "¿Qué truco aprendió mi perra?"),
    (36, "¿Dónde será la boda de mi hermano?"),
]

# The held-back half: lines in topics the tuning half lacks, in Russian, Spanish and German (a
# language the tuning half does not use), and questions about them phrased otherwise (requests,
# questions without their mark, indirect ones). Nothing was chosen or tuned on them.
HELD_BACK_LINES: list[tuple[str, str, str]] = [
    ("ru", "Стоматолог поставил мне коронку на верхний зуб, жевать пока больно.", "Скоро привыкнешь."),
    ("ru", "Дочка записалась в музыкальную школу по классу скрипки.", "Пусть занимается с удовольствием!"),
    ("ru", "В субботу ездили на зимнюю рыбалку, поймали двух окуней через лунку.", "Улов есть улов."),
    ("ru", "Я вступил в шахматный клуб при библиотеке, играем по средам.", "Отличное хобби для ума."),
    ("ru", "Мы взяли ипотеку на двухкомнатную квартиру у парка.", "Поздравляю с новосельем!"),
    ("ru", "По выходным я теперь помогаю в приюте для собак, выгуливаю их.", "Собаки будут рады."),
    ("ru", "Весной у меня сильная аллергия на пыльцу берёзы.", "Тяжёлое время года."),
    ("ru", "Сын собрал скворечник на уроке труда и повесил его на яблоню.", "Молодец, пусть птицы живут."),
    ("es", "Me compré un telescopio pequeño y anoche vi los anillos de Saturno.", "¡Qué emoción!"),
    ("es", "Tomé mi primera clase de surf en Cantabria y me caí veinte veces.", "Así se aprende."),
    ("es", "Ayudé a mi abuelo con la recogida de aceitunas en su finca de Jaén.", "Trabajo duro pero bonito."),
    ("es", "Se me rompió la pantalla del móvil al bajar del autobús.", "Qué mala suerte."),
    ("es", "Entré en un coro de la parroquia y cantamos en Navidad.", "¡Qué bonito!"),
    ("es", "Adoptamos una tortuga que se llama Manolita.", "¡Qué nombre tan gracioso!"),
    ("es", "Estoy haciendo un curso de cerámica y ya torneé mi primer cuenco.", "¡Enhorabuena!"),
    ("de", "Ich habe endlich meinen Motorradführerschein bestanden.", "Glückwunsch, fahr vorsichtig!"),
    ("de", "Unsere Waschmaschine ist ausgelaufen und hat den Keller überschwemmt.", "Ärgerlich!"),
    ("de", "Meine Oma hat mir beigebracht, wie man Pflaumenkuchen backt.", "Lecker!"),
    ("de", "Ich bin dem Ruderverein am See beigetreten und trainiere zweimal pro Woche.", "Toller Sport."),
    ("de", "Mein Bruder zieht nach Hamburg, weil er dort eine Stelle im Hafen bekommen hat.", "Spannend für ihn."),
    ("de", "Wir haben im Garten ein Hochbeet für Kräuter gebaut.", "Frische Kräuter sind super."),
]
# (line number in HELD_BACK_LINES, a question about it in its own language).
HELD_BACK_QUESTIONS: list[tuple[int, str]] = [
    (0, "Напомни, что мне сделали у зубного врача"),
    (1, "На каком инструменте учится играть моя дочь?"),
    (3, "Подскажи, по каким дням у меня шахматы"),
    (5, "Где я провожу выходные последнее время?"),
    (8, "Recuérdame qué planeta vi por el telescopio"),
    (10, "No me acuerdo dónde está la finca del abuelo"),
    (13, "¿Cómo se llama nuestra mascota nueva?"),
    (15, "Welchen Führerschein habe ich gemacht?"),
    (16, "Erinnere mich, was mit dem Keller passiert ist"),
    (18, "In welchem Verein bin ich jetzt Mitglied?"),
    (19, "Warum zieht mein Bruder um?"),
]

# Messages about nothing in the chat.
OFF_TOPIC = ["hi, how are you?", "What is the capital of Mongolia?", "Tell me a joke about penguins.",
             "Can you explain how a transistor works?", "thanks, that's all for now"]


# Every line told in the bilingual chat (the held-back ones after the tuning ones: ``X40``…), and
# per half, the questions asked about them: (dialog id of the line, the question).
TOLD = LINES + HELD_BACK_LINES
ASKED = {"tuning": [(f"X{line}:1", question) for line, question in QUESTIONS],
         "held-back": [(f"X{len(LINES) + line}:1", question) for line, question in HELD_BACK_QUESTIONS]}


def with_other_languages(record: dict[str, Any], lines: list[tuple[str, str, str]] = TOLD) -> dict[str, Any]:
    """The LoCoMo record with ``lines`` told by its first speaker (and answered by the second)
    at the ends of its sessions, spread evenly over them; their dialog ids are ``X<n>:<m>``."""
    told = copy.deepcopy(record)
    conversation = told["conversation"]
    speaker_a, speaker_b = conversation["speaker_a"], conversation["speaker_b"]
    numbers = sessions_of(told)
    for n, (_, line, reply) in enumerate(lines):
        session = conversation[f"session_{numbers[n * len(numbers) // len(lines)]}"]
        session += [{"speaker": speaker_a, "dia_id": f"X{n}:1", "text": line},
                    {"speaker": speaker_b, "dia_id": f"X{n}:2", "text": reply}]
    return told


@dataclass
class Measured:
    """One chat's answers to the English questions and the other messages."""

    recall: float  # evidence recall over the English questions (mean)
    l3_tokens: float  # L3 tokens a question (mean)
    other_language_lines: float  # lines in Russian or Spanish injected a question (mean)
    off_topic_tokens: float  # L3 tokens an off-topic message (mean)
    # per half: own-language questions whose line is among the three best injected, of those asked
    found_in_own_language: dict[str, int]
    asked_in_own_language: dict[str, int]
    questions: int  # English questions asked


def other_language_ids(conversation: Conversation) -> set[str]:
    """The archive ids of the lines in other languages than English."""
    return {entry for dialog, entry in conversation.dialog_to_entry.items() if dialog.startswith("X")}


async def measure(inspect: Callable[[str, str], Awaitable[TurnReport]], conversation: Conversation,
                  bilingual: bool) -> Measured:
    """Ask ``conversation``'s English questions, the off-topic messages and (``bilingual``) the
    other languages' ones, per half, through ``inspect(chat_id, message) -> turn report``."""
    others = other_language_ids(conversation)
    recalls, tokens, drawn = [], [], []
    for question in conversation.answerable():
        report = await inspect(conversation.chat_id, question.text)
        injected = {entry["id"] for entry in report["l3"]}
        recalls.append(evidence_recall(question, injected))
        tokens.append(report["tokens"]["l3"])
        drawn.append(len(injected & others))
    off_topic = [(await inspect(conversation.chat_id, message))["tokens"]["l3"] for message in OFF_TOPIC]
    asked = ASKED if bilingual else {}
    found = {half: 0 for half in asked}
    for half, questions in asked.items():
        for line, question in questions:
            report = await inspect(conversation.chat_id, question)
            best = sorted(report["l3"], key=lambda entry: -entry["blended_score"])[:3]
            found[half] += conversation.dialog_to_entry[line] in {entry["id"] for entry in best}
    return Measured(_mean(recalls), _mean(tokens), _mean(drawn), _mean(off_topic), found,
                    {half: len(questions) for half, questions in asked.items()}, len(recalls))


def conversations(record: dict[str, Any]) -> tuple[Conversation, Conversation]:
    """The conversation alone and told with the other languages' lines, as two chats."""
    sample = record.get("sample_id", "conversation")
    alone = build_conversation(record, chat_id=f"alone-{sample}")
    return alone, build_conversation(with_other_languages(record), chat_id=f"bilingual-{sample}")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
