"""How English says what is written in figures and abbreviations: numbers, money,
percentages, times, dates, fractions, ranges, units, phone numbers, codes, titles, labels and
Roman numerals in words ("$5.99" -> "five dollars and ninety-nine cents", "Sgt." ->
"Sergeant", "Henry VIII" -> "Henry the eighth"), where a voice would spell them or misread
them. Pure: two rules for `speech_text`'s English `Language`, `english_words` then
`english_numbers`, each from text to text, applied after the markup stage.
"""

from __future__ import annotations

import re

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_WORDS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}  # fmt: skip
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def number_words(n: int) -> str:
    """An integer in English words: 2100000 -> "two million one hundred thousand"."""
    if n < 0:
        return "minus " + number_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_words(rest)}" if rest else "")
    for scale, name in _SCALES:
        if n >= scale:
            high, rest = divmod(n, scale)
            if high >= 1000 and scale == 10**12:
                return " ".join(_digits(str(n)))
            return f"{number_words(high)} {name}" + (f" {number_words(rest)}" if rest else "")
    raise AssertionError("unreachable")


def ordinal_words(n: int) -> str:
    words = number_words(n)
    head, sep, last = words.rpartition(" ")
    head2, dash, last2 = last.rpartition("-")
    word = last2
    if word in _ORDINAL_WORDS:
        word = _ORDINAL_WORDS[word]
    elif word.endswith("y"):
        word = word[:-1] + "ieth"
    else:
        word += "th"
    return head + sep + head2 + dash + word


def _digits(text: str) -> list[str]:
    return [_ONES[int(d)] for d in text if d.isdigit()]


def _decimal_words(whole: str, fraction: str) -> str:
    out = number_words(int(whole.replace(",", "") or "0"))
    if fraction:
        out += " point " + " ".join(_digits(fraction))
    return out


def _year_words(year: int) -> str:
    """2026 -> "twenty twenty-six", 2005 -> "two thousand five", 1900 -> "nineteen hundred"."""
    if 2000 <= year <= 2009 or year < 1100 or year >= 10000:
        return number_words(year)
    return _in_pairs(year)


def _in_pairs(number: int) -> str:
    """A number read as its hundreds and the rest: 1549 -> "fifteen forty-nine", 747 -> "seven
    forty-seven", 101 -> "one oh one", 1900 -> "nineteen hundred"."""
    high, low = divmod(number, 100)
    if low == 0:  # "five hundred", "zero", "nineteen hundred"
        return number_words(number) if number < 1000 else f"{number_words(high)} hundred"
    return f"{number_words(high)} {'oh ' if low < 10 else ''}{number_words(low)}"


_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
             "£": ("pound", "pounds", "penny", "pence"), "¥": ("yen", "yen", "", ""),
             "₹": ("rupee", "rupees", "paisa", "paise"), "₩": ("won", "won", "", "")}  # fmt: skip
# Whose dollars: "US$25", "CA$30", "A$40" ("twenty-five US dollars").
_DOLLAR_PREFIXES = {
    "US": "US", "CA": "Canadian", "C": "Canadian", "AU": "Australian", "A": "Australian",
    "NZ": "New Zealand", "HK": "Hong Kong", "S": "Singapore",
}  # fmt: skip
_DOLLAR_OF = "|".join(_DOLLAR_PREFIXES)
_MONEY = re.compile(
    rf"(?:\b({_DOLLAR_OF})(?=\$))?([$€£¥₹₩])\s?(\d{{1,3}}(?:,\d{{3}})+|\d+)(?:\.(\d{{1,2}}))?"
    r"(?!\d)(\s?(?:[kKmMbB]n?|million|billion|trillion)\b)?"
)
# "$180 million USD": the currency said once.
_SIGN_AND_CODE = re.compile(
    r"([$€£¥₹₩][\d,]*\d(?:\.\d+)?(?:\s?(?:[kKmMbB]n?|million|billion|trillion)\b)?)\s?"
    r"(?:USD|EUR|GBP|JPY|INR|KRW)\b"
)
_CENTS_SIGN = re.compile(r"(?<![\d.,])(\d{1,2})\s?¢")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_TIME = re.compile(
    r"\b([01]?\d|2[0-3]):([0-5]\d)(?::[0-5]\d)?(?:\s?([AaPp])\.?\s?[Mm]\.?(?![A-Za-z]))?"
)
_CLOCK_HOUR = re.compile(r"\b(1[0-2]|0?[1-9])\s?([AaPp])\.?\s?[Mm]\b\.?")  # "3pm", "11 a.m."
# A month's short name ("Jan", "Sept"), and its whole name from the first three letters.
_SHORT_MONTHS = "|".join(["Sept", *(month[:3] for month in _MONTHS if month != "May")])
_MONTH_NAMED = {month[:3]: month for month in _MONTHS}  # "Sept" and "Sep" alike
_DAY_OF_MONTH = re.compile(  # "December 6", "Dec. 6": "December sixth"
    rf"\b((?:{'|'.join(_MONTHS)}|{_SHORT_MONTHS})\.?\s)([1-9]|[12]\d|3[01])(?:st|nd|rd|th)?\b"
    r"(?!\s?(?:[:.%/]\d|[AaPp]\.?[Mm]\b))"
)
_MONTH_YEAR = re.compile(rf"\b({_SHORT_MONTHS})\.?\s(?=\d{{4}}\b)")  # "Oct. 2023"
# "2026-12-06", and with a time, "2026-12-06T10:00:00Z"
_DATE = re.compile(
    r"\b(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b"
)
_FRACTION = re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2}|100|1000)(?![\d/])")
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b")
_GROUPED = re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,]*\d)")
_BARE_DECIMAL = re.compile(r"(?<![\w.,])\.(\d+)\b")  # ".87", ".300": "point eight seven"
_DECIMAL = re.compile(r"(?<![\d.])(\d+)\.(\d+)(?![\d.]*\d)")
_INTEGER = re.compile(r"(?<![\d.])\d+(?![\d.]*\d)(?![A-Za-z])")
_RANGE = re.compile(r"(?<![\d.,-])(\d{1,4}(?:\.\d+)?)\s?[-–]\s?(\d{1,4}(?:\.\d+)?)(?!\d|[.,-]\d)")
# "10:30-11:00", "$5-10", "$5-$10": ranges of times and of money.
_TIME_RANGE = re.compile(
    r"(\d{1,2}(?::\d{2})?(?:\s?[AaPp]\.?[Mm]\.?)?)\s?[-–]\s?(?=\d{1,2}(?::\d{2}|\s?[AaPp]\.?[Mm]\b))"
)
_DAY_NAMES = {day[:3]: day for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                                      "Saturday", "Sunday")}  # fmt: skip
_DAYS = "|".join([*_DAY_NAMES.values(), *_DAY_NAMES])  # whole names first
# "Monday-Friday", "Mon-Fri": "Monday to Friday" (a day's short name in a range only: "Sun"
# alone may be the sun).
_DAY_RANGE = re.compile(rf"\b({_DAYS})\s?[-–]\s?({_DAYS})\b")
_ANY_MONTH = f"(?:{'|'.join(_MONTHS)}|{_SHORT_MONTHS})\\b"
# "Mon, Dec 7", "Fri 5 June": a day's short name before a date ("Sun" alone may be the sun),
# or before the comma that ends a chunk ("on Mon," | "Dec 7": the splitter cut it there).
_DAY_BEFORE_DATE = re.compile(
    rf"\b(Mon|Tues?|Wed|Thu(?:rs?)?|Fri|Sat|Sun)\b\.?"
    rf"(?=,?\s(?:{_ANY_MONTH}|\d{{1,2}}(?:st|nd|rd|th)?\s(?:of\s)?{_ANY_MONTH}|\d{{1,2}}/\d))"
    r"|\b(Mon|Tues?|Wed|Thu(?:rs?)?|Fri)\b\.?(?=,\s*$)"
)
_MONEY_RANGE = re.compile(
    rf"((?:\b(?:{_DOLLAR_OF})(?=\$))?[$€£¥₹₩])(\d[\d,]*(?:\.\d+)?)\s?[-–]\s?[$€£¥₹₩]?(?=\d)"
)
# "Version 1.2.3": each part said, with "point" between.
_DOTTED = re.compile(r"(?<![\d.])\d+(?:\.\d+){2,}(?![\d.]*\d)")
# "1080p": as a person says a screen's resolution.
_RESOLUTION = re.compile(r"\b(480|720|1080|1440|2160)p\b")
_RESOLUTIONS = {"480": "four eighty", "720": "seven twenty", "1080": "ten eighty",
                "1440": "fourteen forty", "2160": "twenty-one sixty"}  # fmt: skip
_HEIGHT = re.compile(r"\b([3-8])'\s?(\d{1,2})(?:\"|'')")  # 5'11": five foot eleven
_BY = re.compile(r"(\d)\s?[x×]\s?(?=\d)")  # "3x3", "1920x1080": "by"
_RATING = re.compile(r"(\d+(?:\.\d)?)/(\d+)(?=\s(?:stars?|points?)\b)")  # "4/5 stars"
_NUMBER_SIGN = re.compile(r"(?<!\w)#(\d+)\b")
_MINUS = re.compile(r"(?<![\w\d])[-−](?=\d)")
_YEAR = re.compile(r"(?<![\d.,$€£¥₹₩-])(?:1[89]\d\d|20\d\d)(?![\d.,%]*\d)(?!\s?%)")
# A unit after a number: its name, one and many. Single letters (and "dB", "nm") are read in
# their case only ("5 g", not "5G"; "85 dB", not "2 DB servers"), and "m" after hours is
# minutes (`_DURATION`).
_UNITS = {
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "mph": ("mile per hour", "miles per hour"),
    "m/s": ("meter per second", "meters per second"),
    "km": ("kilometer", "kilometers"), "kg": ("kilogram", "kilograms"),
    "cm": ("centimeter", "centimeters"), "mm": ("millimeter", "millimeters"),
    "mi": ("mile", "miles"), "lb": ("pound", "pounds"), "lbs": ("pound", "pounds"),
    "kb": ("kilobyte", "kilobytes"), "mb": ("megabyte", "megabytes"),
    "gb": ("gigabyte", "gigabytes"), "tb": ("terabyte", "terabytes"),
    "ms": ("millisecond", "milliseconds"), "kwh": ("kilowatt hour", "kilowatt hours"),
    "°c": ("degree Celsius", "degrees Celsius"), "°f": ("degree Fahrenheit", "degrees Fahrenheit"),
    "ml": ("milliliter", "milliliters"), "min": ("minute", "minutes"),
    "mins": ("minute", "minutes"), "hr": ("hour", "hours"), "hrs": ("hour", "hours"),
    "sec": ("second", "seconds"), "secs": ("second", "seconds"),
    "ft": ("foot", "feet"), "yd": ("yard", "yards"), "oz": ("ounce", "ounces"),
    "mg": ("milligram", "milligrams"), "gal": ("gallon", "gallons"), "qt": ("quart", "quarts"),
    "tsp": ("teaspoon", "teaspoons"), "tbsp": ("tablespoon", "tablespoons"),
    "hz": ("hertz", "hertz"), "khz": ("kilohertz", "kilohertz"),
    "mhz": ("megahertz", "megahertz"), "ghz": ("gigahertz", "gigahertz"),
    "kw": ("kilowatt", "kilowatts"), "mah": ("milliamp hour", "milliamp hours"),
    "km/s": ("kilometer per second", "kilometers per second"),
    "rpm": ("revolution per minute", "revolutions per minute"),
    "bpm": ("beat per minute", "beats per minute"),
    "kcal": ("kilocalorie", "kilocalories"), "pts": ("point", "points"),
    "kg/m²": ("kilogram per square meter", "kilograms per square meter"),
    "nmi": ("nautical mile", "nautical miles"),
    "mg/dl": ("milligram per deciliter", "milligrams per deciliter"),
    "mmol/l": ("millimole per liter", "millimoles per liter"),
    "atm": ("atmosphere", "atmospheres"), "yr": ("year", "years"), "yrs": ("year", "years"),
    "wk": ("week", "weeks"), "wks": ("week", "weeks"), "mos": ("month", "months"),
    "mp": ("megapixel", "megapixels"), "fps": ("frame per second", "frames per second"),
    "kbps": ("kilobit per second", "kilobits per second"),
    "mbps": ("megabit per second", "megabits per second"),
    "gbps": ("gigabit per second", "gigabits per second"),
    "mmhg": ("millimeter of mercury", "millimeters of mercury"),
    "m²": ("square meter", "square meters"), "km²": ("square kilometer", "square kilometers"),
    "cm²": ("square centimeter", "square centimeters"), "ft²": ("square foot", "square feet"),
    "sq ft": ("square foot", "square feet"), "sq m": ("square meter", "square meters"),
    "sq km": ("square kilometer", "square kilometers"), "sq mi": ("square mile", "square miles"),
    "m³": ("cubic meter", "cubic meters"), "cm³": ("cubic centimeter", "cubic centimeters"),
}  # fmt: skip
_LETTER_UNITS = {  # matched in their case ("L" litres, "W" watts, "V" volts)
    "g": ("gram", "grams"), "m": ("meter", "meters"), "h": ("hour", "hours"),
    "s": ("second", "seconds"), "l": ("liter", "liters"), "L": ("liter", "liters"),
    "W": ("watt", "watts"), "V": ("volt", "volts"), "dB": ("decibel", "decibels"),
    "nm": ("nanometer", "nanometers"),
}  # fmt: skip
_UNIT = re.compile(  # after a number, a fraction ("1/2 tsp") or a mixed number ("1 1/2 tsp")
    r"(?<![\d.,/])(\d+(?:[.,]\d+)*(?:\s\d/\d{1,2})?|\d/\d{1,2})\s?(?:((?i:"
    + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
    + r"))|("
    + "|".join(sorted(_LETTER_UNITS, key=len, reverse=True))
    + r"))(?!\w|/(?!\d))",
)
_DEGREE_SCALE = re.compile(r"°\s?([CF])\b")  # "in °C": "in degrees Celsius"
_ARTICLE_BEFORE = re.compile(r"\b[Aa]n?\s+$")


def _describes(m: re.Match[str]) -> bool:
    """Whether the measure or amount matched comes after "a" or "an", and so describes what
    follows ("a 5000 mAh battery", "a $10,000 investment"): said in the singular."""
    return _ARTICLE_BEFORE.search(m.string, 0, m.start()) is not None


# "2h 30m", "1 hr 15 min": a duration, whose "m" is minutes.
_DURATION = re.compile(
    r"(?<![\d.])(\d+)\s?(?:h|hrs?|hours?)\s?(\d+)\s?(?:m|mins?|minutes?)\b", re.IGNORECASE
)
# "the 1990s", "the '80s", "in her 30s": a decade ("30s" alone is thirty seconds).
_DECADE_AFTER = "|".join(
    rf"(?<=\b{word} )"
    for word in ("the", "her", "his", "my", "our", "mid", "late", "early", "their", "your")
)
_DECADE = re.compile(
    rf"(?<![\d$€£¥₹₩.,])(?:['’](\d0)|(1[0-9]\d0|20\d0)|(?:{_DECADE_AFTER})([2-9]0))['’]?s\b"
)
# "1/2 cup": "half a cup", "3/4 cup": "three quarters of a cup".
_MEASURES = sorted(
    {"cup", "spoon", "glass", "inch", "kilo", "litre", "pint", "day", "week", "month", "year"}
    | {one for one, _ in [*_UNITS.values(), *_LETTER_UNITS.values()]},
    key=len,
    reverse=True,
)
_FRACTION_OF = re.compile(
    rf"(?<![\d/.,])(?<!\d and )(\d)/(\d{{1,2}})\s({'|'.join(_MEASURES)})\b(?!-)"
)
_MIXED = re.compile(r"(?<![\d/.,])(\d+)\s+(?=(\d)/(\d{1,2})(?![\d/]))")
_YEAR_RANGE = re.compile(r"(?<![\d.,])(1[89]\d\d|20\d\d)\s?[-–]\s?(1[89]\d\d|20\d\d)(?!\d|[.,]\d)")
_DAY_MONTH = re.compile(  # "6 December": "the sixth of December"
    rf"(?<![\d.,:])([1-9]|[12]\d|3[01])(?:st|nd|rd|th)?\s(?:of\s)?({'|'.join(_MONTHS)})\b"
)
# "16:9": "sixteen to nine"; "1:3:5": "one to three to five".
_RATIO = re.compile(r"(?<![\d:.])\d{1,3}(?::\d{1,3})+(?![\d:])")
_H_TIME = re.compile(r"\b([01]?\d|2[0-3])h([0-5]\d)\b")  # "15h30"
# "3:45:12", "0:59:30": hours, minutes and seconds (a time of day says its ":00" alone, after
# which `_TIME` reads it); "25:30", "90:00": more than a day's hours, so minutes and seconds.
_CLOCK_SECONDS = re.compile(
    r"(?<![\d:.])(\d{1,2}):([0-5]\d):([0-5]\d)(?![\d:])(\s?[AaPp]\.?\s?[Mm]\b\.?)?"
)
_MINUTES_SECONDS = re.compile(r"(?<![\d:.])(2[4-9]|[3-9]\d|\d{3}):([0-5]\d)(?![\d:])")
_PER = re.compile(
    r"(?<=[\w%])\s?/\s?(month|mo|year|yr|week|wk|day|hour|hr|night|person|head|user|seat|"
    r"item|piece|unit|kg|lb|liter|litre|gallon|mile|km)\b",
    re.IGNORECASE,
)
_PER_NAMES = {"mo": "month", "yr": "year", "wk": "week", "hr": "hour"}
_SPEEDS = re.compile(r"(?<![\w/])(km/h|km/s|m/s)(?![\w/])")
# "< 100", "≥ 5": a comparison with a number.
_COMPARISONS = {"<": "less than", ">": "more than", "<=": "at most", ">=": "at least",
                "≤": "at most", "≥": "at least"}  # fmt: skip
_COMPARE = re.compile(r"(?<![\w<>=-])(<=|>=|[<>≤≥])\s?(?=[$€£¥₹₩]?\d)")
_ABOUT = re.compile(r"(?:~|≈)\s?(?=[$€£¥₹₩]?\d)")
_TIMES_X = re.compile(r"(\d)\s?[x×](?![\w\d])")  # "2x faster", "0.5x"
# A number glued to letters ("4B", "Q3", "CO2", "5G"): said apart, as a person reads them.
_GLUED = re.compile(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")
_AM_PM_STOP = re.compile(r"\b([ap]\.m\.)\.(?!\.)")  # "at 3:30 p.m.." ends once
_FRACTION_NAMES = {2: ("half", "halves"), 4: ("quarter", "quarters")}
_WORD_SYMBOLS = {
    "&": " and ",
    "+": " plus ",
    "=": " equals ",
    "°": " degrees ",
    "±": " plus or minus ",
    "≈": " approximately equals ",
    "√": " square root of ",
    "∛": " cube root of ",
    "π": " pi ",
    "²": " squared ",
    "³": " cubed ",
    "/": " ",
    "\\": " ",
}


# A whole amount, with its thousands grouped or not ("1,234", "1234").
_WHOLE = r"\d{1,3}(?:,\d{3})+|\d+"
# "5,99 €", "30€": the sign after the amount, as much of Europe writes it.
_MONEY_AFTER = re.compile(rf"(?<![\d.,])({_WHOLE})(?:[.,](\d{{2}}))?\s?([€£¥])(?!\w)")


# "5 USD", "EUR 20", "3.50 euros": said as the sign would be ("three euros and fifty cents";
# a voice spells the code, and reads "3.50" as "three point five zero").
_CODES = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CAD": "CA$", "AUD": "A$",
          "NZD": "NZ$", "HKD": "HK$", "SGD": "S$", "INR": "₹", "KRW": "₩"}  # fmt: skip
_SIGNED = "|".join(_CODES)
_WORD_SIGNS = {"dollars": "$", "euros": "€", "pounds": "£"}
_CODE_BEFORE = re.compile(rf"\b({_SIGNED})\s?(?=\d)")
_CODE_AFTER = re.compile(rf"(?<![\d.,])((?:{_WHOLE})(?:\.\d{{2}})?)\s?({_SIGNED})\b")
# Currencies with no sign of their own here ("CHF 20", "300 SEK"): the amount and the name.
_NAMED = {
    "CHF": ("Swiss franc", "Swiss francs"), "CNY": ("yuan", "yuan"),
    "SEK": ("Swedish krona", "Swedish kronor"), "NOK": ("Norwegian krone", "Norwegian kroner"),
    "DKK": ("Danish krone", "Danish kroner"), "MXN": ("Mexican peso", "Mexican pesos"),
    "BRL": ("Brazilian real", "Brazilian reais"), "ZAR": ("rand", "rand"),
    "PLN": ("zloty", "zlotys"),
}  # fmt: skip
_AMOUNT = rf"({_WHOLE})(?:\.(\d{{2}}))?"
_NAMED_MONEY = re.compile(
    rf"\b({'|'.join(_NAMED)})\s?{_AMOUNT}(?![\d.,]\d)|(?<![\d.,]){_AMOUNT}\s?({'|'.join(_NAMED)})\b"
)


def _named_money(m: re.Match[str]) -> str:
    """ "CHF 20.50": "20 Swiss francs 50", its figures read by the rules after."""
    code, whole, cents = (m.group(1), m.group(2), m.group(3)) if m.group(1) else m.group(6, 4, 5)
    one, many = _NAMED[code]
    return f"{whole} {one if whole == '1' else many}" + (f" {int(cents)}" if cents else "")


_CENTS_THEN_WORD = re.compile(r"(?<![\d.,$€£¥₹₩])(\d[\d,]*)(\.\d{2})\s(dollars|euros|pounds)\b")


def _money_after(m: re.Match[str]) -> str:
    return f"{m.group(3)}{m.group(1)}" + (f".{m.group(2)}" if m.group(2) else "")


def _money(m: re.Match[str]) -> str:
    whose, sign, digits, fraction, scale = m.groups()
    one, many, cent, cents = _CURRENCY[sign]
    if whose:  # "US$25": "twenty-five US dollars"
        one, many = f"{_DOLLAR_PREFIXES[whose]} {one}", f"{_DOLLAR_PREFIXES[whose]} {many}"
    whole = int(digits.replace(",", ""))
    scale = (scale or "").strip().lower()
    if scale:
        name = {"k": "thousand", "m": "million", "mn": "million", "b": "billion", "bn": "billion",
                "t": "trillion"}  # fmt: skip
        amount = _decimal_words(str(whole), fraction or "")
        return f"{amount} {name.get(scale, scale)} {many}"
    c = int(fraction.ljust(2, "0")) if fraction and cent else 0
    cents_said = f"{number_words(c)} {cent if c == 1 else cents}"
    if whole == 0 and c:
        return cents_said
    out = f"{number_words(whole)} {one if whole == 1 or (_describes(m) and not c) else many}"
    return out + f" and {cents_said}" if c else out


_TO_A_TIME = re.compile(r"\s+to\s+\d{1,2}(?::\d{2}|\s?[AaPp]\.?[Mm]\b)")


def _time(m: re.Match[str]) -> str:
    hour, minute, half = int(m.group(1)), int(m.group(2)), m.group(3)
    suffix = f" {half.lower()}.m." if half else ""
    if not half and (hour == 0 or hour > 12):  # 24-hour, said as a person does: "three p.m."
        if hour == 0 and minute == 0:
            return "midnight"
        hour, suffix = (12, " a.m.") if hour == 0 else (hour - 12, " p.m.")
    if minute == 0:  # "two o'clock", but "from two to three thirty p.m."
        ranged = _TO_A_TIME.match(m.string, m.end()) is not None
        said = number_words(hour) if suffix or ranged else f"{number_words(hour)} o'clock"
    elif minute < 10:
        said = f"{number_words(hour)} oh {number_words(minute)}"
    else:
        said = f"{number_words(hour)} {number_words(minute)}"
    return said + suffix


def _date(m: re.Match[str]) -> str:
    year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return m.group(0)
    return _said_date(month, day, year) + (f" at {m.group(4)}" if m.group(4) else "")


def _said_date(month: int, day: int, year: int) -> str:
    return f"{_MONTHS[month - 1]} {ordinal_words(day)}, {_year_words(year)}"


_THE_BEFORE = re.compile(r"\b[Tt]he\s+$")


def _day_month(m: re.Match[str]) -> str:
    """ "6 December": "the sixth of December" ("the" once after "the 1st of May")."""
    the = "" if _THE_BEFORE.search(m.string, 0, m.start()) else "the "
    return f"{the}{ordinal_words(int(m.group(1)))} of {m.group(2)}"


# "on 12/25", "by 3/15": a month and its day, after a word that a date follows.
_MONTH_DAY = re.compile(
    r"\b((?:on|by|until|till|from|since|before|after|opens|due|dated|through|starting|"
    r"(?:Mon|Tues?|Wed(?:nes)?|Thu(?:rs?)?|Fri|Sat(?:ur)?|Sun)(?:day)?\.?),?\s)"
    r"(1[0-2]|0?[1-9])/(1[3-9]|2\d|3[01])(?![\d/])"
)


def _month_day(m: re.Match[str]) -> str:
    return f"{m.group(1)}{_MONTHS[int(m.group(2)) - 1]} {ordinal_words(int(m.group(3)))}"


def _fraction(m: re.Match[str]) -> str:
    top, bottom = int(m.group(1)), int(m.group(2))
    if bottom == 0 or top >= 100:
        return m.group(0)
    if bottom == 1:
        return number_words(top)
    if bottom == 10 and top <= 10:  # a rating: "8/10"
        return f"{number_words(top)} out of ten"
    if top >= bottom:  # "24/7", "50/50": no fraction, the two numbers
        return f"{number_words(top)} {number_words(bottom)}"
    named = ordinal_words(bottom).removeprefix("one ")  # "a hundredth", not "a one hundredth"
    one, many = _FRACTION_NAMES.get(bottom, (named, named + "s"))
    return f"a {one}" if top == 1 else f"{number_words(top)} {many}"


def _unit(m: re.Match[str]) -> str:
    one, many = _UNITS[m.group(2).lower()] if m.group(2) else _LETTER_UNITS[m.group(3)]
    # A fraction of one is of one ("1/2 tsp": "half a teaspoon", by `_FRACTION_OF`).
    number = m.group(1)
    return f"{number} {one if number == '1' or _describes(m) or '/' in number[:2] else many}"


def _amounts_of_time(*amounts: tuple[str, str]) -> str:
    """ "3 hours, 45 minutes and 12 seconds" of (figure, unit) pairs, leaving out those at 0
    (but not all of them)."""
    said = [f"{int(n)} {unit}{'' if int(n) == 1 else 's'}" for n, unit in amounts if int(n)] or [
        f"0 {amounts[-1][1]}s"
    ]
    return said[0] if len(said) == 1 else f"{', '.join(said[:-1])} and {said[-1]}"


def _clock_seconds(m: re.Match[str]) -> str:
    hours, minutes, seconds, half = m.groups()
    if seconds == "00":
        return f"{hours}:{minutes}{half or ''}"  # a time of day: `_TIME` reads it
    if half:
        return f"{hours}:{minutes}{half} and {_amounts_of_time((seconds, 'second'))}"
    return _amounts_of_time((hours, "hour"), (minutes, "minute"), (seconds, "second"))


def _duration(m: re.Match[str]) -> str:
    hours, minutes = m.group(1), m.group(2)
    return (
        f"{hours} hour{'' if hours == '1' else 's'} {minutes} minute{'' if minutes == '1' else 's'}"
    )


def _decade(m: re.Match[str]) -> str:
    short, year = m.group(1) or m.group(3), m.group(2)
    words = number_words(int(short)) if short else _year_words(int(year))
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


def _dotted(m: re.Match[str]) -> str:
    """A version ("1.2.3": "1 point 2 point 3"), or an address ("192.168.1.1": its digits, with
    "dot" between the parts)."""
    parts = m.group(0).split(".")
    if len(parts) == 4 and all(len(part) <= 3 and int(part) <= 255 for part in parts):
        return " dot ".join(" ".join(_digits(part)) for part in parts)
    return " point ".join(parts)


def _range(m: re.Match[str]) -> str:
    """ "3-4" is "3 to 4" (and a score's "3-1" "3 to 1"); "24-7" is no range but "24/7", as some
    write it; four digits make a range only upwards ("200-1500", not a number's "555-1234")."""
    low, high = m.group(1), m.group(2)
    if max(len(low.split(".")[0]), len(high.split(".")[0])) == 4 and float(low) >= float(high):
        return m.group(0)
    return f"{low} {'' if (low, high) == ('24', '7') else 'to '}{high}"


def _fraction_of(m: re.Match[str]) -> str:
    top, bottom, noun = int(m.group(1)), int(m.group(2)), m.group(3)
    if not 0 < top < bottom:
        return m.group(0)
    article = "an" if noun[0] in "aeiou" or noun.startswith("hour") else "a"
    if (top, bottom) == (1, 2):
        return f"half {article} {noun}"
    return f"{_fraction(m)} of {article} {noun}"


def _mixed(m: re.Match[str]) -> str:
    if int(m.group(2)) >= int(m.group(3)):  # "3 4/2" is no mixed number
        return m.group(0)
    return f"{m.group(1)} and "


# "½", "9¾": written as "1/2", "9 3/4", for the fraction rules.
_VULGAR = {"½": "1/2", "⅓": "1/3", "⅔": "2/3", "¼": "1/4", "¾": "3/4", "⅕": "1/5", "⅖": "2/5",
           "⅗": "3/5", "⅘": "4/5", "⅙": "1/6", "⅚": "5/6", "⅛": "1/8", "⅜": "3/8", "⅝": "5/8",
           "⅞": "7/8"}  # fmt: skip
_VULGAR_FRACTION = re.compile(rf"(\d?)([{''.join(_VULGAR)}])")
# "1.5k", "8.3M", "5M users": thousands and millions ("10k run" and "4B" are said as written).
_SCALED = re.compile(
    r"(?<![\w.$€£¥₹₩])(\d+\.\d+|\d+(?=[kKM]\s(?:people|users|views|followers|subscribers|"
    r"downloads|deaths|cases|visitors|customers|residents|copies|jobs|miles|steps)\b))([kKM])\b"
)
# A code of letters and figures ("1Z999AA10123456784", "ABC123XYZ"), or a long run of figures
# written without separators (an order, an account; not a round number, "10000000"): said a
# character at a time.
_CODE = re.compile(r"(?<![\w.,])(?=[A-Z0-9]*[A-Z])(?=(?:[A-Z]*\d){3})[A-Z0-9]{8,}(?![\w.,]\w)")
_LONG_FIGURES = re.compile(r"(?<![\w.,$€£¥₹₩])(?!\d+000(?!\d))\d{8,}(?![\w.,]?\d)")


def _spelled(m: re.Match[str]) -> str:
    return " ".join(_ONES[int(ch)] if ch.isdigit() else ch for ch in m.group(0))


# "10^6": "ten to the sixth"; "x^2": "squared".
_POWER = re.compile(r"(?<=[\w)])\s?\^\s?(\d{1,3})\b")


def _power(m: re.Match[str]) -> str:
    n = int(m.group(1))
    return {2: " squared", 3: " cubed"}.get(n, f" to the {ordinal_words(n)}")


# "120/80 mmHg", "BP 120/80": a blood pressure, "one hundred twenty over eighty".
_PRESSURE = re.compile(r"(?<![\d/.,])(\d{2,3})/(\d{2,3})(?![\d/]|[.,]\d)")
_PRESSURE_AFTER = re.compile(r"\s?mm\s?Hg\b")
_PRESSURE_BEFORE = re.compile(r"\b(?:BP|[Bb]lood pressure)\b[^.\d]{0,20}$")


def _pressure(m: re.Match[str]) -> str:
    if _PRESSURE_AFTER.match(m.string, m.end()) or _PRESSURE_BEFORE.search(m.string, 0, m.start()):
        return f"{m.group(1)} over {m.group(2)}"
    return m.group(0)


# 6.1" (a screen, a wheel): inches, where the mark closes no quotation.
_QUOTE = re.compile(r'(?<![\d.])"')  # a quotation mark, not an inch mark ('2 x 4"')
_INCHES = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?:\"|″|”)(?=\s?[x×]\s?\d|\s[a-z]|[,;:)]|\.?$)")


# "6ft 2in", "a 10in pan": inches, where "in" is glued to the number (apart, it is the word).
_GLUED_INCHES = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)in\b")


def _inches(m: re.Match[str]) -> str:
    before = m.string[: m.start()]
    quotes = len(_QUOTE.findall(before))
    if quotes % 2 or before.count("“") > before.count("”"):
        return m.group(0)  # the end of a quotation: '"I have 5" and'
    return _inch_words(m)


def _inch_words(m: re.Match[str]) -> str:
    number = m.group(1)
    return f"{number} {'inch' if number == '1' or _describes(m) else 'inches'}"


# "03/15/2026", "15/03/2026": a date, month first unless the first number cannot be a month.
_SLASH_DATE = re.compile(r"(?<![\d/.])(\d{1,2})/(\d{1,2})/(\d{4})(?![\d/])")


def _slash_date(m: re.Match[str]) -> str:
    first, second, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if 1 <= first <= 12 and 1 <= second <= 31:
        return _said_date(first, second, year)
    if 1 <= second <= 12 and 13 <= first <= 31:
        return f"the {ordinal_words(first)} of {_MONTHS[second - 1]}, {_year_words(year)}"
    return m.group(0)


# A number to call is read digit by digit ("call 911": "nine one one"): a phone number (five
# digits or more) or a three-digit service number ("N11", 999, 112, 000, 101); "call 10 people"
# or "ring 3 times" is left to the other rules.
_DIALLED_NUMBER = r"\+?\(?\d[\d \-().]*\d(?![\d,.]*\d)"
_DIALLED = re.compile(r"\b((?:call|dial|phone|ring|text)(?:\s+us|\s+me)?(?:\s+on|\s+at)?\s+)"
                      rf"({_DIALLED_NUMBER}(?:,?\s+(?:or|and|then)\s+{_DIALLED_NUMBER})*)",
                      re.IGNORECASE)  # fmt: skip
_ONE_DIALLED = re.compile(_DIALLED_NUMBER)
# A phone number wherever it is written in a phone number's shape: "(555) 123-4567",
# "555-123-4567", "1-800-555-0199", "+44 20 7946 0958". Said in its groups, digit by digit.
_PHONE = re.compile(
    r"(?<![\w+/.-])(\+\d{1,3}(?:[ .-]\(?\d{1,5}\)?){2,5}"
    r"|(?:1[ .-])?(?:\(\d{3}\)\s?|\d{3}[.-])\d{3}[.-]\d{4})(?![\w-]|[.,]\d)"
)


def _phone_words(number: str) -> str:
    groups = re.findall(r"\d+", number)
    said = ", ".join(" ".join(_digits(group)) for group in groups)
    return ("plus " if number.startswith("+") else "") + said


_SERVICE_NUMBER = re.compile(r"\d11|999|112|000|101")


def _dialled(m: re.Match[str]) -> str:
    """ "call 911 or 112": each number to call digit by digit; "call 10 people" as it is."""

    def one(number: re.Match[str]) -> str:
        digits = "".join(d for d in number.group(0) if d.isdigit())
        if len(digits) < 5 and not _SERVICE_NUMBER.fullmatch(digits):
            return number.group(0)
        return _phone_words(number.group(0))

    return m.group(1) + _ONE_DIALLED.sub(one, m.group(2))


_TIMES = re.compile(r"(\d)\s*[*×]\s*(\d)")

# A number that names rather than counts, after a capitalised word inside a sentence ("Room
# 101", "Flight 1549", "a Boeing 747-400", "the Porsche 911"): said as a person reads a label,
# in pairs ("one oh one", "fifteen forty-nine", "seven forty-seven four hundred", "nine
# eleven"). Not at a sentence's start ("Over 300 came"), after a month or a day's name, or
# before a unit or a currency ("Pay Ann 250 euros").
_COUNTED = re.compile(
    r"\s?(?:(?i:"
    + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
    + r"|dollars?|euros?|pounds?|pence|cents?|yen|rupees?)|"
    + "|".join(sorted(_LETTER_UNITS, key=len, reverse=True))
    + r")\b"
)
_LABELLED = re.compile(r"\b([A-Z][a-z]+) (\d{3,4})(?:-(\d{3}))?(?![\d,.]*\d|\s?[%°])")
_NOT_LABELS = frozenset([*_MONTHS, *_DAY_NAMES.values(), *_MONTH_NAMED, "Sept"])


def _labelled(m: re.Match[str]) -> str:
    before = m.string[: m.start()].rstrip()
    if not before or before[-1] in '.!?"“(' or m.group(1) in _NOT_LABELS:
        return m.group(0)
    if _COUNTED.match(m.string, m.end()):  # "Ann 250 euros", "Paris 350 km": counted
        return m.group(0)
    said = " ".join(_label_words(n) for n in m.groups()[1:] if n)
    return f"{m.group(1)} {said}"


def _label_words(number: str) -> str:
    return _year_words(int(number)) if len(number) == 4 else _in_pairs(int(number))


# Abbreviations a person reads out whole (a voice spells "e.g." as letters).
_SAID_IN_FULL = {
    "e.g.": "for example", "i.e.": "that is", "etc.": "et cetera", "vs.": "versus", "vs": "versus",
    "approx.": "approximately", "Ctrl": "Control", "w/o": "without", "w/": "with",
    "N/A": "not applicable", "a.k.a.": "also known as", "⌘": "Command", "Cmd": "Command",
    "Esc": "Escape", "PgUp": "Page Up", "PgDn": "Page Down",
}  # fmt: skip
_ABBREVIATION = re.compile(
    "|".join(
        rf"(?<!\w){re.escape(a)}" + (r"(?!\w)" if a[-1].isalnum() else "") for a in _SAID_IN_FULL
    )
)


# Titles before a name, which a voice spells or misreads ("Sgt." "S G T", "Gov." "guv").
_TITLES = {
    "Capt": "Captain", "Lt": "Lieutenant", "Sgt": "Sergeant", "Col": "Colonel",
    "Gov": "Governor", "Sen": "Senator", "Rep": "Representative", "Rev": "Reverend",
    "Pres": "President", "Prof": "Professor", "Gen": "General", "Mt": "Mount", "Ft": "Fort",
    "Ms": "Miz",
}  # fmt: skip
# Without its period a title is also a word ("Gen Z", "Col", "Rev up"): those need theirs.
_WORD_TITLES = ("Col", "Gov", "Sen", "Rep", "Rev", "Pres", "Gen")
_TITLE = re.compile(
    rf"(?<![\w.])(?:({'|'.join(t for t in _TITLES if t not in _WORD_TITLES)})\.?"
    rf"|({'|'.join(_WORD_TITLES)})\.)\s(?=[A-Z])"
)
# A street's kind after its name ("5th Ave.", "Abbey Rd"), which a voice reads "ah-vay", "R D".
_STREETS = {"Ave": "Avenue", "Rd": "Road", "Blvd": "Boulevard", "Ln": "Lane", "Pkwy": "Parkway"}
_STREET = re.compile(rf"\b((?:[A-Z][\w'-]*|\d+(?:st|nd|rd|th)) )({'|'.join(_STREETS)})\b(\.?)")
_NEXT_SENTENCE = re.compile(r"\s*$|\s+[A-Z]")


def _street(m: re.Match[str]) -> str:
    # Its period is dropped, unless it also ends the sentence.
    ends = m.group(3) and _NEXT_SENTENCE.match(m.string, m.end())
    return m.group(1) + _STREETS[m.group(2)] + ("." if ends else "")


_SUFFIX = re.compile(r"(?<=[a-z])(,?) (Jr|Sr)(?:\.|(?![\w.]))(?!\s[A-Z])")  # "Smith Jr.": "Junior"
# Labels before a number ("No. 5", "p. 12", "Fig. 3"): their words.
_LABELS = {
    "no": "number", "nos": "numbers", "p": "page", "pp": "pages", "fig": "figure",
    "ch": "chapter", "vol": "volume", "eq": "equation", "est": "established",
    "hwy": "Highway", "rte": "Route",
}  # fmt: skip
_LABEL = re.compile(
    r"(?<![\w.])(?:(No|Nos|pp?|[Ff]ig|[Cc]h|[Vv]ol|[Ee]q|[Ee]st)\.|(Hwy|Rte)\.?)\s?(?=\d)"
)
# A Roman numeral of two letters or more after a capitalised word: a monarch's or a pope's
# ordinal ("Henry VIII": "Henry the eighth"), else a number ("World War II": "World War two",
# "Chapter IV", "Type II"). A voice says "Henry roman eight". One letter ("I", "V", "X") only
# after a word that numbers (`_NUMBERED_ONE`); "L", "C", "D", "M" are left alone ("size XL").
_ROMAN = re.compile(
    r"\b([A-Z][A-Za-z]*)\s((?=[IVX]{2,}(?![\w-]))X{0,3}(?:IX|IV|VI{0,3}|I{0,3}))(?![\w-])"
)
_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10}
_FIRST_WAR = re.compile(r"\bWorld War I\b(?!')")  # the one "I" that is surely a numeral
# One letter after a word that numbers what follows ("Type I diabetes", "Phase I trials",
# "Chapter V"); "I" not when a verb follows, as the pronoun would ("Part I think ...").
_PRONOUN_VERBS = """
am was think thought know knew believe guess mean meant want need have had will would can could
should must do did love like hope feel felt said say see saw got agree
"""
_NUMBERED_ONE = re.compile(
    r"\b(Type|Phase|Stage|Class|Grade|Level|Category|Schedule|Chapter|Part|Act|Book|Volume|"
    r"Appendix|Article|Title)\s([IVX])(?![\w'-])(?!\s+(?:"
    + "|".join(_PRONOUN_VERBS.split())
    + r")\b)"
)
_REGNAL_WORDS = """
Alexander Alfonso Amenhotep Anne Benedict Boniface Carlos Casimir Catherine Charles Christian
Clement Constantine Edward Elizabeth Felipe Ferdinand Francis Frederick George Gregory Gustav
Haakon Harald Henry Innocent Isabella Ivan James John Joseph Juan Leo Leopold Louis Ludwig
Malcolm Margaret Mary Napoleon Nicholas Olaf Otto Paul Pedro Peter Philip Pius Ptolemy Ramesses
Richard Robert Rudolf Sixtus Stephen Thutmose Urban Victor Wilhelm William
"""
_REGNAL_NAMES = frozenset(_REGNAL_WORDS.split())


def _roman(m: re.Match[str]) -> str:
    letters, n = m.group(2), 0
    for here, after in zip(letters, [*letters[1:], ""], strict=True):
        value = _ROMAN_VALUES[here]
        n += -value if after and _ROMAN_VALUES[after] > value else value
    if m.group(1) in _REGNAL_NAMES:
        return f"{m.group(1)} the {ordinal_words(n)}"
    return f"{m.group(1)} {number_words(n)}"


# A version with a minor part of two digits ("Python 3.12", "version 2.10"): its parts are
# numbers ("three point twelve"), not a decimal's digits ("three point one two").
_VERSION = re.compile(
    r"(\b(?:[Vv]ersion|Python|Java|Node(?:\.js)?|PHP|Ruby|Rust|Kotlin|Swift|Perl|iOS|iPadOS|"
    r"macOS|Android|Ubuntu|Debian|Fedora|Windows|Django|React|Angular|Vue|PostgreSQL|MySQL|"
    r"Redis|Chrome|Firefox|Bluetooth|Unity|Blender|CUDA|Kubernetes|Docker|Git)\s)"
    r"(\d+)\.(\d\d)(?![\d.]*\d)"
)
_V_NUMBER = re.compile(r"\bv(?=\d+(?:\.\d+)+\b)")  # "v2.3": "version 2.3"


def _version(m: re.Match[str]) -> str:
    minor = m.group(3)
    said = f"oh {minor[1]}" if minor[0] == "0" else minor  # "22.04": "twenty-two point oh four"
    return f"{m.group(1)}{m.group(2)} point {said}"


def english_words(text: str) -> str:
    text = _ABBREVIATION.sub(lambda m: _SAID_IN_FULL[m.group(0)], text)
    text = _TITLE.sub(lambda m: _TITLES[m.group(1) or m.group(2)] + " ", text)
    text = _STREET.sub(_street, text)
    text = _SUFFIX.sub(
        lambda m: f"{m.group(1)} {'Junior' if m.group(2) == 'Jr' else 'Senior'}", text
    )
    text = _LABEL.sub(lambda m: _LABELS[(m.group(1) or m.group(2)).lower()] + " ", text)
    text = _ROMAN.sub(_roman, text)
    text = _FIRST_WAR.sub("World War one", text)
    text = _NUMBERED_ONE.sub(_roman, text)  # a label is no regnal name: its number
    text = _V_NUMBER.sub("version ", text)
    return _VERSION.sub(_version, text)


_FIGURE = re.compile(r"\d")


def english_numbers(text: str) -> str:
    text = _VULGAR_FRACTION.sub(
        lambda m: f"{m.group(1)} {_VULGAR[m.group(2)]}" if m.group(1) else _VULGAR[m.group(2)], text
    )
    if _FIGURE.search(text) is None:  # most sentences: the rules that need a figure do nothing
        return _symbols(_DEGREE_SCALE.sub(_scale, _per(_days(text))))
    text = _DIALLED.sub(_dialled, text)
    text = _PHONE.sub(lambda m: _phone_words(m.group(1)), text)
    text = _CODE.sub(_spelled, text)
    text = _LONG_FIGURES.sub(_spelled, text)
    text = _SCALED.sub(
        lambda m: f"{m.group(1)} {'million' if m.group(2) == 'M' else 'thousand'}", text
    )
    text = _SLASH_DATE.sub(_slash_date, text)
    text = _MONTH_DAY.sub(_month_day, text)
    text = _TIMES.sub(r"\1 times \2", text)
    text = _POWER.sub(_power, text)
    text = _NUMBER_SIGN.sub(r"number \1", text)
    text = _ABOUT.sub("about ", text)
    text = _COMPARE.sub(lambda m: _COMPARISONS[m.group(1)] + " ", text)
    text = _RESOLUTION.sub(lambda m: _RESOLUTIONS[m.group(1)] + " p", text)
    text = _HEIGHT.sub(r"\1 foot \2", text)
    text = _INCHES.sub(_inches, text)
    text = _GLUED_INCHES.sub(_inch_words, text)
    text = _DOTTED.sub(_dotted, text)
    text = _BY.sub(r"\1 by ", text)
    text = _PRESSURE.sub(_pressure, text)
    text = _RATING.sub(r"\1 out of \2", text)
    text = _TIME_RANGE.sub(r"\1 to ", text)
    text = _days(text)
    text = _MONEY_RANGE.sub(r"\2 to \1", text)
    text = _per(text)
    text = _YEAR_RANGE.sub(r"\1 to \2", text)
    text = _LABELLED.sub(_labelled, text)
    text = _RANGE.sub(_range, text)
    text = _MINUS.sub("minus ", text)
    text = _SIGN_AND_CODE.sub(r"\1", text)
    text = _CODE_BEFORE.sub(lambda m: _CODES[m.group(1)], text)
    text = _CODE_AFTER.sub(lambda m: _CODES[m.group(2)] + m.group(1), text)
    text = _NAMED_MONEY.sub(_named_money, text)
    text = _CENTS_THEN_WORD.sub(lambda m: _WORD_SIGNS[m.group(3)] + m.group(1) + m.group(2), text)
    text = _MONEY_AFTER.sub(_money_after, text)
    text = _MONEY.sub(_money, text)
    text = _CENTS_SIGN.sub(lambda m: m.group(1) + (" cent" if m[1] == "1" else " cents"), text)
    text = _DATE.sub(_date, text)
    text = _DAY_MONTH.sub(_day_month, text)
    text = _DAY_OF_MONTH.sub(
        lambda m: f"{_MONTH_NAMED[m.group(1)[:3]]} {ordinal_words(int(m.group(2)))}", text
    )
    text = _MONTH_YEAR.sub(lambda m: _MONTH_NAMED[m.group(1)[:3]] + " ", text)
    text = _H_TIME.sub(r"\1:\2", text)
    text = _CLOCK_SECONDS.sub(_clock_seconds, text)
    text = _MINUTES_SECONDS.sub(
        lambda m: _amounts_of_time((m.group(1), "minute"), (m.group(2), "second")), text
    )
    text = _TIME.sub(_time, text)
    text = _RATIO.sub(lambda m: m.group(0).replace(":", " to "), text)
    text = _CLOCK_HOUR.sub(
        lambda m: f"{number_words(int(m.group(1)))} {m.group(2).lower()}.m.", text
    )
    text = _PERCENT.sub(lambda m: f"{_number(m.group(1))} percent", text)
    text = _DURATION.sub(_duration, text)
    text = _DECADE.sub(_decade, text)
    text = _UNIT.sub(_unit, text)
    text = _DEGREE_SCALE.sub(_scale, text)
    text = _TIMES_X.sub(r"\1 times", text)
    text = _MIXED.sub(_mixed, text)
    text = _FRACTION_OF.sub(_fraction_of, text)
    text = _FRACTION.sub(_fraction, text)
    text = _ORDINAL.sub(lambda m: ordinal_words(int(m.group(1))), text)
    text = _GLUED.sub(" ", text)
    text = _GROUPED.sub(lambda m: _number(m.group(0)), text)
    text = _DECIMAL.sub(lambda m: _decimal_words(m.group(1), m.group(2)), text)
    text = _BARE_DECIMAL.sub(lambda m: "point " + " ".join(_digits(m.group(1))), text)
    text = _YEAR.sub(lambda m: _year_words(int(m.group(0))), text)
    text = _INTEGER.sub(lambda m: _number(m.group(0)), text)
    return _symbols(text)


# The rules that need no figure, which are all a sentence without one needs.


def _days(text: str) -> str:
    text = _DAY_RANGE.sub(
        lambda m: f"{_DAY_NAMES[m.group(1)[:3]]} to {_DAY_NAMES[m.group(2)[:3]]}", text
    )
    return _DAY_BEFORE_DATE.sub(lambda m: _DAY_NAMES[(m.group(1) or m.group(2))[:3]], text)


def _per(text: str) -> str:
    text = _PER.sub(lambda m: " per " + _PER_NAMES.get(m.group(1).lower(), m.group(1)), text)
    return _SPEEDS.sub(lambda m: _UNITS[m.group(1)][1], text)


def _scale(m: re.Match[str]) -> str:
    return "° " + ("Celsius" if m.group(1) == "C" else "Fahrenheit")


def _symbols(text: str) -> str:
    for symbol, words in _WORD_SYMBOLS.items():
        text = text.replace(symbol, words)
    return _AM_PM_STOP.sub(r"\1", text)


def _number(text: str) -> str:
    whole, _, fraction = text.replace(",", "").partition(".")
    if len(whole) > 15:
        return " ".join(_digits(whole))
    return _decimal_words(whole, fraction)
