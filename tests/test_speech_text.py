"""What the voice says of a reply's sentences (`speech_text`), without sockets or engines: no
markup read aloud, numbers as a person reads them, the display text left to the text frames."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from live_server.core.speech_english import number_words, ordinal_words
from live_server.core.speech_text import LANGUAGES, Language, SpeechText
from live_server.core.splitter import SentenceSplitter


@pytest.mark.parametrize(
    ("sentence", "said"),
    [
        ("**Paris** is the capital of France.", "Paris is the capital of France."),
        ("1. It has the *Eiffel Tower*.", "It has the Eiffel Tower."),
        ("- a bullet with __strong__ and ~~old~~ words", "a bullet with strong and words."),
        ("~~Old price~~ New price: $19.99!", "New price: nineteen dollars and ninety-nine cents!"),
        ("• Decorative ★ bullets ✓ and → arrows", "Decorative bullets and arrows."),
        ("## Summary", "Summary."),
        ("> A quoted line.", "A quoted line."),
        ("- **Monday:** rain", "Monday: rain."),
        ("`Paris` is great.", "Paris is great."),
        ("See [the guide](https://example.com/a_(b)) now.", "See the guide now."),
        (
            "See https://en.wikipedia.org/wiki/Paris for more.",
            "See en dot wikipedia dot org for more.",
        ),
        ("Visit <https://www.example.org/x?y=1>.", "Visit example dot org."),
        ("Mail me at www.python.org/downloads today", "Mail me at python dot org today"),
        (
            "Visit bbc.co.uk/news, or ann@example.com.",
            "Visit bbc dot co dot uk, or ann@example.com.",
        ),
        ("Open config.yaml with Node.js.", "Open config.yaml with Node.js."),
        ("Great news 🎉🚀 for all 👍🏽!", "Great news for all!"),
        ("| Name | Age |", "Name, Age."),
        ("|---|:---:|", ""),
        ("| Ann | 31 |", "Ann, thirty-one."),
        ("---", ""),
        ("Line<br>break and <b>bold</b>.", "Line break and bold."),
        (
            "keep snake_case_names and 2*3 as they are",
            "keep snake_case_names and two times three as they are",
        ),
        # A row or an item ending in a sign or a bracket still ends with a sentence's pause.
        ("| Paris | 18°C | 20% |", "Paris, eighteen degrees Celsius, twenty percent."),
        ("- **Pasta**: 200 g (about 7 oz)", "Pasta: two hundred grams (about seven ounces)."),
        ("- Salt (to taste.)", "Salt (to taste.)"),
        # A citation, a footnote's mark, inline math's dollar signs, a face in punctuation.
        (
            "It holds [1] and [^2], cited【3†source】; $E = mc^2$ and \\(a^2\\) cost $5 :) ;-P",
            "It holds and, cited; E equals mc squared and a squared cost five dollars",
        ),
    ],
)
def test_markup_is_not_read_aloud(sentence: str, said: str) -> None:
    assert SpeechText().say(sentence) == said


@pytest.mark.parametrize(
    ("sentence", "said"),
    [
        ("It costs $5.99.", "It costs five dollars and ninety-nine cents."),
        ("$1, £2.50 and €3m", "one dollar, two pounds and fifty pence and three million euros"),
        ("It rose 50% and 12.5%.", "It rose fifty percent and twelve point five percent."),
        ("Meet at 3:30 pm.", "Meet at three thirty p.m."),
        ("At 9:05 am, 15:00 and 00:00.", "At nine oh five a.m., three p.m. and midnight."),
        (
            "From 13:05 to 00:30, or 12:00.",
            "From one oh five p.m. to twelve thirty a.m., or twelve o'clock.",
        ),
        (
            "Open 9am to 5 PM, or 11 a.m. on Sundays.",
            "Open nine a.m. to five p.m., or eleven a.m. on Sundays.",
        ),
        ("Call 911 now.", "Call nine one one now."),
        ("Call 10 people and ring 3 times.", "Call ten people and ring three times."),
        (
            "Call us on +44 20 7946 0958.",
            "Call us on plus four four, two zero, seven nine four six, zero nine five eight.",
        ),
        # A phone number in its shape is read in its groups, with or without "call".
        (
            "Ring (555) 123-4567, or 1-800-555-0199 and +1 415 555 2671; 200-1500 kcal.",
            "Ring five five five, one two three, four five six seven, or one, eight zero zero, "
            "five five five, zero one nine nine and plus one, four one five, five five five, two "
            "six seven one; two hundred to one thousand five hundred kilocalories.",
        ),
        (
            "On Mon, Dec 7, Fri 5 June, 03/15/2026 and 15/03/2026; Sun is up, Sat 3 hours.",
            "On Monday, December seventh, Friday the fifth of June, March fifteenth, twenty "
            "twenty-six and the fifteenth of March, twenty twenty-six; Sun is up, Sat three hours.",
        ),
        ("The meeting is on Wed,", "The meeting is on Wednesday,"),  # the date in the next chunk
        (
            "Add ½ tsp, 1/2 tsp, 1 1/2 tsp, 3/4 hr and 9¾ cups.",
            "Add half a teaspoon, half a teaspoon, one and a half teaspoons, three quarters of an "
            "hour and nine and three quarters cups.",
        ),
        (
            'A 27" monitor, 6.1" wide; he said "I have 5" and left.',
            'A twenty-seven inch monitor, six point one inches wide; he said "I have five" and '
            "left.",
        ),
        (
            "BP 120/80, or 130/85 mmHg at 72 bpm and 7200 rpm; 50 m², 3 m³, 5 sq ft.",
            "BP one hundred twenty over eighty, or one hundred thirty over eighty-five millimeters "
            "of mercury at seventy-two beats per minute and seven thousand two hundred revolutions "
            "per minute; fifty square meters, three cubic meters, five square feet.",
        ),
        (
            "It is 3×10^8 m/s, 2^10, x^2 ± 1 and mc².",
            "It is three times ten to the eighth meters per second, two to the tenth, x squared "
            "plus or minus one and mc squared.",
        ),
        (
            "Up 1.5k and ~8.3M (5M users), a 10k run, room 4B; range 18.5–24.9 (+2.1%) on Jan "
            "15th.",
            "Up one point five thousand and about eight point three million (five million users), "
            "a ten k run, room four B; range eighteen point five to twenty-four point nine (plus "
            "two point one percent) on January fifteenth.",
        ),
        (
            "Tracking 1Z999AA10123456784, order 123456789, 10000000 people; iPhone15, COVID19, "
            "SKU X1000.",
            "Tracking one Z nine nine nine A A one zero one two three four five six seven eight "
            "four, order one two three four five six seven eight nine, ten million people; iPhone "
            "fifteen, COVID nineteen, SKU X one thousand.",
        ),
        (
            "A BMI of 24.5 kg/m², 450W, a 12V battery, 35 pts, 7,260 nmi.",
            "A BMI of twenty-four point five kilograms per square meter, four hundred fifty watts, "
            "a twelve volt battery, thirty-five points, seven thousand two hundred sixty nautical "
            "miles.",
        ),
        (
            "US$25.50, CA$30, A$40, ₹500, ₩10,000, US$10-20, 50¢ and 1¢.",
            "twenty-five US dollars and fifty cents, thirty Canadian dollars, forty Australian "
            "dollars, five hundred rupees, ten thousand won, ten to twenty US dollars, fifty cents "
            "and one cent.",
        ),
        (
            "The 1st of May, 1st May; it opens 12/25, due by 3/15; 1/16 of them, 5/16 inch.",
            "The first of May, the first of May; it opens December twenty-fifth, due by March "
            "fifteenth; a sixteenth of them, five sixteenths of an inch.",
        ),
        (
            "TL;DR: w/o a key, N/A, a.k.a. the default; w/ salt; ratio 1:3:5; press ⌘+C.",
            "TL;DR: without a key, not applicable, also known as the default; with salt; ratio "
            "one to three to five; press Command plus C.",
        ),
        (
            "Go to 5th Ave. and Abbey Rd, then Sunset Blvd. It is on Main Rd.",
            "Go to fifth Avenue and Abbey Road, then Sunset Boulevard. It is on Main Road.",
        ),
        ("Due 2026-12-06.", "Due December sixth, twenty twenty-six."),
        ("In 1999 and 2005.", "In nineteen ninety-nine and two thousand five."),
        (
            "On December 6, 2026 and May 31.",
            "On December sixth, twenty twenty-six and May thirty-first.",
        ),
        (
            "In May 2026, and March 3:30 pm.",
            "In May twenty twenty-six, and March three thirty p.m.",
        ),
        (
            "Add 1/2 cup and 3/4 of it, 2/3 done.",
            "Add half a cup and three quarters of it, two thirds done.",
        ),
        (
            "Drive 90 km/h for 12 km at 20°C.",
            "Drive ninety kilometers per hour for twelve kilometers at twenty degrees Celsius.",
        ),
        ("About 2,100,000 people.", "About two million one hundred thousand people."),
        ("Pi is 3.14159.", "Pi is three point one four one five nine."),
        ("The 21st and 2nd times.", "The twenty-first and second times."),
        ("Salt & pepper", "Salt and pepper"),
        ("#1 is rest, #2 is water.", "number one is rest, number two is water."),
        (
            "From -5 to 12°C, in 3-4 days.",
            "From minus five to twelve degrees Celsius, in three to four days.",
        ),
        ("Room 4B, Q3, CO2 and 5G.", "Room four B, Q three, CO two and five G."),
        ("In 2h 30m, or 1 hr 15 min.", "In two hours thirty minutes, or one hour fifteen minutes."),
        ("The 1990s and the '80s.", "The nineteen nineties and the eighties."),
        ("In her 30s, after 30s.", "In her thirties, after thirty seconds."),
        (
            "Open 10:30-11:00, for $5-10.",
            "Open ten thirty to eleven o'clock, for five to ten dollars.",
        ),
        (
            "Pages 10-20, score 3-1, open 24-7.",
            "Pages ten to twenty, score three to one, open twenty-four seven.",
        ),
        (
            "$180 million USD, €5 EUR, $2 trillion; 67-10.5 kg; √9 = 3, ∛8 = 2, π.",
            "one hundred eighty million dollars, five euros, two trillion dollars; sixty-seven to "
            "ten point five kilograms; square root of nine equals three, cube root of eight equals "
            "two, pi.",
        ),
        (
            "A 48MP camera at 60 fps, 100 Mbps, 85 dB, a 3nm chip; 2 DB servers.",
            "A forty-eight megapixel camera at sixty frames per second, one hundred megabits per "
            "second, eighty-five decibels, a three nanometer chip; two DB servers.",
        ),
        (
            "Fri 6/13 and Tues. 3/15; a $10,000 loan in 10 yrs; LDL < 100 mg/dL, HR ≥ 60; 1% vs 2%.",
            "Friday June thirteenth and Tuesday March fifteenth; a ten thousand dollar loan in ten "
            "years; LDL less than one hundred milligrams per deciliter, HR at least sixty; one "
            "percent versus two percent.",
        ),
        (
            "It is -40° in °C and °F; 32°F/0°C at 1 atm.",
            "It is minus forty degrees in degrees Celsius and degrees Fahrenheit; thirty-two "
            "degrees Fahrenheit zero degrees Celsius at one atmosphere.",
        ),
        # Without a figure, only the rules that need none apply (and still do).
        (
            "Open Mon-Fri, in °C at km/h & more, per item/month; see you Wed,",
            "Open Monday to Friday, in degrees Celsius at kilometers per hour and more, per item "
            "per month; see you Wednesday,",
        ),
        (
            "CHF 20.50, 300 SEK, CAD 15, 99 AUD, INR 500, ₹500 INR, 1 CHF; the CHF is strong.",
            "twenty Swiss francs fifty, three hundred Swedish kronor, fifteen Canadian dollars, "
            "ninety-nine Australian dollars, five hundred rupees, five hundred rupees, one Swiss "
            "franc; the CHF is strong.",
        ),
        (
            "10 * 5 ≈ 60 and x ≈ y; 1/100, 3/100 and 1/1000; 15 x .87.",
            "ten times five about sixty and x approximately equals y; a hundredth, three "
            "hundredths and a thousandth; fifteen times point eight seven.",
        ),
        (
            "From 2:00–3:30 PM, or 9:00 to 17:00; at 2:00 we go to 3 places.",
            "From two to three thirty p.m., or nine to five p.m.; at two o'clock we go to three "
            "places.",
        ),
        (
            "Open Mon-Fri 10am-2pm, 9 am - 5 pm.",
            "Open Monday to Friday ten a.m. to two p.m., nine a.m. to five p.m.",
        ),
        (
            "Version 1.2.3 at 192.168.1.1.",
            "Version one point two point three at one nine two dot one six eight dot one dot one.",
        ),
        (
            "A 3x3 grid in 1080p, 4/5 stars.",
            "A three by three grid in ten eighty p, four out of five stars.",
        ),
        ("He is 5'11\".", "He is five foot eleven."),
        (
            "Open 24/7, 50/50, rated 8/10.",
            "Open twenty-four seven, fifty fifty, rated eight out of ten.",
        ),
        ("Add 3 1/2 cups.", "Add three and a half cups."),
        ("From 2020-2024.", "From twenty twenty to twenty twenty-four."),
        ("At 2026-12-06T10:00:00Z.", "At December sixth, twenty twenty-six at ten o'clock."),
        ("On 6 December 2026.", "On the sixth of December twenty twenty-six."),
        # Seconds are said, not dropped; more hours than a day has are minutes.
        (
            "Done in 3:45:12, a lap in 25:30, full time at 90:00, the clip 0:00:45; at 14:30:00.",
            "Done in three hours, forty-five minutes and twelve seconds, a lap in twenty-five "
            "minutes and thirty seconds, full time at ninety minutes, the clip forty-five "
            "seconds; at two thirty p.m.",
        ),
        # A number that names, after a capitalised word inside a sentence, is said in pairs; one
        # that counts, or at a sentence's start, as a number.
        (
            "Take the Porsche 911 to Room 101, a Boeing 747-400 from Gate 112, Flight 1549.",
            "Take the Porsche nine eleven to Room one oh one, a Boeing seven forty-seven four "
            "hundred from Gate one twelve, Flight fifteen forty-nine.",
        ),
        (
            "Over 300 came on Monday 125 times; pay Ann 250 euros, the Fortune 500 and May 2026.",
            "Over three hundred came on Monday one hundred twenty-five times; pay Ann two hundred "
            "fifty euros, the Fortune five hundred and May twenty twenty-six.",
        ),
        (
            "Dial 999 or 112, call 911, then 112.",
            "Dial nine nine nine or one one two, call nine one one, then one one two.",
        ),
        (
            "It is 6ft 2in tall, in a 10in box, 2 in 3.",
            "It is six feet two inches tall, in a ten inch box, two in three.",
        ),
        (
            "A 16:9 screen, 0.5x and 2x faster.",
            "A sixteen to nine screen, zero point five times and two times faster.",
        ),
        (
            "$5.99/month, ~$5, $0.50.",
            "five dollars and ninety-nine cents per month, about five dollars, fifty cents.",
        ),
        (
            "It costs 5,99 € or 1,234 €.",
            "It costs five euros and ninety-nine cents or one thousand two hundred thirty-four euros.",
        ),
        (
            "1 km, 1 kg and 5 g at 15h30.",
            "one kilometer, one kilogram and five grams at three thirty p.m.",
        ),
        ("Speed in km/h, H2O &amp; salt.", "Speed in kilometers per hour, H two O and salt."),
        (
            "Your name, e.g. Ann, i.e. you; press Ctrl + C.",
            "Your name, for example Ann, that is you; press Control plus C.",
        ),
        (
            "Press Cmd+S to save, Esc to close, PgUp and PgDn to scroll.",
            "Press Command plus S to save, Escape to close, Page Up and Page Down to scroll.",
        ),
        # Spelled or misread by a voice (Piper says "Henry roman eight", "S G T", "five F T").
        (
            "Henry VIII, Louis XIV and Pope John Paul II; World War II, Chapter IV, Type II.",
            "Henry the eighth, Louis the fourteenth and Pope John Paul the second; World War "
            "two, Chapter four, Type two.",
        ),
        (
            "I and V, size XL, an IV drip, Apollo XI.",
            "I and V, size XL, an IV drip, Apollo eleven.",
        ),
        ("After World War I I moved.", "After World War one I moved."),
        # One letter after a word that numbers, not where "I" is the pronoun.
        (
            "Type I diabetes, Phase I trials, Chapter V. In Part I, we begin; Part I think is "
            "hard. The type I like.",
            "Type one diabetes, Phase one trials, Chapter five. In Part one, we begin; Part I "
            "think is hard. The type I like.",
        ),
        (
            "Capt. Hook met Sgt. Pepper, Gov. Brown and Prof. Lee on Mt. Everest.",
            "Captain Hook met Sergeant Pepper, Governor Brown and Professor Lee on Mount Everest.",
        ),
        (
            "Gen Z met Gen. Grant; rev up, Rev. King.",
            "Gen Z met General Grant; rev up, Reverend King.",
        ),
        (
            "John Smith Jr. and Martin Luther King, Jr. spoke.",
            "John Smith Junior and Martin Luther King, Junior spoke.",
        ),
        (
            "No. That is No. 5, see p. 12 and pp. 14-16.",
            "No. That is number five, see page twelve and pages fourteen to sixteen.",
        ),
        (
            "Jan. 5, Dec 25 and Sept. 2024.",
            "January fifth, December twenty-fifth and September twenty twenty-four.",
        ),
        (
            "5 ft, 3 oz, 2 tsp, 1 tbsp, 5 mg, 3.2 GHz.",
            "five feet, three ounces, two teaspoons, one tablespoon, five milligrams, three "
            "point two gigahertz.",
        ),
        # After "a", a measure describes what follows: said in the singular.
        (
            "A 5000 mAh battery, an 8 GB card and 16 GB of memory: a 10 km run, then 5 km more.",
            "A five thousand milliamp hour battery, an eight gigabyte card and sixteen gigabytes "
            "of memory: a ten kilometer run, then five kilometers more.",
        ),
        (
            "It costs 3.50 euros, 5 USD or EUR 20.50.",
            "It costs three euros and fifty cents, five dollars or twenty euros and fifty cents.",
        ),
        (
            "Python 3.12, version 2.10, v1.10, Ubuntu 22.04; pi is 3.14.",
            "Python three point twelve, version two point ten, version one point ten, Ubuntu "
            "twenty-two point oh four; pi is three point one four.",
        ),
    ],
)
def test_numbers_are_said_as_a_person_reads_them(sentence: str, said: str) -> None:
    assert SpeechText().say(sentence) == said


def test_a_title_or_a_label_reaches_the_voice_with_its_word() -> None:
    """Through the splitter as a reply streams, a token at a time: "Mt." and "No." are said
    with the word or number after them, never alone (spelled "M T", "no")."""
    reply = (
        "Climbing Mount Everest is hard, and Capt. Hook tried it near Mt. Everest in Jan. 2020. "
        "Item No. 5 is on Hwy. 101. No. It is not."
    )
    splitter, speech = SentenceSplitter(), SpeechText()
    sentences = [s for i in range(0, len(reply), 3) for s in splitter.feed(reply[i : i + 3])]
    said = [speech.say(s) for s in [*sentences, *splitter.flush()]]
    assert " ".join(said) == (
        "Climbing Mount Everest is hard, and Captain Hook tried it near Mount Everest in "
        "January twenty twenty. Item number five is on Highway one oh one. No. It is not."
    )


def test_a_code_block_spanning_sentences_is_not_read() -> None:
    speech = SpeechText()
    said = [
        speech.say(s)
        for s in ["Here it is:", "```python", "print('hi')  # 1/2", "```\nThat prints hi."]
    ]
    assert said == ["Here it is:", "", "", "That prints hi."]


def test_a_link_or_a_table_split_across_sentences_is_still_said_plainly() -> None:
    speech = SpeechText()
    assert speech.say("Read [the official") == "Read the official"
    assert speech.say("guide](https://docs.python.org/3/index.html).") == "guide."
    assert speech.say("|---|---|\n| Tokyo | 14 million |") == "Tokyo, fourteen million."


def test_an_unclosed_code_block_keeps_the_rest_of_the_reply_quiet() -> None:
    speech = SpeechText()
    assert speech.say("```") == ""
    assert speech.say("x = 1") == ""


def test_what_a_reasoning_model_wrote_in_markdown_is_said_plainly() -> None:
    speech = SpeechText()
    reply = [
        "**Paris** is the capital of France.",
        "Here are three facts:",
        "1. It has the *Eiffel Tower*.",
        "2. About 2,100,000 people live there.",
        "3. See https://en.wikipedia.org/wiki/Paris for more.",
        "## Summary",
        "`Paris` is great.",
    ]
    said = " ".join(speech.say(s) for s in reply)
    for mark in ("*", "#", "`", "/", "https", "3.", "2,"):
        assert mark not in said
    assert "two million one hundred thousand" in said and "en dot wikipedia dot org" in said


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (15, "fifteen"),
        (40, "forty"),
        (99, "ninety-nine"),
        (101, "one hundred one"),
        (1015, "one thousand fifteen"),
        (2_100_000, "two million one hundred thousand"),
        (-3, "minus three"),
    ],
)
def test_number_words(n: int, words: str) -> None:
    assert number_words(n) == words


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (1, "first"),
        (2, "second"),
        (3, "third"),
        (12, "twelfth"),
        (20, "twentieth"),
        (23, "twenty-third"),
    ],
)
def test_ordinal_words(n: int, words: str) -> None:
    assert ordinal_words(n) == words


def test_a_language_without_rules_of_its_own_gets_the_markup_stage_alone() -> None:
    assert SpeechText("en-GB").say("**50%**") == "fifty percent"
    # German or Chinese numbers are left to that language's voice, never said in English.
    assert SpeechText("de").say("Es kostet **5,99 €**.") == "Es kostet 5,99 €."
    assert SpeechText("zh-CN").say("价格是**5元**，3:30见。") == "价格是5元，3:30见。"


def test_with_no_language_known_the_script_decides() -> None:
    speech = SpeechText()
    assert speech.say("It is 50%.") == "It is fifty percent."
    assert speech.say("价格是5元，明天3:30见。") == "价格是5元，明天3:30见。"
    assert speech.say("Цена 5 рублей.") == "Цена 5 рублей."


def test_a_language_adds_its_own_rules() -> None:
    def yuan(text: str) -> str:
        return text.replace("5元", "五元")

    LANGUAGES["zz"] = Language("zz", rules=(yuan,), code_block="代码。")
    try:
        speech = SpeechText("zz-Hans")
        assert speech.say("价格是**5元**。") == "价格是五元。"
        assert speech.say("```python") == "代码。"
        assert speech.say("print(1)") == ""
    finally:
        del LANGUAGES["zz"]


_WORDS = st.sampled_from(["Paris", "is", "big", "3", "1/2", "$5.99", "10:30", "2026-12-06", "km"])
_MARKS = st.sampled_from(["**", "*", "`", "~~", "#", "[", "](https://x.org/a)", "|", "- ", "> "])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120), st.sampled_from([None, "en", "de", "zh-CN"]))
def test_any_text_is_said_without_failing(text: str, language: str | None) -> None:
    said = SpeechText(language).say(text)
    assert said == said.strip() and "  " not in said


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_MARKS, _WORDS, _MARKS), min_size=1, max_size=8))
def test_markdown_around_words_is_never_said(pieces: list[tuple[str, str, str]]) -> None:
    sentence = " ".join(f"{a}{word}{b}" for a, word, b in pieces)
    said = SpeechText().say(sentence)
    assert not set(said) & set("*`~#|[]"), (sentence, said)
    assert "https" not in said and "x.org" not in said.replace(" dot ", ".")


def test_a_list_item_cut_by_the_splitter_ends_where_its_line_ends() -> None:
    """A long first list item is cut early for the first audio: the full stop a list item gets
    where the model wrote none comes at its line's end, not at the cut."""
    splitter, speech = SentenceSplitter(), SpeechText()
    reply = "1. Preheat the oven to 180 degrees and grease the baking tin with butter\nThen wait"
    chunks = splitter.feed(reply) + splitter.flush()
    assert chunks == [
        "1. Preheat the oven to 180 degrees",
        "and grease the baking tin with butter",
        "Then wait",
    ]
    assert [speech.say(chunk) for chunk in chunks] == [
        "Preheat the oven to one hundred eighty degrees",
        "and grease the baking tin with butter.",
        "Then wait",
    ]
