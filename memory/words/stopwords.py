"""Frequent words of languages, by which the word index tells the language of a text's words
(:mod:`memory.words.folding`): for each language, the Snowball stemmer its words are folded with
("none": kept whole), the script it is written in, and its commonest words (function words,
greetings), written as people write them; they are folded as texts are when loaded.

A language is told from these words, and from letters only some languages use (``CUES``).
"""

from __future__ import annotations

# language: (stemmer, script, words)
LANGUAGES: dict[str, tuple[str, str, str]] = {
    # ---- Latin script ---------------------------------------------------------------
    "english": ("english", "latin", """
        the and of to in is it that was for on are with as his they be at have this from or had by
        not but what all were we when your can said there an each which she do how their if will up
        other about out many then them these so some her would make like him into has more could
        people my than been who its now did get may me you he our us am does just should very also
        because here where why over yes thanks thank see know got go going want think time good new
        one two well back only even still much most any every something nothing anything really
        please sure okay ok yeah hi hello let don didn doesn isn wasn won couldn wouldn shouldn
        haven hasn aren t ll ve re"""),
    "spanish": ("spanish", "latin", """
        de la que el en y los se del las un por con no una su para es al lo como más pero sus le ya
        o este sí porque esta entre cuando muy sin sobre también me hasta hay donde quien desde
        todo nos durante todos uno les ni contra otros ese eso ante ellos e esto mí antes algunos
        qué unos yo otro otras otra él tanto esa estos mucho quienes nada muchos cual poco ella
        estar estas algunas algo nosotros mi mis tú te ti tu tus ellas vosotros os mío mía tuyo
        suyo nuestro estoy estás está estamos están tengo tiene tienen fue son ser hola gracias"""),
    "portuguese": ("portuguese", "latin", """
        de a o que e do da em um para com não uma os no se na por mais as dos como mas ao ele das
        à seu sua ou quando muito nos já eu também só pelo pela até isso ela entre depois sem
        mesmo aos seus quem nas me esse eles você essa num nem suas meu às minha numa pelos elas
        qual nós lhe deles essas esses pelas este dele tu te vocês vos lhes meus minhas teu tua
        nosso nossa dela esta estes estas aquele aquela isto estou está estamos estão tenho tem
        temos têm foi são ser obrigado obrigada olá"""),
    "french": ("french", "latin", """
        de la le et les des en un du une que est pour qui dans a par plus pas au sur ne se ce il
        sont avec elle ou mais nous vous je tu on son sa ses leur leurs aux cette ces mon ma mes
        ton ta tes y lui moi toi être avoir ai as avons avez ont suis es sommes êtes était été
        c d l j n s qu très aussi comme bien fait faire peut tout tous rien où quand pourquoi
        comment merci bonjour oui non ça cela"""),
    "german": ("german", "latin", """
        der die und in den von zu das mit sich des auf für ist im dem nicht ein eine als auch es
        an werden aus er hat dass sie nach wird bei einer um am sind noch wie einem über einen so
        zum war haben nur oder aber vor zur bis mehr durch man sein wurde sei ich du wir ihr mein
        meine dein deine kann können wenn was schon hier jetzt habe bin bist kein keine sehr gibt
        gut danke hallo ja nein warum wo wann mir mich dir dich uns euch"""),
    "italian": ("italian", "latin", """
        di e il la che in a per un del non sono una i le della con si da al lo gli dei come ma ha
        nel anche più se questo alla o mi ti ci ne io tu lui lei noi voi loro mio mia suo sua cosa
        perché quando sempre molto ancora delle degli nella sul sulla dalla dal ho hai abbiamo è
        era essere stato sta sto questa quello quella tutto tutti già solo ciao grazie c l dell
        nell"""),
    "dutch": ("dutch", "latin", """
        de en van ik te dat die in een hij het niet zijn is was op aan met als voor had er maar om
        hem dan zou of wat mijn men dit zo door over ze zich bij ook tot je mij uit der daar haar
        naar heb hoe heeft hebben deze u want nog zal me zij nu geen omdat iets worden toch al
        waren veel meer doen toen moet ben zonder kan hun dus alles onder ja eens hier wie werd
        altijd wordt kunnen ons zelf tegen na wil kon niets iemand dank bedankt hallo"""),
    "danish": ("danish", "latin", """
        og i jeg det at en den til er som på de med han af for ikke der var mig sig men et har om
        vi min havde ham hun nu over da fra du ud sin dem os op man hans hvor eller hvad skal selv
        her alle vil blev kunne ind når være dog noget ville jo deres efter ned skulle denne end
        dette mit også under have dig anden hende mine alt meget sit sine vor mod disse hvis din
        nogle hos blive mange ad bliver hendes været tak hej fordi så gik kan"""),
    "norwegian": ("norwegian", "latin", """
        og i jeg det at en et den til er som på de med han av ikke der var meg seg men ett har om
        vi min mitt ha hadde hun nå over da ved fra du ut sin dem oss opp man kan hans hvor eller
        hva skal selv her alle vil bli ble blitt kunne inn når være kom noen noe ville dere deres
        kun ja etter ned skulle denne for deg si sine sitt mot å hvorfor dette disse uten hvordan
        ingen din ditt blir samme hvem hvis både bare enn fordi før mange også slik vært takk hei
        eg ikkje kva korleis gikk"""),
    "swedish": ("swedish", "latin", """
        och det att i en jag hon som han på den med var sig för så till är men ett om hade de av
        icke mig du henne då sin nu har inte hans honom skulle hennes där min man ej vid kunde
        något från ut när efter upp vi dem vara vad över än dig kan sina här ha mot alla under
        någon eller allt mycket sedan ju denna själv detta åt utan varit hur ingen mitt ni bli
        blev oss din dessa några deras blir mina samma vilken er sådan vår blivit dess inom mellan
        varför varje vilka ditt vem vilket tack hej"""),
    "finnish": ("finnish", "latin", """
        ja on ei se että oli hän mutta kun niin joka ovat tai kuin mitä jos ole olen olla myös
        minä sinä me te he tämä tuo nyt vain sitten vielä jo hyvin paljon koska mikä missä miten
        kanssa ilman sen sitä niitä ne nämä siinä olisi olivat ollut minun sinun hänen meidän
        teidän heidän kiitos moi mukaan kaikki jotka joita sekä"""),
    "estonian": ("estonian", "latin", """
        ja on ei et see oli ta mis kui ka aga siis ning oma ma mina sa sina me meie te teie nad
        nemad veel kõik kes kus kuidas miks nii ole olen oled olid olnud seda selle sellest ainult
        juba pole mida tema need neid nende ehk ikka kuid palju väga aitäh tere"""),
    "hungarian": ("hungarian", "latin", """
        a az és hogy nem is egy meg de van volt már csak mint el ki be fel le ez azt ezt vagy
        akkor most itt ott nagyon mert mi ti én te ő ők kell lesz lett voltak vannak sok amely ami
        aki ahol mikor hol miért hogyan igen köszönöm szia neki nekem velem veled majd ezek azok
        pedig sem minden mindig után alatt előtt"""),
    "romanian": ("romanian", "latin", """
        și de la în a cu ca pe nu o un una care din pentru să este e se mai ce sunt am ai are au
        fost fi ar lui lor dar sau când unde cum foarte doar acum aici așa eu tu el ea noi voi ei
        ele meu mea tău ta nostru acest aceasta acesta aceste acel acea asta îi îl le mi ți ne vă
        mulțumesc bună da nici tot toate toți după prin către despre sub fără decât cel cea cei
        cele"""),
    "catalan": ("catalan", "latin", """
        de la que el i a en les un per amb no una del els es al com més o però aquest aquesta jo
        tu ell ella nosaltres vosaltres ells elles meu meva seu seva si molt també quan on perquè
        això hi ho li ens us em et ja només tot tots totes fins sense sobre entre ara aquí allà
        estic està som sou són era va van vaig vas fer dels pels pel gràcies bon dia"""),
    "basque": ("basque", "latin", """
        eta da ez bat du dira ere baina zen izan hau hori hura ni zu gu zuek haiek nire zure bere
        gure zuen beren oso edo baino bezala nola non noiz zer zergatik nor dut duzu dugu dute naiz
        zara gara zarete dago daude nago zaude dauka eskerrik asko kaixo egin behar ondo gabe arte
        gero orain hemen han beti inoiz ezer guztia guztiak"""),
    "irish": ("irish", "latin", """
        an na agus ar is a i le ag go ní tá sé sí mar sin seo do de ach ó bhí mo ba nach nuair gan
        chun féin ann orm air uirthi againn agam agat aige aici acu dom duit leis leo liom leat
        linn libh tú mé muid sibh siad é í ea aon eile chomh cad conas cén cathain raibh bhfuil
        níl atá dia"""),
    "lithuanian": ("lithuanian", "latin", """
        ir yra kad tai bet su į iš ne jis ji jie jos aš tu mes jūs mano tavo savo jo jų buvo bus
        kaip kur kada kodėl kas ką nes o ar dar jau tik labai taip pat apie per prie nuo iki po be
        už dėl ačiū labas sveiki šis ši tas ta tie tos visi viskas kuris kuri kurie esu esi
        esame"""),
    "turkish": ("turkish", "latin", """
        ve bir bu da de için ile ben sen o biz siz onlar ne ama çok daha gibi var yok mi mı mu mü
        olarak olan en her kadar sonra önce şimdi nasıl neden nerede evet hayır teşekkürler
        merhaba benim senin onun bizim sizin değil ise ki şu şey çünkü veya ya hem bile artık hiç
        tüm bütün içinde üzerinde bana sana ona"""),
    "indonesian": ("indonesian", "latin", """
        yang dan di ini itu dengan untuk tidak dari dalam akan pada juga saya ke karena ada bisa
        ya atau oleh sudah kami kita mereka anda dia kamu aku apa bagaimana kenapa mengapa dimana
        kapan siapa lebih sangat hanya jika kalau tetapi tapi belum sedang telah masih banyak
        semua setelah sebelum terima kasih adalah seperti saat para agar bahwa tersebut menjadi
        tak lagi boleh ialah kerana sahaja awak"""),  # Malay's words too: its stemmer is this one
    "czech": ("czech", "latin", """
        a v se na je že s z o do to k i ale jak tak jsem jsi jsme jste jsou byl byla bylo byli by
        bych pro po od za u jeho jej ji který která které co kde kdy proč tento tato toto ten ta
        ty my vy oni ona ono on já mi mě mne tebe nás vás jejich můj moje tvůj už jen také velmi
        ještě nebo protože když ani bez při před mezi nad pod děkuji ahoj dobrý není"""),
    "polish": ("polish", "latin", """
        i w z na się nie do to że jest o a jak ale co tak po za od czy tylko już jego jej ich ten
        ta te tego tej tym jestem jesteś są był była było mnie mi ja ty on ona ono my wy oni one
        pan pani bardzo jeszcze gdzie kiedy dlaczego ponieważ bo lub albo przez przy dla przed pod
        nad między bez jako też także może można trzeba dziękuję cześć dzień dobry mam masz ma
        mamy który która które"""),
    "esperanto": ("esperanto", "latin", """
        la kaj de en estas mi vi li ŝi ni ili ĝi al ke ne por kun pri sed tio tiu tiuj kio kiu
        kiuj kie kiam kial kiel mia via lia ŝia nia ilia estis estos esti ankaŭ tre nur jam
        ankoraŭ da el je dum post antaŭ sur sub inter pro se ĉu ĉi dankon saluton bonan unu"""),
    "sesotho": ("sesotho", "latin", """
        le ho ka ya a e ba o ke sa tse ha tsa se ena hore empa kapa kahoo joale mme hape feela
        haholo ntse ntho batho motho mona moo teng jwale kamoo eng mang hobane neng kae jwang rona
        lona bona nna wena yena tsohle kaofela leboha dumela"""),
    "serbian-latin": ("serbian", "latin", """
        i je u da se na su za od sa a o kao ali ne to koji koja koje sam si smo ste bio bila bilo
        bili će biti ja ti on ona ono mi vi oni one moj moja tvoj njegov njen naš vaš njihov što
        šta gdje gde kada kad zašto kako već samo još vrlo jako iz do po pri bez nego ili jer ovo
        taj ta ovaj ova hvala zdravo dobar dan nije nisu ima imam mogu treba"""),  # and Croatian, Bosnian
    "slovak": ("none", "latin", """
        a v sa na je že s z o do to k i ale ako tak som si sme ste sú bol bola bolo boli by pre po
        od za u jeho jej ktorý ktorá ktoré čo kde kedy prečo tento táto toto ten ta my vy oni ona
        ono on ja mi ma mňa teba nás vás ich môj moja tvoj už len tiež veľmi ešte alebo pretože
        keď ani bez pri pred medzi nad pod ďakujem ahoj dobrý nie"""),
    "slovenian": ("none", "latin", """
        in je v na se da za z s so pa ki od do ne tudi kot ali bi bil bila bilo sem si smo ste jaz
        ti on ona mi vi oni moj tvoj njegov kaj kje kdaj zakaj kako že samo še zelo iz po pri brez
        ter ker to ta te tega temu hvala živjo dober dan ni nima imam lahko treba"""),
    "latvian": ("none", "latin", """
        un ir ar uz no par ka kas ko bet vai ja jā es tu viņš viņa mēs jūs viņi mans mana tavs
        tava savs sava tas tā tie bija būs būt esmu esi esam esat nav arī tikai jau vēl ļoti kur
        kad kāpēc kā paldies sveiki labdien pie pēc līdz starp bez zem virs caur pret"""),
    "vietnamese": ("none", "latin", """
        là và của có không những các một được trong cho với này tôi bạn anh em chị người đã sẽ
        đang thì mà như nhiều rất cũng khi nếu vì nên để từ đến ở về gì sao nào ai đây đó vậy rồi
        chưa cảm ơn"""),
    "tagalog": ("none", "latin", """
        ang ng sa na at mga ay ko mo niya siya ako ikaw kami tayo kayo sila hindi oo po ito iyan
        iyon para kung pero din rin lang naman ba kasi may wala meron si ni kay nang dahil kapag
        salamat kumusta paano bakit saan kailan ano sino"""),
    "swahili": ("none", "latin", """
        na ya wa kwa ni za katika la cha vya kama lakini au pia hii hiyo huyo yule mimi wewe yeye
        sisi ninyi wao sana tu bado ndiyo hapana asante habari jambo kwamba kwenye hapa pale sasa
        leo kesho jana nini nani wapi lini vipi"""),
    "albanian": ("none", "latin", """
        dhe të në e i për me nga se që nuk është janë ka kam kemi unë ti ai ajo ne ju ata ato im
        ime yt jote tij saj por ose edhe shumë vetëm kur ku si pse çfarë kjo ky këto
        faleminderit përshëndetje mirë po jo"""),
    "icelandic": ("none", "latin", """
        og að í á er sem ekki en um til var við með hann hún það ég þú þeir þær þau minn mín mitt
        hans hennar þetta þessi svo eða líka bara mjög hvað hvar hvenær af frá fyrir eftir hafa
        hef hefur vera verið takk halló já nei"""),
    "afrikaans": ("none", "latin", """
        die en van in is het nie te wat ek jy hy sy ons julle hulle my jou dit dat om vir op met
        aan as maar ook kan sal was word wees hier daar nou baie net nog al hoe waar wanneer
        hoekom wie dankie hallo goed ja nee"""),
    "welsh": ("none", "latin", """
        y yr a ac yn i o ar am ei eu fy dy ein eich mae oedd bydd roedd wedi ddim nid na ni chi
        nhw fi ti fe hi gyda hefyd ond neu fel pan lle beth pwy pam sut iawn diolch helo bore da
        hwn hon hyn hynny mewn drwy heb dros rhwng"""),
    # ---- Cyrillic script ------------------------------------------------------------
    "russian": ("russian", "cyrillic", """
        и в не на я что он с как а то все она так его но да ты к у же вы за бы по только её мне
        было вот от меня ещё нет о из ему теперь когда даже ну ли если уже или ни быть был него до
        вас нибудь опять вам ведь там потом себя ничего ей может они тут где есть надо ней для мы
        тебя их чем была сам чтоб без чего раз тоже себе под будет тогда кто этот того потому
        этого какой совсем ним здесь этом один почти мой тем чтобы сейчас были куда зачем всех
        никогда можно при два об другой хоть после над больше тот через эти нас про всего них
        какая много разве эту моя хорошо свою этой перед лучше том нельзя такой им более всегда
        конечно всю между это очень спасибо привет"""),
    "ukrainian": ("none", "cyrillic", """
        і й та в у на не що з як це до за для від він вона вони я ти ми ви але або був була було
        були буде є так ні також дуже вже ще тільки коли де чому який яка які мій моя твій його її
        їх цей ця ці той тут там дякую привіт щоб можна треба мене тебе нас вас себе"""),
    "belarusian": ("none", "cyrillic", """
        і ў на не што з як гэта да за для ад ён яна яны я ты мы вы але або быў была было былі
        будзе ёсць так ні таксама вельмі ўжо яшчэ толькі калі дзе чаму які якая якія мой мая
        твой яго яе іх гэты гэтая тут там дзякуй прывітанне"""),
    "bulgarian": ("none", "cyrillic", """
        и на се да за от не е са това че как но ще съм си сме сте бъде който която които или при
        след пред между без много също вече само тук там кога къде защо какво благодаря здравей
        аз ти той тя то ние вие те му ги ни ви по с в към ми ме го беше бяха няма нещо ако тази този
        тези"""),
    "serbian": ("serbian", "cyrillic", """
        и је у да се на су за од са а о као али не то који која које сам си смо сте био била било
        били ће бити ја ти он она оно ми ви они оне мој моја твој његов њен наш ваш њихов што шта
        где када кад зашто како већ само још врло јако из до по при без него или јер ово тај та
        овај ова хвала здраво добар дан није нису има имам могу треба"""),
    "macedonian": ("none", "cyrillic", """
        и е во да се на за од со а о како но не тоа кој која кое сум си сме сте беше бил била било
        биле ќе биде јас ти тој таа ние вие тие мој моја твој негов нејзин наш ваш нивни што каде
        кога зошто веќе само уште многу до по при без или ова овој оваа благодарам здраво добар
        ден нема има имам можам треба"""),
    # ---- Arabic script --------------------------------------------------------------
    "arabic": ("arabic", "arabic", """
        في من على إلى أن ما لا هذا هذه التي الذي كان عن مع هو هي كل قد لم ثم أو بين عند حتى إذا
        بعد قبل لكن نحن أنا أنت هم شكرا مرحبا"""),
    "persian": ("persian", "arabic", """
        و در به از که این را با است برای آن یک خود تا کرد بر هم نیز می شد ما من تو او شما آنها
        بود هست نیست باشد شده کند های ها اما یا چه چرا کجا کی مرسی سلام"""),
    "urdu": ("none", "arabic", """
        کے کی کا میں ہے اور سے کو نے یہ وہ ہیں تھا تھی تھے پر بھی کہ نہیں ایک جو کر گیا ہو رہا
        رہے آپ ہم شکریہ"""),
    # ---- Devanagari -----------------------------------------------------------------
    "hindi": ("hindi", "devanagari", """
        है हैं के की का को में से और यह वह था थे थी पर नहीं भी तो ही एक मैं हम आप क्या कि लिए
        कर रहा रहे गया हो इस उस जो कुछ तुम मेरा मेरी अपने धन्यवाद नमस्ते"""),
    "nepali": ("nepali", "devanagari", """
        छ छन् हो र को का की मा ले लाई पनि यो त्यो म हामी तपाईं के कि थियो गर्न भएको हुन्छ गरेको
        छैन नै त मेरो तिमी उनी धन्यवाद नमस्ते"""),
    "marathi": ("none", "devanagari", """
        आहे आणि या व की ते हे त्या तो ती मी आम्ही तुम्ही नाही होते केले करून असे आहेत पण म्हणून
        माझा माझी धन्यवाद नमस्कार"""),
    # ---- Hebrew script --------------------------------------------------------------
    "hebrew": ("none", "hebrew", """
        של את על זה לא הוא היא עם כי אני גם מה יש אבל או אם כל היה הם אתה לי שלי עוד רק כמו אז
        אין היום תודה שלום"""),
    "yiddish": ("yiddish", "hebrew", """
        איז און דער די דאָס ניט נישט מיט פֿון אויף אַ ער זי מיר איך דו ווי אַז נאָר צו אין געווען
        האָט זיך אויך"""),
}

# Letters only some languages write (as they are after case folding, before diacritics are
# taken off): each one found counts for them as a shared word does. script: {letters: languages}
CUES: dict[str, dict[str, tuple[str, ...]]] = {
    "latin": {
        "ñ": ("spanish",), "ãõ": ("portuguese",), "ç": ("french", "portuguese", "catalan"),
        "őű": ("hungarian",), "șț": ("romanian",), "ğış": ("turkish",), "å": ("swedish", "danish", "norwegian"),
        "æø": ("danish", "norwegian"), "łąęśźżń": ("polish",), "ěřů": ("czech",), "ľĺŕô": ("slovak",),
        "ėįų": ("lithuanian",), "āēīģķļņ": ("latvian",), "ĉĝĥĵŝŭ": ("esperanto",), "þð": ("icelandic",),
        "đ": ("vietnamese", "serbian-latin"), "ơư": ("vietnamese",),
        "ạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ": ("vietnamese",),
    },
    "cyrillic": {
        "ыэ": ("russian", "belarusian"), "ъ": ("bulgarian",), "ё": ("russian",),
        "і": ("ukrainian", "belarusian"), "єґї": ("ukrainian",), "ў": ("belarusian",), "ђћџ": ("serbian",),
        "јљњ": ("serbian", "macedonian"),
        "ѓќѕ": ("macedonian",),
    },
    "arabic": {
        "ةيكى": ("arabic",), "پچژگکی": ("persian", "urdu"), "ٹڈڑںےہ": ("urdu",),
    },
    "hebrew": {"װױײ": ("yiddish",)},
}

# Words of greeting and leave-taking, beside each language's commonest ones, for telling a message
# that names no topic ("ok bye, talk soon", "hey, good morning!", "thanks, that's all for today"):
# in a chat whose sessions open and close with them, the lines closest to such a message are the
# other greetings and goodbyes (the day's own lines are the recent conversation, L2's). Not a
# language's cue: how a text is read (and so its vectors)
# does not depend on them.
GREETINGS: dict[str, str] = {
    "english": "hey bye goodbye morning evening afternoon night talk soon later nice great cool lol haha cheers welcome "
               "today tonight tomorrow",
}
