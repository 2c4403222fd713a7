"""Topics of the synthetic chats' storylines that happen to a speaker: a pet adopted, a new job,
a move, a family occasion, an injury (:class:`topic.Topic`)."""

from __future__ import annotations

from synthetic_topic import MULTI_HOP, OPEN_DOMAIN, SINGLE_HOP, TEMPORAL, Ask, Topic


PET = Topic(
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
)


JOB = Topic(
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
)


HOME = Topic(
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
)


FAMILY = Topic(
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
)


INJURY = Topic(
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
)
