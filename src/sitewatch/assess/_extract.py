"""Rule-based claim extraction with a blank spaCy English pipeline (no downloaded model).

Sentences come from spaCy's ``sentencizer``; equipment, places, states, counts, dates and
attribution cues are found with ``PhraseMatcher``/``Matcher`` patterns built from the
:class:`~sitewatch.assess.vocabulary.Vocabulary`. Model-like designations are found with a
regular expression over the text and resolved against the reference library; those the library
does not know are kept as unresolved mentions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache, lru_cache
from typing import Any

import dateparser
import spacy
from spacy.lang.en.stop_words import STOP_WORDS
from spacy.language import Language
from spacy.matcher import Matcher, PhraseMatcher
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from sitewatch.assess._sources import QUOTE_MARKS as _QUOTE_TOKENS
from sitewatch.assess._sources import RoleWords, Source, mentioned_sources, named_source, quote_flags
from sitewatch.assess.vocabulary import _NOT_EQUIPMENT, DESIGNATION_RE, Vocabulary

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "a hundred": 100,
}  # fmt: skip
_MONTHS = [
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december",
]  # fmt: skip
_MONTH_TOKENS = set(_MONTHS) | {m[:3] for m in _MONTHS} | {m[:3] + "." for m in _MONTHS} | {"sept", "sept."}
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_DATE_PREPOSITIONS = {"since", "on", "by", "until", "before", "after", "from", "in", "during", "over"}
_NEGATIONS = {"not", "n't", "no", "never", "nothing", "none"}
_CLAUSE_BREAKS = {",", ";", ":", "—", "–", "(", ")", '"', "“", "”", "'", "‘", "’", ".", "that", "and", "but"}
_POSSIBLE_YEAR = re.compile(r"^(19|20)\d\d$")
_ISO_DATE = re.compile(r"\b(20\d\d)-(\d\d)-(\d\d)\b")
#: Text is tokenised in blocks of at most this many characters (cut at line ends, else after a
#: sentence end, else at a space), so the work grows linearly with the text.
BLOCK_CHARS = 20_000
_CONTROL_TO_SPACE = {c: " " for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)] if chr(c) not in "\n\r\t"}
_SENTENCE_END = re.compile(r"[.!?][\"”’')\]]*\s+")


@cache
def blank_pipeline() -> Language:
    """``spacy.blank("en")`` with a rule-based sentencizer (cached; holds no vocabulary of ours)."""
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


@dataclass(slots=True)
class Mention:
    """An equipment mention in a sentence (token offsets in the doc)."""

    text: str
    start: int
    end: int
    type_id: str | None = None
    name: str | None = None
    category: str | None = None
    role: str | None = None
    resolved: bool = False
    generic: bool = False
    count: dict[str, Any] | None = None
    designation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text, "type_id": self.type_id, "name": self.name, "category": self.category,
            "role": self.role, "resolved": self.resolved, "generic": self.generic, "count": self.count,
        }  # fmt: skip


@dataclass(slots=True)
class SentenceFacts:
    """What one sentence says (before it becomes a Claim)."""

    text: str
    index: int
    mentions: list[Mention] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    places: list[str] = field(default_factory=list)
    place_texts: list[str] = field(default_factory=list)
    dates: list[dict[str, Any]] = field(default_factory=list)
    attributions: list[str] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    mentioned: list[Source] = field(default_factory=list)
    speaker: str | None = None
    speaker_role: str | None = None
    starts_in_quote: bool = False
    opens_quote: bool = False
    has_quote: bool = False
    ends_in_quote: bool = False


def _parse_number(text: str) -> int | None:
    t = text.lower().replace(",", "")
    if t.isdigit():
        return int(t)
    try:
        return int(float(t))
    except ValueError:
        return _NUMBER_WORDS.get(t)


def _apply_qualifier(kind: str | None, n: int) -> tuple[int, int | None]:
    if kind == "more-than":
        return n + 1, None
    if kind == "at-least":
        return n, None
    if kind == "about":
        return round(0.8 * n), round(1.2 * n) if n > 1 else n
    if kind == "nearly":
        return round(0.8 * n), max(n - 1, 0)
    if kind == "up-to":
        return 0, n
    if kind == "fewer-than":
        return 0, max(n - 1, 0)
    return n, n


def text_blocks(text: str, size: int = BLOCK_CHARS) -> list[str]:
    """``text`` cut into consecutive pieces of at most ``size`` characters that join back to it.

    Cuts fall at a line end where one is in the second half of the piece, else after a sentence
    end, else at a space; a piece without any is cut at ``size``.
    """
    out, i, n = [], 0, len(text)
    while n - i > size:
        window = text[i : i + size]
        cut = window.rfind("\n", size // 2) + 1
        if cut <= 0:
            ends = [m.end() for m in _SENTENCE_END.finditer(window, size // 2)]
            cut = ends[-1] if ends else window.rfind(" ", size // 2) + 1
        if cut <= 0:
            cut = size
        out.append(window[:cut])
        i += cut
    out.append(text[i:])
    return out


def _matches(matcher: Matcher | PhraseMatcher, doc: Doc, sent: Span) -> list[tuple[int, int, int]]:
    """Matches inside one sentence as ``(match_id, start, end)`` in doc token offsets."""
    return [(mid, s, e) for mid, s, e in matcher(doc) if s >= sent.start and e <= sent.end]


class Extractor:
    """Finds claims' facts in text using matchers built from one vocabulary."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.vocab = vocab
        self.nlp = blank_pipeline()
        make = self.nlp.make_doc
        self.names = PhraseMatcher(self.nlp.vocab, attr="ORTH")
        for i, name in enumerate(vocab.type_names):
            self.names.add(f"T{i}", [make(name)])
        self._name_of = {f"T{i}": n for i, n in enumerate(vocab.type_names)}
        self.generic = PhraseMatcher(self.nlp.vocab, attr="LOWER")
        for word in vocab.generic:
            self.generic.add(word, [make(word)])
        self.places = PhraseMatcher(self.nlp.vocab, attr="LOWER")
        for place in vocab.places:
            self.places.add(place, [make(place)])
        self.states = PhraseMatcher(self.nlp.vocab, attr="LOWER")
        for state, spec in vocab.states.items():
            self.states.add(state, [make(p) for p in spec["phrases"]])
        self.counts = self._count_matcher()
        self.dates = self._date_matcher()
        self.cues = PhraseMatcher(self.nlp.vocab, attr="LOWER")
        self.cues.add("PREP", [make(p) for p in vocab.attribution["prepositions"]])
        self.cues.add("VERB", [make(p) for p in vocab.attribution["verbs"]])
        self.cues.add("SAY", [make(p) for p in vocab.attribution.get("statement_verbs", [])])
        self.roles = RoleWords(vocab.attribution)

    # ---- matchers -------------------------------------------------------------------------
    def _count_matcher(self) -> Matcher:
        m = Matcher(self.nlp.vocab)
        num = {"LIKE_NUM": True}
        for q in self.vocab.qualifiers:
            m.add(f"Q:{q}", [[*({"LOWER": w} for w in q.split()), num]])
        m.add("NUM", [[num], [{"LOWER": "a"}, {"LOWER": "hundred"}]])
        m.add(
            "RANGE",
            [
                [{"LOWER": "between"}, num, {"LOWER": "and"}, num],
                [num, {"LOWER": {"IN": ["to", "-", "or"]}}, num],
            ],
        )
        for w in self.vocab.count_words:
            m.add(f"W:{w}", [[{"LOWER": t} for t in w.split()]])
        return m

    def _date_matcher(self) -> Matcher:
        m = Matcher(self.nlp.vocab)
        month = {"LOWER": {"IN": sorted(_MONTH_TOKENS)}}
        day = {"SHAPE": {"IN": ["d", "dd"]}}
        year = {"SHAPE": "dddd"}
        rel = {"LOWER": {"IN": ["last", "this", "past", "previous"]}}
        unit = {"LOWER": {"IN": ["week", "month", "weekend", "year", "night"]}}
        m.add("DATE", [
            [month, day, {"ORTH": ",", "OP": "?"}, year],
            [month, day],
            [day, month, year],
            [day, month],
            [{"LOWER": {"IN": ["early", "mid", "late", "mid-"]}}, month],
            [month, year],
            [{"LOWER": {"IN": _WEEKDAYS}}, {"LOWER": {"IN": ["night", "morning", "evening", "afternoon"]},
                                            "OP": "?"}],
            [{"LOWER": {"IN": ["earlier", "late", "early"]}, "OP": "?"}, rel, unit],
            [{"LOWER": {"IN": ["yesterday", "today", "overnight"]}}],
            [{"LIKE_NUM": True}, {"LOWER": {"IN": ["days", "weeks", "months", "day", "week"]}},
             {"LOWER": "ago"}],
        ])  # fmt: skip
        return m

    # ---- extraction -----------------------------------------------------------------------
    def sentences(self, text: str) -> Iterator[Doc]:
        """One small Doc per sentence, in order; the whole text is never one Doc.

        The text is tokenised block by block (:func:`text_blocks`); a quotation mark that the
        sentencizer leaves at the end of a sentence ('... said. "') opens the next one instead.
        """
        text = text.translate(_CONTROL_TO_SPACE)  # stray control characters would hide sentence ends
        for block in self.nlp.pipe(text_blocks(text)):
            bounds = [[s.start, s.end] for s in block.sents]
            for a, b in zip(bounds, bounds[1:], strict=False):
                last = block[a[1] - 1]
                if a[1] - a[0] > 1 and last.text in _QUOTE_TOKENS and block[a[1] - 2].text in {".", "!", "?"}:
                    quotes = sum(t.text in _QUOTE_TOKENS for t in block[a[0] : a[1]])
                    if quotes % 2 == 1 or last.text in {"“", "„"}:
                        a[1] -= 1
                        b[0] -= 1
            for start, end in bounds:
                sentence = block[start:end].text
                if sentence.strip():
                    # a fresh Doc per sentence: Span.as_doc() would copy the whole block each time
                    yield self.nlp.make_doc(sentence)

    def facts(
        self, doc: Doc, index: int, published: datetime | None, inside_quote: bool = False
    ) -> SentenceFacts:
        """What one sentence (a Doc from :meth:`sentences`) says.

        Args:
            doc: the sentence.
            index: its index in the document.
            published: publication time, for relative dates.
            inside_quote: whether the text before it ended inside a quotation.
        """
        sent = doc[:]
        f = SentenceFacts(text=sent.text.strip(), index=index)
        f.starts_in_quote, f.opens_quote, f.has_quote, f.ends_in_quote = quote_flags(sent, inside_quote)
        f.mentions = self._mentions(doc, sent)
        self._attach_counts(doc, sent, f.mentions)
        f.states = self._states(doc, sent)
        for _, s, e in _matches(self.places, doc, sent):
            span = doc[s:e]
            site = self.vocab.places.get(span.text.lower())
            if site is None:
                site = self.vocab.places.get(span.text.lower().replace("-", " "))
            if site and site not in f.places:
                f.places.append(site)
                f.place_texts.append(span.text)
        f.dates = self._dates(doc, sent, published)
        f.sources = self._attributions(doc, sent, f.mentions)
        f.attributions = [s.text for s in f.sources]
        f.mentioned = mentioned_sources(sent, self.roles)
        return f

    def _mentions(self, doc: Doc, sent: Span) -> list[Mention]:
        spans: list[Span] = []
        for m in DESIGNATION_RE.finditer(sent.text):
            prefix = m.group(0).split("-")[0].lower()
            if prefix in _NOT_EQUIPMENT:
                continue
            sp = doc.char_span(
                sent.start_char + m.start(), sent.start_char + m.end(), label="DES", alignment_mode="expand"
            )
            if sp is not None:
                spans.append(sp)
        for mid, s, e in _matches(self.names, doc, sent):
            spans.append(Span(doc, s, e, label=mid))
        specific = filter_spans(spans)
        taken = {i for sp in specific for i in range(sp.start, sp.end)}
        generic = [
            Span(doc, s, e, label=mid)
            for mid, s, e in _matches(self.generic, doc, sent)
            if not any(i in taken for i in range(s, e))
        ]
        # "Transport Minister", "Tank commander": a word naming a person's office, not equipment.
        generic = [
            sp
            for sp in filter_spans(generic)
            if not (sp.end < sent.end and self.roles.kind(doc[sp.end]) == "person")
        ]
        out: list[Mention] = []
        for sp in sorted(specific, key=lambda s: s.start):
            if sp.label_ == "DES":
                entry = self.vocab.resolve_designation(sp.text)
            else:
                entry = self.vocab.type_names[self._name_of[sp.label_]]
            mention = Mention(sp.text, sp.start, sp.end, resolved=entry is not None, designation=sp.text)
            if entry is not None:
                mention.type_id, mention.name, mention.category, mention.role = (
                    entry.type_id,
                    entry.name,
                    entry.category,
                    entry.role,
                )
            out.append(mention)
        for sp in sorted(generic, key=lambda s: s.start):
            info = self.vocab.generic[sp.label_]
            # "Il-76 transport aircraft": the generic words describe the type just before them.
            prev = next((m for m in out if not m.generic and 0 <= sp.start - m.end <= 1), None)
            if prev is not None:
                prev.text = doc[prev.start : sp.end].text
                prev.end = sp.end
                prev.category = prev.category or info["category"]
                prev.role = prev.role or info.get("role")
                continue
            out.append(
                Mention(
                    sp.text, sp.start, sp.end, category=info["category"], role=info.get("role"), generic=True
                )
            )
        return sorted(out, key=lambda m: m.start)

    def _attach_counts(self, doc: Doc, sent: Span, mentions: list[Mention]) -> None:
        spans = filter_spans([Span(doc, s, e, label=mid) for mid, s, e in _matches(self.counts, doc, sent)])
        for sp in spans:
            if self._is_date_number(doc, sp) or self._is_name_number(doc, sp):
                continue
            target = next((m for m in mentions if 0 <= m.start - sp.end <= 3 and m.count is None), None)
            if target is None:
                continue
            between = doc[sp.end : target.start]
            if any(
                (t.is_punct and t.text != "-") or t.like_num or t.lower_ in {"and", "or"} for t in between
            ):
                continue
            count = self._count_value(sp)
            if count is not None:
                target.count = count

    def _is_name_number(self, doc: Doc, sp: Span) -> bool:
        """A bare number right after a capitalised word is part of a name ("Channel 4", "France 24")."""
        if self.nlp.vocab.strings[sp.label] != "NUM" or sp.start == 0:
            return False
        prev = doc[sp.start - 1]
        low = prev.lower_
        return (prev.is_title or prev.is_upper) and prev.is_alpha and low not in STOP_WORDS \
            and low not in _MONTH_TOKENS and low not in _WEEKDAYS  # fmt: skip

    def _is_date_number(self, doc: Doc, sp: Span) -> bool:
        first, last = doc[sp.start], doc[sp.end - 1]
        if sp.start > 0 and doc[sp.start - 1].lower_ in _MONTH_TOKENS:
            return True
        if sp.end < len(doc) and doc[sp.end].lower_ in _MONTH_TOKENS:
            return True
        return bool(_POSSIBLE_YEAR.match(first.text) and _POSSIBLE_YEAR.match(last.text))

    def _count_value(self, sp: Span) -> dict[str, Any] | None:
        label = self.nlp.vocab.strings[sp.label]
        nums = [n for n in (_parse_number(t.text) for t in sp if t.like_num) if n is not None]
        if label.startswith("W:"):
            lo, hi = self.vocab.count_words[label[2:]]
            return {"text": sp.text, "qualifier": "approximate" if lo != hi else None, "min": lo, "max": hi}
        if label == "RANGE" and len(nums) == 2:
            return {"text": sp.text, "qualifier": "range", "min": min(nums), "max": max(nums)}
        if sp.text.lower() == "a hundred":
            nums = [100]
        if not nums:
            return None
        kind = self.vocab.qualifiers.get(label[2:]) if label.startswith("Q:") else None
        lo, hi = _apply_qualifier(kind, nums[-1])
        return {"text": sp.text, "qualifier": kind, "min": lo, "max": hi}

    def _states(self, doc: Doc, sent: Span) -> list[str]:
        spans = filter_spans([Span(doc, s, e, label=mid) for mid, s, e in _matches(self.states, doc, sent)])
        out: list[str] = []
        for sp in sorted(spans, key=lambda s: s.start):
            name = self.nlp.vocab.strings[sp.label]
            window = doc[max(sent.start, sp.start - 3) : sp.start]
            if any(t.lower_ in _NEGATIONS for t in window):
                name = "not-" + name
            if name not in out:
                out.append(name)
        return out

    def _dates(self, doc: Doc, sent: Span, published: datetime | None) -> list[dict[str, Any]]:
        spans = filter_spans([Span(doc, s, e) for _, s, e in _matches(self.dates, doc, sent)])
        out = []
        for m in _ISO_DATE.finditer(sent.text):
            out.append({"text": m.group(0), "date": m.group(0), "qualifier": None})
        for sp in sorted(spans, key=lambda s: s.start):
            prev = doc[sp.start - 1].lower_ if sp.start > sent.start else None
            qualifier = prev if prev in _DATE_PREPOSITIONS else None
            resolved = resolve_date(sp.text, published)
            out.append(
                {"text": sp.text, "date": resolved.isoformat() if resolved else None, "qualifier": qualifier}
            )
        return out

    def _attributions(self, doc: Doc, sent: Span, mentions: list[Mention]) -> list[Source]:
        mention_tokens = {i for m in mentions for i in range(m.start, m.end)}
        imagery = set(self.vocab.attribution["imagery_nouns"])
        out: list[Source] = []
        for mid, start, end in sorted(_matches(self.cues, doc, sent), key=lambda x: x[1]):
            kind = self.nlp.vocab.strings[mid]
            inverted = False
            if kind == "PREP":
                nxt = doc[end] if end < sent.end else None
                if doc[start].lower_ == "per" and (
                    nxt is None or not (nxt.is_title or nxt.is_upper or nxt.lower_ in {"the", "a", "an"})
                ):
                    continue
                src = self._run(doc, end, sent.end, +1)
            else:
                before = self._run(doc, start - 1, sent.start - 1, -1)
                if before is not None and any(i in mention_tokens for i in range(before.start, before.end)):
                    before = None
                if before is not None and any(t.lower_ in imagery for t in before):
                    src = self._imagery_provider(doc, before, imagery)
                elif before is not None:
                    src = before
                else:  # inverted: '"...," said a Russian officer.'
                    src, inverted = self._run(doc, end, sent.end, +1), True
            if src is None or len(src) > 10 or any(i in mention_tokens for i in range(src.start, src.end)):
                continue
            source = self._source(doc, src, sent, inverted)
            # Verbs like "downplayed" or "denied" attribute only to a named source or a reference to one.
            if kind == "SAY" and not (source.role or source.backref):
                continue
            if source.text and source.text not in {o.text for o in out}:
                out.append(source)
        return out

    def _source(self, doc: Doc, span: Span, sent: Span, inverted: bool) -> Source:
        """The attribution in ``span``: a back-reference, a named source with its role, or the words as
        written."""
        ref = self.roles.backref(span)
        if ref is not None:
            return ref
        named = named_source(span, self.roles)
        if named is not None:
            return named
        text = span.text.strip(" ,")
        # '"...," said Anna Keller, an analyst at ...': the role follows the name after a comma.
        if (
            inverted
            and span.end + 1 < sent.end
            and doc[span.end].text == ","
            and all(t.is_title for t in span if t.is_alpha)
        ):
            role = self._run(doc, span.end + 1, sent.end, +1)
            if (
                role is not None
                and role[0].lower_ in {"a", "an", "the"}
                and any(self.roles.kind(t) == "person" for t in role)
            ):
                return Source(text, name=text, role=role.text.strip(" ,"), kind="person")
        return Source(text)

    def _run(self, doc: Doc, i: int, stop: int, step: int) -> Span | None:
        """Tokens from ``i`` towards ``stop`` until a clause break; None when empty or too long."""
        idx = []
        while (
            i != stop
            and not doc[i].is_space
            and doc[i].text not in _CLAUSE_BREAKS
            and doc[i].lower_ not in _CLAUSE_BREAKS
        ):
            idx.append(i)
            i += step
            if len(idx) > 10:
                return None
        if not idx:
            return None
        lo, hi = min(idx), max(idx) + 1
        return doc[lo:hi]

    def _imagery_provider(self, doc: Doc, subject: Span, imagery: set[str]) -> Span | None:
        """'Satellite images from Maxar' -> Maxar; 'Planet Labs imagery' -> Planet Labs."""
        for t in subject:
            if t.lower_ in {"from", "by"} and t.i + 1 < subject.end:
                return doc[t.i + 1 : subject.end]
        first_img = next(t.i for t in subject if t.lower_ in imagery)
        names = [t.i for t in doc[subject.start : first_img] if t.is_title or t.is_upper]
        if names:
            return doc[min(names) : max(names) + 1]
        return None


def resolve_date(text: str, published: datetime | None) -> date | None:
    """Resolve a date expression against the publication time (dateparser, preferring the past).

    Relative expressions ("last week", "Friday") need ``published``; without it only
    expressions naming a month are resolved. "early/mid/late December" map to the 5th/15th/25th.
    Results are cached: reports repeat the same few expressions.
    """
    return _resolve_date(text, published)


@lru_cache(maxsize=4096)
def _resolve_date(text: str, published: datetime | None) -> date | None:
    t = text.strip()
    low = t.lower()
    has_month = any(tok.strip(".,") in _MONTH_TOKENS for tok in low.split())
    if published is None and not has_month:
        return None
    settings: dict[str, Any] = {"PREFER_DATES_FROM": "past", "RETURN_AS_TIMEZONE_AWARE": False}
    if published is not None:
        base = published.replace(tzinfo=None) if published.tzinfo else published
        settings["RELATIVE_BASE"] = base
    for word, day in (("early", "5"), ("mid-", "15"), ("mid", "15"), ("late", "25")):
        if low.startswith(word + " ") or (word.endswith("-") and low.startswith(word)):
            if has_month:
                t = f"{t[len(word) :].strip()} {day}"
            break
    if published is not None and re.fullmatch(r"(earlier |early |late )?this week", low):
        base = settings["RELATIVE_BASE"]
        return (base - timedelta(days=base.weekday())).date()  # Monday of the publication week
    t = re.sub(r"^(earlier|early|late)\s+", "", t, flags=re.I)
    t = re.sub(r"\bweekend\b", "saturday", t, flags=re.I) if low.startswith("last") else t
    t = re.sub(r"\b(night|morning|evening|afternoon)\b", "", t, flags=re.I).strip()
    if t.lower() == "overnight" and published is not None:
        return (settings["RELATIVE_BASE"] - timedelta(days=1)).date()
    parsed = dateparser.parse(t, languages=["en"], settings=settings)
    return parsed.date() if parsed else None
