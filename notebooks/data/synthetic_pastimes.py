"""Topics of the synthetic chats' storylines that a speaker takes up: a trip, a race, a craft,
a recipe, a book, a garden, volunteering, a concert (:class:`topic.Topic`)."""

from __future__ import annotations

from synthetic_topic import MULTI_HOP, OPEN_DOMAIN, SINGLE_HOP, TEMPORAL, Ask, Topic


TRIP = Topic(
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
)


RACE = Topic(
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
)


CRAFT = Topic(
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
)


COOKING = Topic(
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
)


BOOK = Topic(
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
)


GARDEN = Topic(
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
)


VOLUNTEER = Topic(
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
)


CONCERT = Topic(
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
)
