"""Sentences and answer spans of a chunk: the facts the pipeline hands a small model.

A 135M model cannot be trusted to carry a fact through free writing: asked a question about a
paragraph, it answers with something the paragraph never says. So the pipeline chooses the fact
(a sentence, or a short span of one) and the model only frames it: asks the question whose
answer is the span, restates the sentence for an audience, reacts to it in a persona's voice.

    sentences(text)                  # the chunk's sentences, abbreviations and initials kept whole
    answer_spans(sentence)           # [Span('1889', 'year', ...), Span('the Eiffel Tower', 'name', ...)]
    pick_spans(text, rng, 3)         # three spans from different sentences, kinds mixed
    pick_sentences(text, rng, 2)     # two drawn sentences with enough words to carry a fact

Every span is a verbatim piece of its sentence that reverie.dream.gate.answer_in_source accepts
for the chunk, so an answer taken from a span is grounded by construction.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import cache

from reverie.dream.gate import answer_in_source, content_stems, numbers, stem, word_grounding
from reverie.meter.drift import zipf

# -- sentences -----------------------------------------------------------------------------------
# Words after which a period does not end a sentence ("St. Paul", "c. 1600", "Dr. Who").
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "st", "sr", "jr", "prof", "rev", "gen", "col", "lt", "capt", "sgt", "gov",
    "c", "ca", "cf", "vs", "etc", "e.g", "i.e", "no", "nos", "vol", "fig", "approx", "inc", "ltd", "co",
    "corp", "dept", "est", "mt", "ft", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept",
    "oct", "nov", "dec", "u.s", "u.k", "a.d", "b.c",
}
_BOUNDARY = re.compile(r"[.!?][\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_HEADING = re.compile(r"[ \t]*#{1,6}[ \t]")  # a markdown heading line ("# Title")
_MIN_SENTENCE_WORDS = 6


def sentences(text: str) -> list[str]:
    """The text's sentences, in order. A period after an initial ("F. W. Moody") or a known
    abbreviation ("St.", "c.") does not end one; a blank line always does, and a markdown heading
    is a line of its own, so "# Title" never joins the paragraph under it."""
    return [s for block in _blocks(text) for s in _block_sentences(block)]


def _blocks(text: str) -> list[str]:
    """The text's paragraphs (blank lines part them) and heading lines, each one block."""
    blocks, lines = [], []
    for line in text.splitlines():
        if line.strip() and not _HEADING.match(line):
            lines.append(line)
            continue
        blocks.append("\n".join(lines))
        lines = []
        if line.strip():
            blocks.append(line)  # a heading
    blocks.append("\n".join(lines))
    return [b for b in blocks if b.strip()]


def _block_sentences(text: str) -> list[str]:
    out, start = [], 0
    for m in _BOUNDARY.finditer(text):
        before = text[start : m.start()].split()
        last = before[-1].lower().rstrip(".") if before else ""
        if last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha()):
            continue
        out.append(text[start : m.start() + 1].strip())
        start = m.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return [s for s in out if s]


def factual(sentence: str) -> bool:
    """Long enough to state a fact, and not a heading or a list fragment."""
    return len(sentence.split()) >= _MIN_SENTENCE_WORDS and not _HEADING.match(sentence)


def pick_sentences(text: str, rng: random.Random, k: int = 1, window: int = 1) -> list[str]:
    """k drawn factual sentences, without repeats, in text order; window=2 returns each drawn
    sentence joined with the one after it (a little context for a short one)."""
    sents = sentences(text)
    good = [i for i, s in enumerate(sents) if factual(s)] or list(range(len(sents)))
    chosen = sorted(rng.sample(good, min(k, len(good))))
    return [" ".join(sents[i : i + window]) for i in chosen]


# -- answer spans --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Span:
    text: str  # verbatim from the sentence
    kind: str  # 'year', 'date', 'number', 'quantity', 'name', 'title', 'thing'
    sentence: str
    before: str = ""  # the word just before the span ("in", "by"): it hints the question word


_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_SPELLED = {"two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "twenty",
            "thirty", "forty", "fifty", "hundred", "hundreds", "thousand", "thousands", "million", "millions",
            "billion", "dozen", "dozens"}
_SCALE = {"hundred", "thousand", "million", "billion", "trillion", "per", "cent", "percent"}
_HEDGES = {"over", "about", "nearly", "approximately", "around", "almost", "some", "more", "than", "up", "to"}
_SPELLED_RUN = re.compile(r"\b(?:{})(?:[- ](?:{}))*\b".format(
    "|".join(sorted(_SPELLED, key=lambda w: (-len(w), w))), "|".join(sorted(_SPELLED | _SCALE, key=lambda w: (-len(w), w)))),
    re.I)
_DATE = re.compile(rf"\b(?:\d{{1,2}} (?:{_MONTHS}) \d{{3,4}}|(?:{_MONTHS}) \d{{1,2}}, \d{{3,4}}|(?:{_MONTHS}) \d{{3,4}})\b")
_CENTURY = re.compile(r"\b\d{1,2}(?:st|nd|rd|th)[- ](?:century|centuries|millennium)\b", re.I)
_YEAR = re.compile(r"(?<![\w.])(?<!\d,)(?:1\d{3}|20\d{2})(?:s|\s?[-\u2013]\s?\d{2,4})?(?:\s(?:AD|BC|BCE|CE))?(?!\w|[.,]\d)")
_NUMBER = re.compile(r"(?<![\w.])(?<!\d,)(?:[$\u00a3\u20ac]\s?)?\d[\d,]*(?:\.\d+)?%?(?!\w|[.,]\d)")
_WORD = re.compile(r"[^\W\d_][^\W\d_'\u2019-]*")
_TITLE = re.compile(r"[\"\u201c]([^\"\u201d]{3,60})[\"\u201d]")
_CAP = r"[A-Z][\w'\u2019&.-]*"
_NAME = re.compile(rf"\b{_CAP}(?:\s+(?:of|the|de|da|di|van|von|and|for|&)?\s*{_CAP})*")
# Measure and count words that make a good "How many ___" opening when they follow a number.
_UNITS = {
    "feet", "foot", "metres", "meters", "metre", "meter", "miles", "mile", "kilometres", "kilometers", "km",
    "m", "cm", "mm", "inches", "yards", "acres", "hectares", "tons", "tonnes", "kg", "kilograms", "pounds",
    "years", "months", "weeks", "days", "hours", "minutes", "seconds",
}
_TIME_UNITS = {"years", "months", "weeks", "days", "hours", "minutes", "seconds"}
_HONORIFICS = {"sir", "lord", "lady", "king", "queen", "prince", "princess", "saint", "pope", "president",
               "dr", "mr", "mrs", "ms", "reverend", "duke", "emperor", "general", "bishop"}
_WHERE_BEFORE = {"in", "at", "near", "through", "into", "across", "along", "towards", "outside", "inside"}
_WHO_BEFORE = {"by", "whom", "architect", "artist", "designer", "painter", "sculptor", "writer", "author"}
_FUNCTION_ZIPF = 5.6  # as the gate: commoner words carry no content
_THING_ZIPF = 4.0  # a one-word thing answer must be this rare ("sgraffito", not "museum")
_DETERMINER = re.compile(r"\b(?:the|a|an|its|their|his|her)\s+", re.I)
_CONNECTORS = {"of", "the", "de", "and", "for", "&", "da", "di", "van", "von"}
# Words that end a noun phrase though they are not common: prepositions and verbs.
_PHRASE_END = {"above", "below", "beneath", "within", "across", "against", "beyond", "during", "toward", "towards",
               "include", "includes", "including", "belong", "belongs", "common", "contains", "became", "remains",
               "whose", "which", "whom", "becomes", "become", "becoming", "makes", "gives", "takes", "holds", "hold", "shows", "houses", "upon", "onto", "via", "per", "since", "until", "although", "whereas"}
# Last words that make a capitalised run a place, building or body, not a person.
_PLACE_WORDS = {
    "museum", "gallery", "galleries", "library", "court", "courts", "garden", "gardens", "hall", "halls", "column",
    "street", "road", "square", "park", "bridge", "river", "lake", "sea", "ocean", "island", "islands", "mountain",
    "mountains", "university", "college", "school", "institute", "church", "cathedral", "abbey", "palace", "castle",
    "house", "tower", "company", "corporation", "group", "council", "party", "department", "society", "academy",
    "empire", "kingdom", "republic", "state", "states", "city", "county", "province", "valley", "war", "act",
    "award", "awards", "prize", "cup", "league", "club", "centre", "center", "station", "airport", "collection",
    "service", "services", "network", "channel", "project", "system", "dynasty", "period", "age", "revolution",
}


@cache
def _common(word: str) -> bool:
    return zipf(word.lower()) >= _FUNCTION_ZIPF


def _word_before(sentence: str, start: int) -> str:
    words = re.findall(r"[\w']+", sentence[:start])
    return words[-1].lower() if words else ""


def _next_word(sentence: str, end: int) -> re.Match | None:
    """The word right after position `end` (one space between), if any."""
    m = _WORD.match(sentence, end + 1) if sentence[end : end + 1] == " " else None
    return m


def _name_parts(text: str, at_start: bool) -> list[str]:
    """A capitalised run split into names: a leading article or (at a sentence start) common
    word dropped, split at "and"/"&" unless one word precedes it ("Victoria and Albert Museum",
    "East and West Halls"), possessive 's and trailing connectors removed."""
    words = text.split()
    if words and (words[0] in ("The", "A", "An") or (at_start and _common(words[0]))):
        words = words[1:]
    parts, cur = [], []
    for w in words:
        if w in ("and", "&") and len(cur) > 1:
            parts.append(cur)
            cur = []
        else:
            cur.append(w)
    parts.append(cur)
    out = []
    for part in parts:
        while part and part[-1].lower() in _CONNECTORS:
            part = part[:-1]
        while part and part[0].lower() in _CONNECTORS:
            part = part[1:]
        name = " ".join(part)
        name = re.sub(r"['\u2019]s$", "", name).rstrip(".,'\u2019")
        if name:
            out.append(name)
    return out


def answer_spans(sentence: str) -> list[Span]:
    """Short answer spans of one sentence, in order, without overlaps: dates and years, numbers
    with the word they count, quoted titles, capitalised names, and 'the ___' noun phrases."""
    found: list[tuple[int, int, str]] = []
    for start, end, kind in _candidate_spans(sentence):
        if start < 0 or end <= start or any(start < e and s < end for s, e, _ in found):
            continue  # an earlier candidate holds part of it
        found.append((start, end, kind))
    spans = []
    for start, end, kind in sorted(found):
        text = sentence[start:end].strip(" ,;:")
        if text:
            spans.append(Span(text, kind, sentence, _word_before(sentence, start)))
    return spans


def _candidate_spans(sentence: str):
    """(start, end, kind) of every candidate span, the preferred kinds first: an earlier one wins an overlap."""
    for m in _TITLE.finditer(sentence):
        yield m.start(1), m.end(1), "title"
    for pattern, kind in ((_DATE, "date"), (_CENTURY, "century"), (_YEAR, "year")):
        for m in pattern.finditer(sentence):
            yield m.start(), m.end(), kind
    yield from _number_spans(sentence)
    yield from _name_spans(sentence)
    yield from _thing_spans(sentence)


def _number_spans(sentence: str):
    """Numbers (digits, or two or more spelled words: "three million") with one counted word."""
    nums = [(m.start(), m.end()) for m in _NUMBER.finditer(sentence)]
    nums += [(m.start(), m.end()) for m in _SPELLED_RUN.finditer(sentence)]
    for start, end in sorted(nums):
        while (nxt := _next_word(sentence, end)) and nxt.group(0).lower() in _SCALE:
            end = nxt.end()
        nxt = _next_word(sentence, end)
        counted = nxt.group(0) if nxt and nxt.group(0)[0].islower() and not _common(nxt.group(0)) else None
        if counted is None and not re.search(r"\d", sentence[start:end]):
            continue  # a spelled number alone ("two") says too little
        if counted:
            end = nxt.end()
        yield start, end, "quantity" if counted else "number"


def _name_spans(sentence: str):
    """Capitalised names, split into parts (_name_parts)."""
    for m in _NAME.finditer(sentence):
        for name in _name_parts(m.group(0), at_start=m.start() == 0):
            start = sentence.find(name, m.start())
            if len(name.split()) == 1 and (len(name) < 3 or _common(name) or start == 0):
                continue  # "Construction", "Likewise": a sentence's first word is capitalised anyway
            yield start, start + len(name), "name"


def _thing_spans(sentence: str):
    """'the ___' noun phrases: up to three rare lower-case words right after a determiner."""
    for m in _DETERMINER.finditer(sentence):
        words = []
        for w in _WORD.finditer(sentence, m.end()):
            if w.start() != (words[-1].end() + 1 if words else m.end()):
                break  # not directly after the previous word: punctuation in between
            text = w.group(0)
            if not text[0].islower() or _common(text) or text in _PHRASE_END or len(words) == 3:
                break
            words.append(w)
        # the phrase must end where the noun phrase ends, not in the middle of a verb phrase
        while words and re.search(r"(?:ed|ly|ing)$", words[-1].group(0)) and len(words) > 1:
            words.pop()
        if not words or re.search(r"(?:ed|ly)$", words[-1].group(0)):
            continue
        if len(words) == 1 and zipf(words[0].group(0)) >= _THING_ZIPF:
            continue
        yield words[0].start(), words[-1].end(), "thing"


def question_words(span: Span) -> list[str]:
    """Question openings that fit the span: "In what year" for 1889, "How many feet" for 720
    feet, "Who" after "by", "Where" after "in". The caller draws one."""
    words = span.text.split()
    first = words[0].lower()
    if span.kind in ("year",):
        return ["In what year", "When"] if "s" not in span.text[-1:] else ["In what decade", "When"]
    if span.kind == "date":
        return ["When", "On what date"] if span.text[0].isdigit() or "," in span.text else ["When"]
    if span.kind == "century":
        return ["In what century", "When"]
    if span.kind == "quantity":
        unit = words[-1]
        if unit.lower() in _TIME_UNITS:
            return [f"How many {unit}", "How long"]
        return [f"How many {unit}"] if unit.endswith("s") or unit.lower() in _UNITS else ["How many", "What"]
    if span.kind == "number":
        if "%" in span.text or words[-1].lower() in ("percent", "cent"):
            return ["What percentage", "How much"]
        return ["How much"] if re.search("[$\u00a3\u20ac]", span.text) else ["How many", "How much"]
    if span.kind == "title":
        return ["What", "Which"]
    if span.kind == "name":
        if span.before in _WHO_BEFORE or first in _HONORIFICS:
            return ["Who"]
        place = words[-1].lower() in _PLACE_WORDS
        if span.before in _WHERE_BEFORE:
            return ["Where", "Which", "What"] if place or len(words) == 1 else ["Where", "Who"]
        if place or len(words) == 1:
            return ["What", "Which"]
        return ["Who"]  # two or three capitalised words, none a place word: most often a person
    return ["What", "Which"]


def clause(span: Span, min_words: int = 8) -> str:
    """The part of the span's sentence around it: the sentence cut at commas, semicolons and
    brackets into pieces, the span's piece widened by its neighbours until it has `min_words`.
    A long SQuAD sentence holds several facts; a small model asked about all of it loses the span."""
    s = span.sentence
    at = s.find(span.text)
    # a comma between digits is a thousands separator ("19,000 items"), not a cut
    cuts = [0] + [m.end() for m in re.finditer(r"(?:,(?!\d)|(?<!\d),|[;:()\u2014])\s*|\s+[\u2013-]\s+", s)] + [len(s)]
    pieces = [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]
    i = next((k for k, (a, b) in enumerate(pieces) if a <= at < b), 0)
    j = i
    while at + len(span.text) > pieces[j][1] and j + 1 < len(pieces):
        j += 1  # the span itself crosses a comma ("5 July, 2005")
    def words(a, b):
        return len(s[pieces[a][0]:pieces[b][1]].split())
    while words(i, j) < min_words and (i > 0 or j + 1 < len(pieces)):
        if i > 0 and (j + 1 >= len(pieces) or words(i - 1, j) <= words(i, j + 1)):
            i -= 1
        else:
            j += 1
    return s[pieces[i][0]:pieces[j][1]].strip(" ,;:(\u2014-")


def wh_phrase(span: Span) -> str:
    """The question word that stands in for the span where it is: "what year" for 1885, "how
    many feet" for 720 feet, "whom" after "by", "where" after "in" (a place)."""
    words = span.text.split()
    if span.kind == "year":
        return "what decade" if span.text.endswith("s") else "what year"
    if span.kind in ("date", "century"):
        return f"what {span.kind}"
    if span.kind == "quantity":
        return f"how many {words[-1]}"
    if span.kind == "number":
        if "%" in span.text or words[-1].lower() in ("percent", "cent"):
            return "what percentage"
        return "how much" if re.search("[$\u00a3\u20ac]", span.text) else "how many"
    if span.kind == "name":
        first = question_words(span)[0]
        if first == "Who":
            return "whom" if span.before == "by" else "who"
        if first == "Where":
            return "where"
    return "what"


def in_situ_question(span: Span, min_words: int = 8) -> str | None:
    """The span's clause (of at least `min_words`) as a question with the span replaced by its
    question word, where it stands ("The main façade stretches how many feet along Cromwell
    Gardens?"). Clumsy English, but the pairing of question and answer is right by construction,
    which a small model's own questions often are not; None when the span is quoted or the
    question would be too short."""
    text = clause(span, min_words)
    wh = wh_phrase(span)
    if wh == "where" and span.before in _WHERE_BEFORE:
        question = re.sub(rf"\b{span.before}\s+{re.escape(span.text)}", "where", text, count=1)
    else:
        question = text.replace(span.text, wh, 1)
    question = question.strip(" .,;:")
    if question == text.strip(" .,;:") or len(question.split()) < 5 or re.search("[\"\u201c\u201d]", question):
        return None
    return question[0].upper() + question[1:] + "?"


def blank(text: str, span: Span) -> str:
    """The text with the span replaced by ___ (the cloze a question is made from)."""
    return text.replace(span.text, "___", 1)


_KIND_ORDER = ("year", "date", "century", "quantity", "number", "title", "name", "thing")


def pick_spans(text: str, rng: random.Random, k: int, kinds: tuple[str, ...] = _KIND_ORDER) -> list[Span]:
    """k answer spans of the text, each from a different sentence where there are enough, kinds
    mixed: the drawn sentences are visited in random order and each gives a span of a kind not
    used yet if it has one. Only spans the gate accepts as answers (answer_in_source) are drawn."""
    per_sentence = []
    for s in sentences(text):
        if not factual(s):
            continue
        spans = [sp for sp in answer_spans(s) if sp.kind in kinds and answer_in_source(sp.text, text)]
        if spans:
            per_sentence.append(spans)
    rng.shuffle(per_sentence)
    out: list[Span] = []
    used_kinds: set[str] = set()
    rounds = 0
    while len(out) < k and any(per_sentence) and rounds < k + 2:
        rounds += 1
        for spans in per_sentence:
            if len(out) >= k or not spans:
                continue
            fresh = [sp for sp in spans if sp.kind not in used_kinds and sp not in out]
            pool = fresh or [sp for sp in spans if sp not in out]
            if not pool:
                continue
            choice = rng.choice(pool)
            spans.remove(choice)
            out.append(choice)
            used_kinds.add(choice.kind)
            if len(used_kinds) == len(kinds):
                used_kinds.clear()
    return out


def grounded(text: str, source: str, bar: float, extra: str = "") -> bool:
    """The gate's grounding test (reverie.dream.gate), run by a generator on its own pieces so it
    can choose, among a few samples, one that will pass: at least `bar` of the content words
    occur in the source (or in `extra`, the outside randomness the piece was given) and every
    number does."""
    share, missing = word_grounding(text, source, extra)
    return share >= bar and not missing


def first_sentence(text: str, max_words: int = 30) -> str | None:
    """The first line's first sentence of a reply, quotes and list marks stripped; None when it
    is empty or longer than `max_words` (a small model that rambles is off the task)."""
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(?:[-*\u2022]\s*|\d+[.)]\s*)", "", line).strip().strip("\"'\u201c\u201d")
    sents = sentences(line)
    out = sents[0].strip() if sents else ""
    if not out or len(out.split()) > max_words:
        return None
    return out


def short_piece(sentence: str, max_words: int = 40, min_words: int = 12) -> str:
    """The sentence if it is short, else its opening up to the first comma, semicolon or bracket
    after `min_words` words: a quote a persona can say in one breath, that still starts with
    its subject."""
    if len(sentence.split()) <= max_words:
        return sentence.strip()
    for m in re.finditer(r"[,;:(\u2014]", sentence):
        head = sentence[: m.start()].strip()
        if len(head.split()) >= min_words:
            return head
    return " ".join(sentence.split()[:max_words])


def in_running_text(piece: str, context: str = "") -> str:
    """A sentence made to follow "I read that ...": its first word lower-cased unless it is a
    name (capitalised again somewhere in the middle of the piece or of `context`, or not a
    dictionary word), its final stop removed."""
    piece = piece.strip().rstrip(".")
    first = piece.split()[0] if piece.split() else ""
    if not first or (len(first) > 1 and first.isupper()) or not first[0].isupper():
        return piece
    words = piece.split()
    if len(words) > 1 and words[1][:1].isupper():
        return piece  # "Aston Webb designed ..."
    text = f"{piece}. {context}"
    named_elsewhere = any(m.start() > 0 and not re.search(r"[.!?\"]\s*$", text[: m.start()])
                          for m in re.finditer(rf"\b{re.escape(first)}\b", text))
    if zipf(first.lower()) >= 3.0 and not named_elsewhere:
        piece = first.lower() + piece[len(first):]
    return piece


def echoes(text: str, example: str, source: str) -> bool:
    """The reply repeats the worked example instead of using the chunk: it has a name or number
    of the example that the chunk lacks ("Eiffel", "1889"), or two of its other content words
    ("bridge ... opened"). A small model shown an example copies it when it does not know what
    to say."""
    src = set(content_stems(source))
    names = {stem(w) for w in re.findall(r"(?<!^)(?<![.!?] )\b[A-Z][\w'-]+", example)} - src
    own = set(content_stems(example)) - src
    said = set(content_stems(text))
    return bool(names & said) or len(own & said) >= 2 or bool((numbers(text) & numbers(example)) - numbers(source))
