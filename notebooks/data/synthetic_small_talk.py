"""The synthetic chats' small talk: what fills a session besides its topics (no answers, no topics
of the storylines), and what replies go on with."""

from __future__ import annotations

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

# Said by whoever speaks next when the owner of a storyline must speak first but just spoke.
PROMPTS = (
    "Anyway, what's new with you?", "How have things been on your side?", "And you, anything new?",
    "Tell me something good, what's been happening?", "Your turn, what's the latest?",
)
