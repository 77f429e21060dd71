"""Who says so: named sources with roles, back-references to them, and quoted passages.

Within a sentence, an attribution like "British broadcaster Channel 4" or "Kremlin spokesman
Dmitry Peskov" is split into the *name* (the attribution) and the *role* written beside it. Across
sentences, :func:`resolve_sources` replaces back-references ("He confirmed", "The outlet
suggested", "according to the paper") with the last named source of that kind, and gives the
sentences of one quoted passage (and a quote continuing it right after) the passage's attribution.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from spacy.lang.en.stop_words import STOP_WORDS
from spacy.tokens import Span, Token

if TYPE_CHECKING:
    from sitewatch.assess._extract import SentenceFacts

#: Double quotation marks; straight ones toggle, curly ones open or close.
QUOTE_MARKS = {'"', "“", "”", "„"}
_OPENING = {"“", "„"}
#: Lower-case words that may sit inside a name ("Asaad al-Shaibani", "Ursula von der Leyen").
_NAME_PARTICLES = {"al", "el", "bin", "ibn", "de", "da", "di", "van", "von", "der", "le", "la", "-", "'", "’"}
_MAX_NAME_TOKENS = 6
#: Named sources remembered as antecedents for back-references (the most recent ones).
_HISTORY = 200


@dataclass(slots=True)
class Source:
    """An attribution in a sentence.

    Attributes:
        text: the attribution as it becomes a claim's attribution (the name alone for a named source).
        name: the named source, or None.
        role: the role written beside the name ("Kremlin spokesman"), or None.
        kind: "person" or "outlet" for a named source or a back-reference, else None.
        backref: True when ``text`` refers back to an earlier source ("He", "the newspaper").
        noun: the role noun of a back-reference ("minister" in "the minister said"), or None.
    """

    text: str
    name: str | None = None
    role: str | None = None
    kind: str | None = None
    backref: bool = False
    noun: str | None = None


class RoleWords:
    """Role nouns and pronouns from the vocabulary's ``attribution`` section."""

    def __init__(self, attribution: dict[str, list[str]]) -> None:
        self.person = set(attribution.get("person_roles", []))
        self.outlet = set(attribution.get("outlet_roles", []))
        self.pronouns = set(attribution.get("pronouns", []))

    def kind(self, t: Token) -> str | None:
        """ "person"/"outlet" when ``t`` is a role noun; outlet nouns only in lower case or
        sentence-initial."""
        if t.lower_ in self.person:
            return "person"
        if t.lower_ in self.outlet and (t.is_lower or t.is_sent_start):
            return "outlet"
        return None

    def backref(self, span: Span) -> Source | None:
        """A back-reference: "he"/"she", or "the <role noun>" ("the outlet", "the minister")."""
        words = [t.lower_ for t in span]
        if len(words) == 1 and words[0] in self.pronouns:
            return Source(span.text, kind="person", backref=True)
        if len(words) == 2 and words[0] == "the" and (words[1] in self.person or words[1] in self.outlet):
            kind = "person" if words[1] in self.person else "outlet"
            return Source(span.text, kind=kind, backref=True, noun=words[1])
        return None


def _acronym(t: Token) -> bool:
    """ "US", "UN": capitals that are not the stopword they spell."""
    return len(t.text) > 1 and t.is_upper


def _is_name_token(t: Token) -> bool:
    return (t.is_title or t.is_upper or t.like_num or t.lower_ in _NAME_PARTICLES) and not t.is_space


def _source_at(toks: list[Token], i: int, roles: RoleWords) -> Source | None:
    """The named source whose role noun is ``toks[i]``, or None."""
    kind = roles.kind(toks[i])
    if kind is None or i + 1 >= len(toks):
        return None
    j = i + 1
    while j < len(toks) and j - i <= _MAX_NAME_TOKENS and _is_name_token(toks[j]):
        j += 1
    while j > i + 1 and toks[j - 1].lower_ in _NAME_PARTICLES:
        j -= 1
    first = toks[i + 1]
    if j == i + 1 or not first.is_alpha or not (first.is_title or first.is_upper):
        return None
    k = i
    while k > 0 and toks[k - 1].is_alpha and (toks[k - 1].lower_ not in STOP_WORDS or _acronym(toks[k - 1])):
        k -= 1
    doc = toks[i].doc
    name = doc[toks[i + 1].i : toks[j - 1].i + 1].text
    return Source(name, name=name, role=doc[toks[k].i : toks[i].i + 1].text, kind=kind)


def named_source(span: Span, roles: RoleWords) -> Source | None:
    """Split "<role words> <role noun> <Name>" (within ``span``) into name and role, or None.

    The role noun nearest the end that is followed by a capitalised name wins; the role extends
    left over words that are not stopwords. The name is the longest run of capitalised words,
    numbers and name particles after the role noun.
    """
    toks = list(span)
    for i in range(len(toks) - 2, -1, -1):
        src = _source_at(toks, i, roles)
        if src is not None:
            return src
    return None


def mentioned_sources(sent: Span, roles: RoleWords) -> list[Source]:
    """Every "<role> <Name>" in a sentence, in order (antecedents for later back-references)."""
    toks = list(sent)
    out: list[Source] = []
    for i in range(len(toks)):
        src = _source_at(toks, i, roles)
        if src is not None and src.name not in {s.name for s in out}:
            out.append(src)
    return out


def quote_flags(sent: Span, inside: bool) -> tuple[bool, bool, bool, bool]:
    """Quotation state of a sentence: (starts inside a quote, starts with a quote mark, has quote marks, ends
    inside).

    Args:
        sent: the sentence.
        inside: whether the text before it ended inside a quotation.
    """
    starts_inside = inside
    first = next((t for t in sent if not t.is_space), None)
    opens = first is not None and first.text in QUOTE_MARKS and not inside
    has = False
    for t in sent:
        if t.text in QUOTE_MARKS:
            has = True
            inside = (t.text in _OPENING) if t.text not in {'"'} else not inside
    return starts_inside, opens, has, inside


def _dedup(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def resolve_sources(facts: list[SentenceFacts]) -> None:
    """Resolve back-references and carry quoted passages' attributions, in place, in document order.

    Back-references take the last named source of their kind (a person for "he"/"she" and "the
    minister"; an outlet for "the newspaper"), looking at every earlier sentence, claim or not.
    Sentences joined by one open quotation share the attribution found in any of them; a quotation
    that opens right after an attributed one and names no source of its own continues it.
    """
    last: deque[Source] = deque(maxlen=_HISTORY)  # bounded: a reference looks back a few paragraphs at most
    for f in facts:
        resolved = []
        for src in f.sources:
            if src.backref:
                target = _antecedent(last, src)
                src = replace(target, text=target.name or target.text) if target is not None else src
            resolved.append(src)
        f.sources = resolved
        for src in [*f.mentioned, *(s for s in f.sources if s.name and s.role)]:
            last.append(src)
    _carry_quotes(facts)
    for f in facts:
        f.attributions = _dedup(s.text for s in f.sources)
        speaker = next((s for s in f.sources if s.name and s.role), None)
        if speaker is not None:
            f.speaker, f.speaker_role = speaker.name, speaker.role


def _antecedent(history: Sequence[Source], ref: Source) -> Source | None:
    for src in reversed(history):
        if src.kind != ref.kind:
            continue
        if ref.noun and ref.kind == "person" and ref.noun not in (src.role or "").lower().split():
            continue
        return src
    return None


def _carry_quotes(facts: list[SentenceFacts]) -> None:
    runs: list[list[SentenceFacts]] = []
    for f in facts:
        if runs and f.starts_in_quote:
            runs[-1].append(f)
        else:
            runs.append([f])
    previous: list[Source] | None = None
    for run in runs:
        own = next((f.sources for f in run if f.sources), None)
        quoted = any(f.has_quote for f in run)
        if own is None and previous is not None and run[0].opens_quote:
            own = previous
        if own is not None and quoted:
            for f in run:
                if not f.sources:
                    f.sources = list(own)
        previous = own if quoted else None
