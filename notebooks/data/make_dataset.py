"""Make ``synthetic-chats.json`` beside this file: the labelled chats the tuning notebooks run on.

Five chats between two friends, each 10 to 17 sessions over two to four months and 150 to 275
turns, written in LoCoMo's JSON format (``bench/locomo.py`` reads it unchanged) with questions of
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

OUTPUT = Path(__file__).with_name("synthetic-chats.json")
SEED = 26

# Spelled out, not strftime's %A/%B: those follow the process's locale, and the output must not.
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
MULTI_HOP, TEMPORAL, OPEN_DOMAIN, SINGLE_HOP = 1, 2, 3, 4


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


@dataclass(frozen=True)
class Ask:
    """A question a storyline answers: from its event alone, or from the event and its follow-up."""

    category: int
    question: str
    answer: str
    needs: str = "event"  # "event" or "both"


@dataclass(frozen=True)
class Topic:
    """A kind of storyline. Templates are ``str.format`` strings over the storyline's slot values,
    ``owner`` and ``partner`` (the speakers' names), ``when``/``When`` (the event's time phrase),
    ``date`` (the date it names) and, in chatter, ``other[slot]`` (a value the storyline lacks)."""

    name: str
    label: str  # what a dated question calls the topic ("What did Maya say about {label} ...")
    slots: dict[str, tuple]  # slot -> options; an option that is a dict sets several slots
    event: tuple[str, ...]  # the owner tells it
    reaction: tuple[str, ...]  # the partner answers
    summary: str  # the event, as a dated question's answer
    asks: tuple[Ask, ...]
    chatter: tuple[tuple[str, str], ...]  # exchanges on the topic that answer nothing
    echo: tuple[tuple[str, str], ...]  # an exchange that repeats one slot value elsewhere
    # After the event: the owner comes back to it, answering nothing (recent turns on the question's words).
    callbacks: tuple[tuple[str, str], ...]
    follow_up: tuple[str, ...] = ()  # a later session: a detail, naming the event by a handle only
    follow_up_reaction: tuple[str, ...] = ()
    tally: tuple[str, str] | None = None  # (question, slot): a speaker's storylines of the topic, together


TOPICS = (
    Topic(
        name="pet", label="pets",
        slots={
            "pet": ({"animal": "dog", "breed": "beagle"}, {"animal": "dog", "breed": "border collie"},
                    {"animal": "dog", "breed": "greyhound"}, {"animal": "dog", "breed": "corgi"},
                    {"animal": "cat", "breed": "tabby"}, {"animal": "cat", "breed": "Maine Coon"},
                    {"animal": "dog", "breed": "labrador mix"}),
            "pet_name": ("Biscuit", "Pepper", "Mochi", "Olive", "Ziggy", "Waffles", "Nacho", "Juniper"),
            "source": ("the shelter on Elm Street", "a rescue group my coworker helps out", "a farm outside town",
                       "a family who was moving abroad"),
            "lesson_day": ("Tuesday", "Wednesday", "Thursday", "Monday"),
        },
        event=(
            "Guess what, {when} we brought a {breed} home from {source}! We're calling the little one {pet_name}.",
            "{When} I finally did it and picked up a {breed} from {source}. Name's {pet_name}, and the flat is chaos.",
            "Big news from my side: {when} a {breed} came home with me from {source}. Say hello to {pet_name}!",
        ),
        reaction=(
            "No way! A {breed}? Send me pictures of {pet_name} right now.",
            "{owner}, that's wonderful. {pet_name} is such a cute name.",
            "Aww! How is {pet_name} settling in with you?",
        ),
        follow_up=(
            "{pet_name} chewed through two charging cables, so now it's obedience lessons every {lesson_day} evening.",
            "The trainer says {pet_name} is smart but stubborn, so we go to lessons every {lesson_day} evening now.",
        ),
        follow_up_reaction=("Ha, {pet_name} is keeping you busy!", "Good call, lessons worked wonders for my aunt's dog."),
        summary="that {owner} had brought home a {breed} called {pet_name}",
        asks=(
            Ask(SINGLE_HOP, "What kind of {animal} did {owner} adopt?", "a {breed}"),
            Ask(SINGLE_HOP, "What is the name of {owner}'s new {animal}?", "{pet_name}"),
            Ask(TEMPORAL, "When did {owner} get the {breed}?", "{date}"),
            Ask(MULTI_HOP, "On which evening does {owner} take the {breed} to training?", "{lesson_day}", "both"),
            Ask(OPEN_DOMAIN, "Would {owner} look for pet-friendly places when going on holiday?",
                "Likely yes: {owner} has a {breed} named {pet_name}"),
        ),
        chatter=(
            ("My neighbour's {other[breed]} barks at every delivery van, it drives me nuts.",
             "Oh no, I'd lose my mind. Earplugs?"),
            ("Do you think dogs or cats are less work?", "Cats, surely. Dogs need walks in every weather."),
            ("Pet food prices went up again, I noticed at the supermarket.", "Everything went up, honestly."),
            ("I watched a video of a dog riding a skateboard, best thing on the internet.", "Send it over, I need a laugh."),
            ("My parents' old cat has to take pills twice a day now.", "Poor thing. Does she let them?"),
            ("There's a new dog park opening by the river.", "Nice, more room for the zoomies."),
            ("Did you have pets growing up?", "A hamster called Pickles. He escaped twice."),
            ("My cousin is fostering three kittens at the moment.", "Three! Her sofa must be in shreds."),
            ("A {other[breed]} tried to steal my sandwich in the park today.", "Ha, bold move. Did it win?"),
        ),
        callbacks=(
            ("The {animal} knocked a glass off the table again this morning.", "Ha, pure chaos. Was it full?"),
            ("I spent way too much on toys for the {animal} today.", "Totally worth it though."),
            ("Took the {animal} to the vet for a check-up, all healthy.", "Phew, good news."),
            ("My {animal} has decided the sofa is theirs now.", "Sounds like you've lost that battle."),
            ("Walking the {animal} in the rain this morning was a mistake.", "Ha, wet fur everywhere?"),
            ("Bought a little bed for the {animal}, it sleeps on the floor next to it instead.", "Classic pet logic."),
            ("The {animal} woke me up at five again, demanding breakfast.", "Who's the boss in your house?"),
        ),
        echo=(("I saw a {breed} at the café this morning, such a sweet face.", "They're everywhere once you notice them."),),
    ),
    Topic(
        name="job", label="work",
        slots={
            "job": ({"role": "data analyst", "company": "a logistics startup called Shipwise", "employer": "Shipwise",
                     "project": "the new warehouse scanning system"},
                    {"role": "project coordinator", "company": "the city library", "employer": "the city library",
                     "project": "the summer reading programme"},
                    {"role": "junior architect", "company": "a small design studio downtown", "employer": "a design studio",
                     "project": "the kindergarten extension"},
                    {"role": "support team lead", "company": "SunPath, the solar panel installer", "employer": "SunPath",
                     "project": "the move to a new ticket system"},
                    {"role": "pediatric nurse", "company": "St. Mary's children's hospital", "employer": "St. Mary's",
                     "project": "the night-shift handover checklist"}),
            "manager": ("Priyanka", "Gareth", "Ines", "Victor", "Ruth"),
        },
        event=(
            "I said yes to the offer {when}! I'm starting as a {role} at {company} next month.",
            "{When} I signed the contract: {role} at {company}. Still can't believe it.",
        ),
        reaction=("Congratulations, {owner}! You totally deserve it.", "That's huge! How do you feel about leaving the old place?"),
        follow_up=(
            "Only a few weeks in and my manager {manager} already asked me to run {project}.",
            "{manager}, my manager, put me in charge of {project}. Slightly terrified, mostly excited.",
        ),
        follow_up_reaction=("They clearly trust you already!", "You'll be great at it, you always are with projects."),
        summary="that {owner} had accepted a job as {role} at {employer}",
        asks=(
            Ask(SINGLE_HOP, "What position was {owner} offered?", "{role}"),
            Ask(SINGLE_HOP, "Which employer hired {owner}?", "{employer}"),
            Ask(TEMPORAL, "When did {owner} accept the new job?", "{date}"),
            Ask(MULTI_HOP, "What did {owner}'s boss in the {role} job ask them to lead?", "{project}", "both"),
            Ask(OPEN_DOMAIN, "Is {owner} likely to be job hunting these days?",
                "No: {owner} recently became a {role} at {employer}"),
        ),
        chatter=(
            ("Work has been non-stop, I barely had time for lunch.", "Same here, it never lets up."),
            ("My brother wants to quit his bank job and open a bakery.", "Brave! I'd buy his bread every day."),
            ("Do you ever think about changing careers?", "All the time, mostly on Sunday evenings."),
            ("Our office coffee machine broke again.", "That's a proper crisis."),
            ("I dreamt I showed up to a job interview in my pyjamas.", "Classic stress dream, lol."),
            ("My team keeps getting meetings booked at five in the afternoon.", "That should be against the law."),
            ("Did you read about the four-day work week trial?", "Yes, I'd sign up in a heartbeat."),
            ("A recruiter messaged me about a {other[role]} role, no idea why.", "Ha, they message everyone."),
        ),
        callbacks=(
            ("Long day at the new job again, I'm wiped.", "Go rest, you've earned it."),
            ("Still getting lost in the new office building, it's a maze.", "Give it a month, you'll be fine."),
            ("My commute to the new job is only twenty minutes, it's bliss.", "That's the dream."),
            ("The new team took me out for lunch today.", "Aw, they sound lovely."),
            ("Had my first big presentation at the new job today.", "How did it go? I bet you nailed it."),
            ("I finally learned everyone's names at work.", "That's the real milestone."),
            ("The new job has a rooftop terrace, I eat lunch up there.", "Okay, now I'm jealous."),
        ),
        echo=(("A friend of mine did an internship at {employer} years ago.", "Small world! Did she like it?"),),
    ),
    Topic(
        name="trip", label="travelling",
        slots={
            "trip": ({"city": "Lisbon", "highlight": "riding the old yellow tram up to the castle"},
                     {"city": "Kyoto", "highlight": "a tea ceremony in a tiny wooden house"},
                     {"city": "Edinburgh", "highlight": "the ghost tour through the underground vaults"},
                     {"city": "Montreal", "highlight": "warm bagels at midnight from a wood-fired bakery"},
                     {"city": "Vienna", "highlight": "standing-room opera tickets for four euros"},
                     {"city": "Oaxaca", "highlight": "a cooking class where we made mole from scratch"},
                     {"city": "Reykjavik", "highlight": "bathing in a hot spring while it snowed"}),
            "companion": ({"companion": "my sister", "companion_noun": "sister"},
                          {"companion": "my old roommate Jess", "companion_noun": "old roommate Jess"},
                          {"companion": "my parents", "companion_noun": "parents"},
                          {"companion": "two friends from work", "companion_noun": "two friends from work"}),
        },
        event=(
            "Just got back from {city}, we flew out {when}, {companion} and me. Hands down the best part was {highlight}.",
            "{When} {companion} and I escaped to {city} for a few days. My favourite thing was {highlight}.",
        ),
        reaction=("Jealous! {city} has been on my list forever.", "That sounds dreamy, {owner}. Did you bring anything back?"),
        summary="that {owner} had been to {city}",
        asks=(
            Ask(SINGLE_HOP, "Who went with {owner} to {city}?", "{owner}'s {companion_noun}"),
            Ask(SINGLE_HOP, "What did {owner} enjoy most about visiting {city}?", "{highlight}"),
            Ask(TEMPORAL, "When did {owner} travel to {city}?", "{date}"),
        ),
        chatter=(
            ("I really need a holiday, even just a weekend away.", "Same. Somewhere with no emails."),
            ("Flights are so expensive this summer.", "I know, and the trains aren't much cheaper."),
            ("My cousin keeps posting beach photos from Bali.", "Mute her until you're on a beach yourself."),
            ("Have you ever been to {other[city]}?", "Not yet, but it's high on my list."),
            ("I once lost my passport at an airport, worst day ever.", "Oh no! How did you get home?"),
            ("Do you pack the night before or the morning of?", "The morning of, always in a panic."),
            ("My colleague just came back from {other[city]} with a suitcase full of cheese.", "Priorities!"),
        ),
        callbacks=(
            ("I printed some photos from {city} for the fridge.", "Show me next time you're over!"),
            ("Still dreaming about the food in {city}.", "Stop, you're making me hungry."),
            ("I keep looking at flights back to {city}.", "Ha, it got you, didn't it?"),
            ("Made coffee the way they do it in {city} this morning.", "Was it as good as there?"),
            ("My suitcase from the {city} trip is still half unpacked.", "Ha, it'll live there now."),
            ("Found a souvenir from {city} in my coat pocket today.", "Those little surprises are the best."),
        ),
        echo=(("My boss is flying to {city} next month for a conference.", "Lucky! Tell them to try the food."),),
        tally=("Which cities has {owner} travelled to?", "city"),
    ),
    Topic(
        name="race", label="sport",
        slots={
            "race": ({"race": "10K charity run", "finish": "57 minutes"},
                     {"race": "half marathon", "finish": "two hours and four minutes"},
                     {"race": "sprint triathlon", "finish": "an hour and twenty minutes"},
                     {"race": "charity bike ride along the coast", "finish": "just under four hours"}),
            "cause": ({"cause": "the children's hospital", "cause_noun": "a children's hospital"},
                      {"cause": "a mental health charity", "cause_noun": "mental health"},
                      {"cause": "the local food bank", "cause_noun": "a food bank"},
                      {"cause": "an animal rescue", "cause_noun": "an animal rescue"}),
            "rest": ("two weeks", "three weeks", "a month"),
        },
        event=(
            "{When} I did the {race} for {cause} and finished in {finish}! My legs are still jelly.",
            "So I survived the {race} {when}: {finish}, and all of it for {cause}.",
        ),
        reaction=("That's amazing, {owner}! I can't even run for a bus.", "So proud of you! How much did you raise?"),
        follow_up=("My knee has been swollen since the race, and the physio says no running for {rest}.",
                   "Physio verdict on the knee after that race: rest for {rest}, then slowly build up again."),
        follow_up_reaction=("Ouch. Listen to the physio this time!", "Rest up, the next race can wait."),
        summary="that {owner} had done a {race} for {cause}",
        asks=(
            Ask(SINGLE_HOP, "Which cause did {owner} raise money for?", "{cause_noun}"),
            Ask(SINGLE_HOP, "What was {owner}'s finishing time in the {race}?", "{finish}"),
            Ask(TEMPORAL, "When did {owner} take part in the {race}?", "{date}"),
            Ask(MULTI_HOP, "How long was {owner} told to rest after the event for {cause_noun}?", "{rest}", "both"),
            Ask(OPEN_DOMAIN, "Would {owner} likely sign up for another sponsored sports event?",
                "Likely yes: {owner} did a {race} for {cause_noun}"),
        ),
        chatter=(
            ("I keep telling myself I'll start jogging.", "Tomorrow, right? Always tomorrow."),
            ("Did you watch the marathon on TV?", "Only the end. Those runners are not human."),
            ("My gym membership is basically a donation at this point.", "Ha, mine too."),
            ("Someone in my building runs up the stairs every morning.", "That's dedication, or madness."),
            ("New running shoes cost more than my first car, I swear.", "Right? It's a racket."),
            ("My sister wants me to do a {other[race]} with her.", "Do it, it'd be fun together!"),
        ),
        callbacks=(
            ("My legs finally stopped aching after the {race}.", "Took a while! Worth it?"),
            ("Already looking at races for next year, send help.", "You've caught the bug."),
            ("I framed my medal from the {race}.", "As you should!"),
            ("Went for my first run since the {race}, slow but happy.", "Slow is still running!"),
            ("People at work keep asking me about the {race}.", "You're famous now."),
        ),
        echo=(("My cousin volunteers for {cause} on weekends.", "That's lovely of her."),),
    ),
    Topic(
        name="home", label="their home",
        slots={
            "home": ({"rooms": "a two-bedroom flat", "landmark": "the botanical garden"},
                     {"rooms": "a tiny studio", "landmark": "the central train station"},
                     {"rooms": "a ground-floor apartment with a yard", "landmark": "the old brewery"},
                     {"rooms": "a top-floor flat", "landmark": "the university library"}),
            "feature": ("a balcony that gets sun all afternoon", "a kitchen window looking over the river",
                        "an old wood stove that actually works", "a bathtub with little lion feet"),
        },
        event=("We signed the lease {when} on {rooms} near {landmark}! Moving boxes everywhere.",
               "{When} I signed for {rooms} right by {landmark}. Goodbye, mouldy bathroom!"),
        reaction=("Finally! Do you need help carrying things?", "A new place! I want the full tour, {owner}."),
        follow_up=("Unpacked at last, and the best surprise in the new place is {feature}.",
                   "You know what I love most about the new flat? {feature}."),
        follow_up_reaction=("That sounds perfect. Housewarming soon?", "I'm coming over to see it."),
        summary="that {owner} had rented {rooms} near {landmark}",
        asks=(
            Ask(SINGLE_HOP, "What kind of place did {owner} rent?", "{rooms} near {landmark}"),
            Ask(TEMPORAL, "When did {owner} sign the rental contract?", "{date}"),
            Ask(MULTI_HOP, "What does {owner} like best about the home near {landmark}?", "{feature}", "both"),
            Ask(OPEN_DOMAIN, "Does {owner} still live in the same place as at the start?",
                "No: {owner} moved to {rooms} near {landmark}"),
        ),
        chatter=(
            ("Rent in this city is absurd.", "Tell me about it, half my salary."),
            ("My landlord still hasn't fixed the heating.", "Report him! That's not okay."),
            ("I keep scrolling through houses I can't afford.", "Same, it's my guilty pleasure."),
            ("Our building's lift is broken again.", "Stairs are free exercise, I guess."),
            ("Flat-pack instructions should count as a puzzle game.", "With one screw always missing."),
            ("The neighbours above us move furniture at midnight.", "What are they even doing up there?"),
        ),
        callbacks=(
            ("Still unpacking boxes at the new place, how do I own so much stuff?", "Everyone says that after a move."),
            ("The neighbours in the new building seem nice.", "That makes such a difference."),
            ("I bought a rug for the new living room.", "Pictures, please!"),
            ("Hung the first pictures on the walls of the new place.", "It's starting to feel like home then."),
            ("The new apartment is so quiet at night, I sleep like a baby.", "Best upgrade ever."),
            ("Still figuring out which light switch does what in the new flat.", "Ha, give it a year."),
        ),
        echo=(("I walked past {landmark} on my way home, it was packed.", "Must have been the nice weather."),),
    ),
    Topic(
        name="craft", label="hobbies",
        slots={
            "craft": ({"craft": "pottery", "made": "a lopsided blue mug", "gift": "a set of glazes"},
                      {"craft": "watercolour", "made": "a painting of the harbour at sunset", "gift": "good brushes"},
                      {"craft": "woodworking", "made": "a little walnut cutting board", "gift": "a set of chisels"},
                      {"craft": "jewellery making", "made": "silver earrings shaped like leaves", "gift": "a pair of pliers"},
                      {"craft": "bread baking", "made": "a sourdough loaf with a proper crust", "gift": "a proving basket"}),
            "teacher": ("Marguerite", "Desmond", "Yuki", "Bruno", "Anneke"),
            "teacher_fact": ("a retired sailor with the best stories", "about eighty and sharper than all of us",
                             "a former stunt double", "the calmest person I've ever met"),
        },
        event=("{When} I went to my first {craft} class at the community centre. The teacher, {teacher}, is {teacher_fact}.",
               "I started {craft} lessons {when}! Our teacher {teacher} is {teacher_fact}."),
        reaction=("I love that for you, {owner}!", "Oh fun! Show me what you make."),
        follow_up=("I finally finished something in class: {made}! Not perfect, but I love it.",
                   "Look what I made at my class this week, {made}. My first proper piece!"),
        follow_up_reaction=("It's gorgeous, you're a natural!", "Wow, you have to make me one."),
        summary="that {owner} had started {craft} lessons with {teacher}",
        asks=(
            Ask(SINGLE_HOP, "Who teaches {owner}'s {craft} course?", "{teacher}"),
            Ask(TEMPORAL, "When did {owner} begin the {craft} course?", "{date}"),
            Ask(MULTI_HOP, "What did {owner} create in {teacher}'s course?", "{made}", "both"),
            Ask(OPEN_DOMAIN, "What would make a good birthday present for {owner}?",
                "something for {craft}, e.g. {gift}"),
        ),
        chatter=(
            ("I want a hobby that doesn't involve a screen.", "Same, my phone is eating my brain."),
            ("My aunt sells her paintings at the Sunday market.", "That's so cool, does she sell many?"),
            ("Have you seen those videos of people restoring old furniture?", "Yes! So satisfying."),
            ("I bought a sketchbook in January and it's still empty.", "Ha, the classic."),
            ("Someone at work knits during meetings.", "Honestly, respect."),
            ("Do you think {other[craft]} is hard to learn?", "Everything's hard at first, right?"),
        ),
        callbacks=(
            ("Spent the whole evening practising {craft}, lost track of time.", "That's the best feeling."),
            ("Class was fun again, the teacher told us another wild story.", "I want to hear those stories!"),
            ("My {craft} stuff has taken over the kitchen table.", "A true artist's studio."),
            ("I watched tutorials about {craft} until two in the morning.", "You're obsessed, I love it."),
            ("Bought some new supplies for {craft}, my wallet is crying.", "Hobbies are expensive."),
            ("Skipped class this week and I actually missed it.", "That's how you know it's a good one."),
        ),
        echo=(("The community centre is putting on a {craft} exhibition.", "Oh, we should go and have a look."),),
    ),
    Topic(
        name="family", label="family",
        slots={
            "occasion": ({"occasion": "my sister's wedding", "occasion_noun": "sister's wedding"},
                         {"occasion": "my grandma's 90th birthday party", "occasion_noun": "grandmother's 90th birthday"},
                         {"occasion": "my brother's graduation", "occasion_noun": "brother's graduation"},
                         {"occasion": "my parents' 40th anniversary dinner", "occasion_noun": "parents' anniversary"}),
            "venue": ("a vineyard up in the hills", "a boat on the lake", "my uncle's old barn", "a little cinema they rented"),
            "moment": ("a speech that made the whole room cry", "the dog carrying the rings in its mouth",
                       "everyone singing in three languages", "a surprise fireworks show at midnight"),
        },
        event=("{occasion} was {when}, at {venue}. What I'll remember is {moment}.",
               "{When} we had {occasion} at {venue}, and the best bit was {moment}."),
        reaction=("That sounds so special, {owner}.", "I'm tearing up just hearing about it!"),
        summary="that {owner}'s {occasion_noun} was at {venue}",
        asks=(
            Ask(SINGLE_HOP, "Where was {owner}'s {occasion_noun} held?", "{venue}"),
            Ask(SINGLE_HOP, "What moment stayed with {owner} from the {occasion_noun}?", "{moment}"),
            Ask(TEMPORAL, "When was {owner}'s {occasion_noun} celebrated?", "{date}"),
        ),
        chatter=(
            ("Our family group chat is pure chaos.", "Ours is just my uncle forwarding memes."),
            ("My mum sent me forty photos of her garden again.", "That's adorable though."),
            ("Are you going home for the holidays this year?", "Probably, if I can get the days off."),
            ("My cousin's kids are already taller than me.", "Time flies, it's scary."),
            ("My grandad finally learned to video call.", "Big milestone! Does he hold the phone to his ear?"),
        ),
        callbacks=(
            ("Still looking at the photos from the {occasion_noun}.", "Send me the best ones!"),
            ("My mum keeps talking about the {occasion_noun}, she loved it.", "Of course she did."),
            ("The family group chat is still full of {occasion_noun} pictures.", "Ha, it'll never end."),
            ("My aunt sent me a video from the {occasion_noun}, I'm in the background dancing badly.", "I need to see that."),
            ("Still recovering from all the food at the {occasion_noun}.", "Sounds like a proper party."),
        ),
        echo=(("A friend of mine is planning something at {venue} too.", "Must be the place to be."),),
    ),
    Topic(
        name="injury", label="their health",
        slots={
            "injury": ({"injury": "sprained my ankle", "injury_noun": "sprained ankle"},
                       {"injury": "broke my wrist", "injury_noun": "broken wrist"},
                       {"injury": "pulled a muscle in my back", "injury_noun": "back injury"}),
            "cause": ("playing five-a-side football", "slipping on ice outside the bakery",
                      "carrying a sofa up three floors", "bouldering at the climbing gym"),
            "recovery": ("six weeks of physio", "a brace for a month", "ten days of ice and rest"),
        },
        event=("Ugh, {when} I {injury} {cause}. Feeling very sorry for myself.",
               "Small disaster {when}: I {injury} {cause}."),
        reaction=("Oh no, {owner}! Are you okay?", "Ouch! Do you need anything?"),
        follow_up=("The doctor finally gave me a plan for it: {recovery}, then slowly back to normal.",
                   "Doctor's verdict came back: {recovery}. Could be worse!"),
        follow_up_reaction=("Take it easy, seriously.", "At least there's a plan now."),
        summary="that {owner} had a {injury_noun}",
        asks=(
            Ask(SINGLE_HOP, "How did {owner} get hurt?", "{cause}"),
            Ask(TEMPORAL, "When did {owner} injure themselves?", "{date}"),
            Ask(MULTI_HOP, "What treatment did {owner} need for the {injury_noun}?", "{recovery}", "both"),
        ),
        chatter=(
            ("I think I'm coming down with a cold.", "Drink lots of tea and sleep!"),
            ("My back hurts from sitting all day.", "Get one of those standing desks."),
            ("The dentist said I need a filling, great.", "Ugh, I hate the drill noise."),
            ("I slept nine hours and still feel tired.", "Winter does that to me too."),
            ("My friend {other[injury]} last year and still complains about it.", "Those things take forever."),
        ),
        callbacks=(
            ("The {injury_noun} is a bit better today.", "Good, don't push it."),
            ("Hobbling around with this {injury_noun}, very glamorous.", "Ha, you'll be back to normal soon."),
            ("Sleeping is still hard with the {injury_noun}.", "Ugh, I'm sorry."),
            ("First day without painkillers for the {injury_noun}.", "Progress! Take it slow."),
            ("My physio exercises for the {injury_noun} are so boring.", "Boring but necessary, sadly."),
        ),
        echo=(("There was an ambulance outside the climbing gym today.", "Hope everyone's okay."),),
    ),
    Topic(
        name="cooking", label="cooking",
        slots={
            "dish": ("pierogi", "lamb tagine", "green curry", "shakshuka", "cinnamon buns"),
            "cook": ({"cook": "my grandmother", "cook_noun": "grandmother"},
                     {"cook": "my neighbour Karim", "cook_noun": "neighbour Karim"},
                     {"cook": "my aunt Noi", "cook_noun": "aunt Noi"}, {"cook": "my uncle Lars", "cook_noun": "uncle Lars"}),
            "secret": ("a spoon of honey at the end", "toasting the spices in a dry pan first", "browning the butter",
                       "a splash of pickle juice"),
        },
        event=("{When} I made {dish} from {cook}'s recipe, and they actually tasted like home.",
               "Cooking win {when}: {dish} following {cook}'s recipe, first try!"),
        reaction=("Save me some next time!", "That's impressive, {owner}. Was it hard?"),
        follow_up=("I worked out the trick in {cook}'s recipe: {secret}. Makes all the difference.",
                   "Made {cook}'s recipe again for friends, and the secret is {secret}."),
        follow_up_reaction=("Noted, I'm stealing that.", "I'd never have guessed that."),
        summary="that {owner} had cooked {dish} from a family recipe",
        asks=(
            Ask(SINGLE_HOP, "Whose recipe did {owner} follow for the {dish}?", "{owner}'s {cook_noun}"),
            Ask(TEMPORAL, "When did {owner} cook the {dish}?", "{date}"),
            Ask(MULTI_HOP, "What is the trick to the {dish} {owner} makes?", "{secret}", "both"),
            Ask(OPEN_DOMAIN, "What could {owner} bring to a potluck dinner?", "{dish}, from {owner}'s {cook_noun}'s recipe"),
        ),
        chatter=(
            ("I burned rice again. How do you even burn rice?", "Talent, clearly."),
            ("What did you have for dinner?", "Cereal. Don't judge me."),
            ("There's a new noodle place near my work.", "Any good? I'm always hungry."),
            ("I bought way too many vegetables and now they're all going soft.", "Soup! Everything becomes soup."),
            ("Do you like {other[dish]}?", "Love it, if someone else makes it."),
            ("My oven takes forever to heat up.", "Mine has two settings: off and volcano."),
        ),
        callbacks=(
            ("I made the {dish} again, this time for my neighbours.", "They must love you now."),
            ("Everyone keeps asking me to cook {dish} for them.", "That's what you get for being good at it."),
            ("I bought a proper pot just for making {dish}.", "Serious commitment."),
            ("Tried a vegetarian version of the {dish}, not bad at all.", "Ooh, I'd try that."),
            ("My kitchen smelled of {dish} for two days.", "Best kind of smell."),
        ),
        echo=(("The café near me started selling {dish} on Fridays.", "Worth a try?"),),
    ),
    Topic(
        name="book", label="reading",
        slots={
            "book": ({"book": "The Remains of the Day", "author": "Kazuo Ishiguro"},
                     {"book": "Project Hail Mary", "author": "Andy Weir"},
                     {"book": "Piranesi", "author": "Susanna Clarke"},
                     {"book": "The Overstory", "author": "Richard Powers"},
                     {"book": "Circe", "author": "Madeline Miller"}),
            "recommender": ("my dentist", "a stranger on the train", "my book club", "my old English teacher"),
            "verdict": ({"verdict": "made me cry on the bus", "opinion": "moving: it made them cry on the bus"},
                        {"verdict": "felt rushed, honestly", "opinion": "rushed"},
                        {"verdict": "was perfect, I read it twice", "opinion": "perfect: they read it twice"}),
        },
        event=("{When} I started {book} by {author}; {recommender} wouldn't stop talking about it.",
               "{When} I picked up {book}, the {author} one, because {recommender} insisted."),
        reaction=("Ooh, tell me if it's good!", "I've heard great things about that one."),
        follow_up=("Finished the novel {recommender} pushed on me. The ending {verdict}.",
                   "So that book {recommender} recommended? Done. The ending {verdict}."),
        follow_up_reaction=("Now I have to read it.", "Ha, good review."),
        summary="that {owner} was reading {book}",
        asks=(
            Ask(SINGLE_HOP, "Which novel is {owner} reading?", "{book} by {author}"),
            Ask(SINGLE_HOP, "Who suggested {book} to {owner}?", "{recommender}"),
            Ask(TEMPORAL, "When did {owner} begin reading {book}?", "{date}"),
            Ask(MULTI_HOP, "What did {owner} think of the ending of the {author} novel?", "{opinion}", "both"),
        ),
        chatter=(
            ("I haven't finished a book in months.", "Audiobooks count, try those!"),
            ("The library fines are so cheap now.", "Good, I owe them a fortune."),
            ("Do you like e-readers or paper?", "Paper, I like the smell."),
            ("My book club picked a 900-page novel, help.", "Skim the middle, nobody will know."),
            ("Have you read anything by {other[author]}?", "One book, ages ago. Liked it."),
        ),
        callbacks=(
            ("I'm halfway through {book}, can't put it down.", "No spoilers!"),
            ("Stayed up way too late reading again.", "A good book will do that."),
            ("I read on the train today and missed my stop.", "Ha, it must be good then."),
            ("I keep thinking about one of the characters in {book}.", "That's the sign of a good book."),
            ("Almost done with {book}, trying to make it last.", "I know that feeling."),
        ),
        echo=(("{author} is doing a reading at the bookshop on the corner.", "Oh, that could be fun."),),
    ),
    Topic(
        name="garden", label="gardening",
        slots={
            "plant": ("tomatoes", "chillies", "strawberries", "courgettes"),
            "harvest": ("a whole colander", "about forty", "two full bowls", "more than anyone can eat"),
            "plot": ("on the balcony", "in a community garden plot", "in pots on the windowsill"),
        },
        event=("{When} I planted {plant} {plot}, fingers crossed they survive me.",
               "New project {when}: {plant}, growing {plot}. Wish me luck."),
        reaction=("Green fingers, {owner}!", "Ooh, I want some when they're ready."),
        follow_up=("Harvest report: {harvest} so far, from a few little seedlings!",
                   "Guess how much I picked this week? {harvest}. I'm a farmer now."),
        follow_up_reaction=("That's a real harvest!", "Bring some over, please."),
        summary="that {owner} had planted {plant} {plot}",
        asks=(
            Ask(SINGLE_HOP, "What did {owner} plant?", "{plant}"),
            Ask(TEMPORAL, "When did {owner} put in the {plant}?", "{date}"),
            Ask(MULTI_HOP, "How much did {owner} harvest from the {plant}?", "{harvest}", "both"),
        ),
        chatter=(
            ("My houseplants are dying again.", "Too much water, probably."),
            ("Slugs ate all my lettuce.", "Beer traps! My grandma swore by them."),
            ("Is it too late in the year to plant anything?", "Herbs are always fine, I think."),
            ("The park has the tulips out already.", "Spring is coming!"),
            ("My neighbour grows {other[plant]} on her roof.", "On the roof? That's ambitious."),
        ),
        callbacks=(
            ("The {plant} are finally growing, little green shoots everywhere!", "Ah, exciting!"),
            ("Watered the {plant} twice today, it's so hot.", "Don't forget to water yourself."),
            ("A pigeon keeps attacking my {plant}.", "The nerve of that bird."),
            ("Moved the {plant} to a sunnier spot today.", "Smart, they'll love it."),
            ("I talk to my {plant} now, is that weird?", "Totally normal. Probably."),
        ),
        echo=(("The market had the best {plant} today.", "I'm jealous, ours were sad."),),
    ),
    Topic(
        name="volunteer", label="volunteering",
        slots={
            "org": ({"org": "the food bank on Harbour Road", "task": "sorting donations"},
                    {"org": "the primary school's reading club", "task": "reading with seven-year-olds"},
                    {"org": "a community radio station", "task": "hosting a jazz hour"},
                    {"org": "the river clean-up crew", "task": "fishing rubbish out of the river"}),
            "day": ("Saturday morning", "Tuesday night", "Sunday afternoon"),
            "role_up": ("train the new volunteers", "run the whole rota", "speak at the fundraiser"),
        },
        event=("{When} I signed up to volunteer with {org}, {task} every {day}.",
               "I started helping out at {org} {when}: {task}, every {day}."),
        reaction=("That's really nice of you, {owner}.", "Love that. How did you find them?"),
        follow_up=("The coordinator asked me to {role_up}, apparently I'm good at this.",
                   "Plot twist, they want me to {role_up} now."),
        follow_up_reaction=("Of course they do!", "Well deserved."),
        summary="that {owner} had started volunteering with {org}",
        asks=(
            Ask(SINGLE_HOP, "What does {owner} do as a volunteer?", "{task} at {org}"),
            Ask(TEMPORAL, "When did {owner} start volunteering?", "{date}"),
            Ask(MULTI_HOP, "What new responsibility did {owner} get in the volunteering at {org}?", "to {role_up}", "both"),
            Ask(OPEN_DOMAIN, "Would {owner} be free on a {day} to meet?", "Unlikely: {owner} volunteers then"),
        ),
        chatter=(
            ("I should give back more, I feel like I just work and sleep.", "Start small, an hour a month."),
            ("Did you see the charity shop closed?", "No! That was my favourite."),
            ("My school is asking parents to help with the fair.", "Do it, you'd be great."),
            ("There's a blood drive at the town hall.", "I fainted last time, but I'll try again."),
        ),
        callbacks=(
            ("Long volunteering shift today, but so much fun.", "You sound happy about it."),
            ("The other volunteers are such a nice bunch.", "That's the best part."),
            ("A kid at the volunteering told me I was her favourite.", "Aww, that's the best."),
            ("Missed my volunteering shift this week and felt guilty all day.", "You're allowed a week off!"),
            ("The volunteering is getting busier, they need more people.", "Maybe I'll come along."),
        ),
        echo=(("There was a piece on the news about {org}.", "Good, they deserve the attention."),),
    ),
    Topic(
        name="concert", label="music",
        slots={
            "show": ({"band": "Arctic Monkeys", "venue_c": "the arena"},
                     {"band": "a Fleetwood Mac tribute band", "venue_c": "the old theatre"},
                     {"band": "the city symphony", "venue_c": "the concert hall"},
                     {"band": "Little Simz", "venue_c": "a sweaty basement club"},
                     {"band": "Khruangbin", "venue_c": "an open-air stage by the lake"}),
        },
        event=("{When} I saw {band} live at {venue_c}, my ears are still ringing!",
               "Went to {band} {when}, at {venue_c}. Incredible night."),
        reaction=("I'm so jealous, {owner}!", "Ah, what did they open with?"),
        summary="that {owner} had seen {band}",
        asks=(
            Ask(SINGLE_HOP, "Where did {owner} watch {band} perform?", "{venue_c}"),
            Ask(TEMPORAL, "When did {owner} see {band} live?", "{date}"),
        ),
        chatter=(
            ("Concert tickets are so expensive now.", "And the fees! Why are there fees?"),
            ("I've had the same song stuck in my head for three days.", "Which one? No, don't tell me."),
            ("Do you still play the guitar?", "Only when nobody's home."),
            ("{other[band]} announced a tour, did you see?", "Yes! Tickets sold out in minutes."),
        ),
        callbacks=(
            ("Still humming the songs from that {band} show.", "Ha, it was that good?"),
            ("I bought a {band} T-shirt at the merch stand, wearing it now.", "Very cool."),
            ("My friend sent me a video from the {band} show, you can hear me screaming.", "Ha, that's commitment."),
            ("Listened to {band} all the way to work again.", "Still not over it?"),
        ),
        echo=(("They were playing {band} in the supermarket today.", "Ha, fancy supermarket."),),
        tally=("Which live acts has {owner} seen?", "band"),
    ),
)

# Small talk: what fills a session besides its topics (no answers, no topics of the storylines).
# Lines ``str.format`` over ``first`` and ``second``: the names of who says the first and second line.
OPENERS = (
    ("Hey {second}! How's your week going?", "Hi {first}! Busy, but good. Yours?"),
    ("Morning! Did you sleep at all last night?", "Barely, the neighbours had a party."),
    ("Hi! Got a minute to chat?", "Always, I was just making tea."),
    ("Hey you, I've been meaning to text you for days.", "Same! Life keeps happening."),
    ("{second}! Long time no talk.", "I know, sorry {first}, it's been a mad few weeks."),
    ("Hello hello, how are things?", "Pretty good, actually. How about you?"),
    ("Hey, good evening! Free to catch up?", "Yes, finally some quiet time."),
)
CLOSERS = (
    ("Okay, I have to run. Talk soon!", "Bye! Say hi to everyone."),
    ("I should sleep, early start tomorrow.", "Good night, {first}!"),
    ("Anyway, dinner's ready, chat later?", "Sure, enjoy!"),
    ("This was nice, let's not wait so long next time.", "Deal. Take care, {first}."),
    ("Gotta go, my phone's about to die.", "Ha, go charge it. Bye!"),
)
SMALL_TALK = (
    ("It's been raining all day here.", "Same, I didn't leave the sofa."),
    ("Finally some sunshine today!", "I know, I sat outside at lunch for once."),
    ("Are you watching anything good at the moment?", "A baking show. It's very calming."),
    ("I need more coffee, I'm falling asleep.", "Make it a double."),
    ("Traffic was horrible this morning.", "Roadworks everywhere, it's the season apparently."),
    ("Have you seen that meme with the confused cat?", "Yes! I sent it to everyone."),
    ("My phone screen cracked again.", "Time for a case that actually protects it."),
    ("What are you up to this evening?", "Nothing much, maybe a film."),
    ("I tried a new café, the croissants were enormous.", "Enormous croissants are the best kind."),
    ("I'm so tired today.", "Same. Early night for both of us."),
    ("The supermarket was out of oat milk again.", "The oat milk shortage is real."),
    ("I finally cleaned my inbox.", "Inbox zero? Who are you?"),
    ("Do you want to grab lunch sometime?", "Yes, let's pick a day."),
    ("My internet has been so slow.", "Have you tried turning it off and on again?"),
    ("I started a puzzle with a thousand pieces.", "Brave. Mine are still in the box."),
    ("It's so windy my umbrella flipped inside out.", "Classic. RIP umbrella."),
    ("I can't decide what to have for dinner.", "Pasta. The answer is always pasta."),
    ("Have you heard the new podcast everyone's talking about?", "Not yet, is it any good?"),
    ("My plans got cancelled, so it's a quiet evening.", "Honestly, sounds lovely."),
    ("I found an old photo of us from school.", "Oh no, the haircuts!"),
    ("How's everyone at home?", "All good, thanks for asking."),
    ("I bought a plant and named it Steve.", "Hi Steve!"),
    ("Do you ever just stare at the fridge hoping food appears?", "Every single day."),
    ("The bus was late, then two came at once.", "The eternal mystery of buses."),
    ("I learned a new card game, it's surprisingly fun.", "Teach me next time!"),
    ("My playlist keeps shuffling to the same three songs.", "The shuffle knows what you like."),
    ("It's freezing in my flat.", "Blanket and hot chocolate, immediately."),
    ("I've been trying to drink more water.", "Same, I keep forgetting."),
    ("What's the best thing that happened to you today?", "A stranger complimented my jacket."),
    ("I accidentally liked a photo from five years ago.", "Oh no. Just own it."),
)
# What replies often go on with, as in LoCoMo's chats: encouragement, a question back.
REPLY_TAILS = (
    "I'm really happy for you.", "How are you feeling about it all?", "You always manage to surprise me.",
    "Tell me more next time we meet.", "That made my day, honestly.", "I've been thinking about that a lot lately.",
    "We should celebrate soon.", "Anyway, how's the rest of your week looking?", "You deserve all the good things.",
    "I can totally picture it.", "Let me know if you need anything.", "It's funny how these things work out.",
    "I wish I had your energy, seriously.", "It sounds like a lot, but a good lot.", "Keep me posted, okay?",
    "That reminds me, we still need to plan that dinner.", "Life is never boring with you around.",
    "I hope you're taking some time for yourself too.",
)
REPLY_TAIL_SHARE = 0.5  # of the second lines of exchanges

# Said by whoever speaks next when the owner of a storyline must speak first but just spoke.
PROMPTS = (
    "Anyway, what's new with you?", "How have things been on your side?", "And you, anything new?",
    "Tell me something good, what's been happening?", "Your turn, what's the latest?",
)


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
