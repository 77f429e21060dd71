"""Claims from English text reports, and checking them against imagery.

A *claim* is one sentence of a report that says something about equipment at a place: which
equipment (library types, generic words, unresolved designations), how many (with qualifier and
numeric range), what it is doing (state), where (watched site), when (resolved against the
publication date) and on whose word (attribution). :func:`check_claims` then compares each claim
with the passes and comparisons of its site.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

from spacy.lang.en.stop_words import STOP_WORDS

from sitewatch.assess import _comparison as cmp
from sitewatch.assess._extract import Extractor, blank_pipeline
from sitewatch.assess._sources import resolve_sources
from sitewatch.assess.metrics import joint_observed, on_area, unobserved
from sitewatch.assess.vocabulary import Vocabulary, build_vocabulary, package_vocabulary_data
from sitewatch.errors import ClaimsError
from sitewatch.types import CATEGORIES, Pass

log = logging.getLogger(__name__)

VERDICTS = ("corroborated", "contradicted", "not-observable", "no-imagery")
#: States that describe an activity in progress or an intent: counts that have not changed yet do
#: not contradict them.
IN_PROGRESS_STATES = {"departing", "dismantling", "loading"}
#: Minimum share of English stopwords among the words of a text for it to be taken as English.
MIN_STOPWORD_RATIO = 0.15
#: A claimed number is matched by an observed one within this factor (detector recall, occlusion).
COUNT_TOLERANCE = 0.5
#: Longest report text extracted, characters (about 2 MB of English; extraction takes about a
#: minute per million characters, see docs/assess.md).
MAX_TEXT_CHARS = 2_000_000
#: The language check reads at most this many characters from the start of a text.
LANGUAGE_SAMPLE_CHARS = 20_000


def reliability_weight(letter: str | None) -> float:
    """Weight of a source's admiralty reliability letter (A..F; None counts as F)."""
    table = package_vocabulary_data()["reliability"]
    return float(table.get((letter or "F").upper(), table["F"])["weight"])


@dataclass(slots=True)
class Claim:
    """One claim from a text report.

    Attributes:
        id: stable identifier (``claim-`` + hash of source, publication date and sentence).
        text: the sentence.
        source: name of the source (outlet, author, channel).
        published: publication time, or None.
        reliability: admiralty source reliability letter A-F, or None (treated as F).
        equipment: mentions: ``{"text", "type_id", "name", "category", "role", "resolved",
            "generic", "count": {"text", "qualifier", "min", "max"} | None}``.
        states: normalised states ("departed", "dismantling", "not-departed", ...).
        signal: what the claim says about quantity at the site: "decrease", "increase",
            "present", "absent", "exercise", "rotation", "mixed", or None.
        places: watched-site names mentioned (or inherited from the document when the sentence names none).
        place_texts: the place words as written.
        dates: ``{"text", "date" (ISO or None), "qualifier" ("since", "on", ... or None)}``.
        attributions: who says so ("a US official", "Maxar"); a named source by its name alone
            ("Dmitry Peskov"), back-references ("He said") resolved to the name they refer to.
        speaker: the named source of the claim when its role is written ("Dmitry Peskov"), or None.
        speaker_role: that role ("Kremlin spokesman"), or None.
        unresolved: designations not in the reference library ("Su-99").
        sentence: index of the sentence in its document.
        document_id: store id of the document, or None.
        url: where the document came from, or None.
        place_inherited: True when ``places`` comes from elsewhere in the document.
    """

    id: str
    text: str
    source: str
    published: datetime | None = None
    reliability: str | None = None
    equipment: list[dict[str, Any]] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    signal: str | None = None
    places: list[str] = field(default_factory=list)
    place_texts: list[str] = field(default_factory=list)
    dates: list[dict[str, Any]] = field(default_factory=list)
    attributions: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    sentence: int = 0
    document_id: int | None = None
    url: str | None = None
    place_inherited: bool = False
    speaker: str | None = None
    speaker_role: str | None = None

    @property
    def observable(self) -> bool:
        """True when the claim names equipment that imagery can count (a detector category)."""
        return bool(self.categories)

    @property
    def site(self) -> str | None:
        """The watched site the claim is about, or None."""
        return self.places[0] if self.places else None

    @property
    def date(self) -> date | None:
        """The first resolved date of the claim, or None."""
        for d in self.dates:
            if d.get("date"):
                return date.fromisoformat(d["date"])
        return None

    @property
    def reference_date(self) -> dt.date | None:  # (``date`` here is the property above)
        """The claim's date, else its publication date."""
        return self.date or (self.published.date() if self.published else None)

    @property
    def categories(self) -> list[str]:
        """Detector categories of the equipment named (imagery can count these)."""
        return sorted({m["category"] for m in self.equipment if m.get("category") in CATEGORIES})

    @property
    def ref(self) -> str:
        return f"claim:{self.id}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; round-trips through :meth:`from_dict`."""
        return {
            "id": self.id,
            "text": self.text,
            "source": self.source,
            "published": self.published.isoformat() if self.published else None,
            "reliability": self.reliability,
            "equipment": [dict(m) for m in self.equipment],
            "states": list(self.states),
            "signal": self.signal,
            "places": list(self.places),
            "place_texts": list(self.place_texts),
            "dates": [dict(d) for d in self.dates],
            "attributions": list(self.attributions),
            "unresolved": list(self.unresolved),
            "sentence": self.sentence,
            "document_id": self.document_id,
            "url": self.url,
            "place_inherited": self.place_inherited,
            "speaker": self.speaker,
            "speaker_role": self.speaker_role,
            "observable": self.observable,
            "site": self.site,
            "key": _claim_id(self.source, self.published, self.text),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Claim:
        pub = d.get("published")
        return cls(
            id=str(d["id"]),
            text=d["text"],
            source=d["source"],
            published=datetime.fromisoformat(pub) if isinstance(pub, str) else pub,
            reliability=d.get("reliability"),
            equipment=[dict(m) for m in d.get("equipment") or []],
            states=list(d.get("states") or []),
            signal=d.get("signal"),
            places=list(d.get("places") or []),
            place_texts=list(d.get("place_texts") or []),
            dates=[dict(x) for x in d.get("dates") or []],
            attributions=list(d.get("attributions") or []),
            unresolved=list(d.get("unresolved") or []),
            sentence=int(d.get("sentence") or 0),
            document_id=d.get("document_id"),
            url=d.get("url"),
            place_inherited=bool(d.get("place_inherited", False)),
            speaker=d.get("speaker"),
            speaker_role=d.get("speaker_role"),
        )


@dataclass(slots=True)
class ClaimCheck:
    """The imagery's answer to one claim.

    Attributes:
        claim_id: the claim checked.
        verdict: one of :data:`VERDICTS`.
        reason: one plain-English sentence saying why.
        evidence: references (``pass:<id>``, ``det:<id>``, ``comparison:<a>-<b>``, ``claim:<id>``).
        observed: the numbers looked at (counts before/after, category or type counted, dates).
    """

    claim_id: str
    verdict: str
    reason: str
    evidence: list[str] = field(default_factory=list)
    observed: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"claim_id": self.claim_id, "verdict": self.verdict, "reason": self.reason,
                "evidence": list(self.evidence), "observed": dict(self.observed)}  # fmt: skip


# ---- language -------------------------------------------------------------------------------
#: Texts with at least this many words are refused below :data:`MIN_STOPWORD_RATIO` whatever else fits.
LONG_TEXT_WORDS = 40


@cache
def _foreign_stopwords() -> list[frozenset[str]]:
    """Common function words of other Latin-script languages (``data/vocabulary.yaml``), English ones
    removed."""
    lists = package_vocabulary_data()["foreign_function_words"]
    return [frozenset(w for w in words.split() if w not in STOP_WORDS) for words in lists.values()]


def check_english(text: str, name: str = "text") -> None:
    """Refuse empty, oversized or non-English text.

    English prose has roughly 40-55 % stopwords ("the", "of", "at"); a text whose words are
    mostly non-Latin, or whose stopword share is below :data:`MIN_STOPWORD_RATIO`, is refused.
    Only the first :data:`LANGUAGE_SAMPLE_CHARS` characters are read for this.

    Raises:
        ClaimsError: one line naming ``name`` and the problem (empty, longer than
            :data:`MAX_TEXT_CHARS`, not English).
    """
    if not text or not text.strip():
        raise ClaimsError(f"{name}: text is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise ClaimsError(
            f"{name}: text is {len(text):,} characters, above the limit of {MAX_TEXT_CHARS:,}; split the "
            "report into parts"
        )
    text = text[:LANGUAGE_SAMPLE_CHARS]
    letters = [c for c in text if c.isalpha()]
    if not letters:
        raise ClaimsError(f"{name}: text has no words")
    latin = sum(c.isascii() for c in letters) / len(letters)
    words = [t.lower_ for t in blank_pipeline().make_doc(text) if t.is_alpha]
    ratio = sum(w in STOP_WORDS for w in words) / max(len(words), 1)
    # A short English sentence may have few stopwords ("Turkish news agency Anadolu reported 3 Il-76
    # flights leaving Hmeimim on Friday."): below the floor it is refused only when another
    # language's stopwords fit it better, or when it is long enough for the floor to be telling.
    foreign = max(
        (sum(w in sw for w in words) / max(len(words), 1) for sw in _foreign_stopwords()), default=0.0
    )
    refuse_low = ratio < MIN_STOPWORD_RATIO and (foreign > ratio or len(words) >= LONG_TEXT_WORDS)
    if latin < 0.7 or (len(words) >= 6 and refuse_low):
        raise ClaimsError(
            f"{name}: text does not look like English (stopword share {ratio:.0%}, "
            f"Latin letters {latin:.0%}); only English reports are supported"
        )


# ---- extraction -----------------------------------------------------------------------------
def _signal(states: list[str], vocab: Vocabulary) -> str | None:
    signals = []
    for s in states:
        if s.startswith("not-"):
            base = vocab.states.get(s[4:], {}).get("signal")
            sig = (
                {"decrease": "present", "present": "absent", "absent": "present"}.get(base)
                if base is not None
                else None
            )
        else:
            sig = vocab.states.get(s, {}).get("signal")
        if sig and sig not in signals:
            signals.append(sig)
    if "decrease" in signals and "increase" in signals:
        return "mixed"
    for s in ("decrease", "increase", "absent", "exercise", "rotation", "present"):
        if s in signals:
            return s
    return None


def _claim_id(source: str, published: datetime | None, text: str) -> str:
    key = f"{source}\x1f{published.isoformat() if published else ''}\x1f{' '.join(text.split())}"
    return "claim-" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]


def extract_claims(
    text: str,
    *,
    source: str,
    published: datetime | None,
    reliability: str | None = None,
    url: str | None = None,
    library: Any | None = None,
    sites: Any | None = None,
    vocabulary: Vocabulary | None = None,
) -> list[Claim]:
    """Extract claims from English report text.

    A sentence becomes a claim when it names equipment, states an activity at a watched site, or
    is a statement by a named source with a role ("Kremlin spokesman Dmitry Peskov downplayed the
    reports"; "He confirmed ..."), which imagery cannot check (``observable`` False) unless it
    names equipment. Back-references ("He", "the outlet") resolve to the last named source; the
    sentences of a quoted passage share its attribution. Sentences that name no site inherit the
    document's most-mentioned site (``place_inherited``).

    The text is processed sentence by sentence (time linear in its length), up to
    :data:`MAX_TEXT_CHARS` characters.

    Args:
        text: the report text (plain text).
        source: name of the source.
        published: publication time; relative dates ("last week") resolve against it.
        reliability: admiralty reliability letter A-F of the source, or None.
        url: where the text came from.
        library: reference library for equipment types (default: the identify stage's).
        sites: watched sites (default: :func:`sitewatch.sites.list_sites`).
        vocabulary: a prebuilt vocabulary (overrides ``library`` and ``sites``).

    Raises:
        ClaimsError: empty, too long or non-English text, or a reliability letter outside A-F.
    """
    check_english(text, source)
    if reliability is not None and reliability.upper() not in "ABCDEF":
        raise ClaimsError(f"{source}: reliability must be one letter A-F, got {reliability!r}")
    vocab = vocabulary or build_vocabulary(library, sites)
    ex = Extractor(vocab)
    facts = []
    inside_quote = False
    for i, sent in enumerate(ex.sentences(text)):
        f = ex.facts(sent, i, published, inside_quote)
        inside_quote = f.ends_in_quote
        facts.append(f)
    resolve_sources(facts)
    mentioned: dict[str, int] = {}
    for f in facts:
        for p in f.places:
            mentioned[p] = mentioned.get(p, 0) + 1
    doc_site = max(mentioned, key=lambda k: mentioned[k]) if mentioned else None
    claims = []
    for f in facts:
        signal = _signal(f.states, vocab)
        if not f.mentions and not (signal and (f.places or doc_site)) and not f.speaker:
            continue
        c = Claim(
            id=_claim_id(source, published, f.text),
            text=f.text,
            source=source,
            published=published,
            reliability=reliability.upper() if reliability else None,
            equipment=[m.to_dict() for m in f.mentions],
            states=f.states,
            signal=signal,
            places=list(f.places),
            place_texts=list(f.place_texts),
            dates=f.dates,
            attributions=f.attributions,
            unresolved=[m.designation or m.text for m in f.mentions if not m.resolved and not m.generic],
            sentence=f.index,
            url=url,
            speaker=f.speaker,
            speaker_role=f.speaker_role,
        )
        if not c.places and doc_site:
            c.places, c.place_inherited = [doc_site], True
        claims.append(c)
    log.info("%s: %d sentences, %d claims", source, len(facts), len(claims))
    return claims


# ---- dependence -----------------------------------------------------------------------------
#: Sentences sharing at least this share of their content words (Jaccard, stopwords left out) are
#: taken as one story retold.
SAME_STORY_JACCARD = 0.6
_WORD = re.compile(r"[^\W_]+")


def _words(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.casefold()))


def _origin(c: Claim) -> tuple[str, int | None]:
    return (" ".join(c.source.split()).casefold(), c.document_id)


#: Buckets (one site and signal) larger than this are compared by exact sentence and speaker only.
MAX_PAIRWISE_CLAIMS = 1500


def _norm(name: str) -> str:
    return " ".join(name.split()).casefold()


def find_dependencies(claims: list[Claim]) -> list[dict[str, Any]]:
    """Groups of claims from different documents that may retell one story (possibly dependent).

    Two claims are linked when their sentences have the same words, or (same site and signal)
    they quote the same named speaker or share at least :data:`SAME_STORY_JACCARD` of their
    content words (stopwords left out).
    Groups are the connected sets of links; claims of one document are never linked to each other.
    The ACH weighting lets a group weigh as much as one report (:mod:`sitewatch.assess.assessment`).

    Returns:
        ``[{"claims": [ids, in input order], "reason": str}]``, groups of two or more.
    """
    parent = list(range(len(claims)))
    reasons: dict[int, list[str]] = {}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def link(i: int, j: int, why: str) -> None:
        if _origin(claims[i]) == _origin(claims[j]):
            return
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[rj] = ri
            reasons.setdefault(ri, []).extend(reasons.pop(rj, []))
        reasons.setdefault(ri, []).append(f"{claims[i].source} and {claims[j].source}: {why}")

    words = [_words(c.text) for c in claims]
    content = [frozenset(w for w in ws if w not in STOP_WORDS) for ws in words]
    same_words: dict[frozenset[str], list[int]] = {}
    speakers: dict[tuple[Any, ...], list[int]] = {}
    buckets: dict[tuple[Any, ...], list[int]] = {}
    for i, c in enumerate(claims):
        if words[i]:
            same_words.setdefault(words[i], []).append(i)
        if c.speaker:
            speakers.setdefault((c.site, c.signal, _norm(c.speaker)), []).append(i)
        buckets.setdefault((c.site, c.signal), []).append(i)
    for idx in same_words.values():
        for j in idx[1:]:
            link(idx[0], j, "the same sentence")
    for idx in speakers.values():
        for j in idx[1:]:
            link(idx[0], j, f"the same speaker ({claims[idx[0]].speaker})")
    for key, idx in buckets.items():
        if len(idx) > MAX_PAIRWISE_CLAIMS:
            log.warning(
                "%d claims about %s (%s): compared by exact sentence and speaker only",
                len(idx),
                key[0],
                key[1],
            )
            continue
        for a, i in enumerate(idx):
            for j in idx[a + 1 :]:
                wi, wj = content[i], content[j]
                if wi and wj and words[i] != words[j] and len(wi & wj) / len(wi | wj) >= SAME_STORY_JACCARD:
                    link(i, j, f"{len(wi & wj) / len(wi | wj):.0%} of their content words shared")
    groups: dict[int, list[int]] = {}
    for i in range(len(claims)):
        groups.setdefault(root(i), []).append(i)
    return [{"claims": [claims[i].id for i in members],
             "reason": "; ".join(dict.fromkeys(reasons.get(r, [])))}
            for r, members in groups.items() if len(members) > 1]  # fmt: skip


# ---- conflicts ------------------------------------------------------------------------------
_OPPOSED = {frozenset({"decrease", "increase"}), frozenset({"absent", "present"}),
            frozenset({"decrease", "present"}), frozenset({"increase", "absent"})}  # fmt: skip


def _ranges_disjoint(a: dict[str, Any], b: dict[str, Any]) -> bool:
    a_hi = a["max"] if a["max"] is not None else float("inf")
    b_hi = b["max"] if b["max"] is not None else float("inf")
    return a_hi < b["min"] or b_hi < a["min"]


def find_conflicts(claims: list[Claim], *, window_days: int = 7) -> list[dict[str, Any]]:
    """Pairs of claims about the same site and equipment that cannot both be true.

    Two claims conflict when they name overlapping categories (or the same type) at the same site
    within ``window_days`` of each other and either say opposite things (left vs arrived, gone vs
    still there) or give disjoint numbers for the same type. Both claims are kept; the conflict
    is reported.

    Returns:
        ``[{"claims": [id_a, id_b], "reason": str}]``.
    """
    out = []
    for i, a in enumerate(claims):
        for b in claims[i + 1 :]:
            if (
                a.site != b.site
                or a.source == b.source
                and a.document_id == b.document_id
                and a.sentence == b.sentence
            ):
                continue
            da, db = a.reference_date, b.reference_date
            if da and db and abs((da - db).days) > window_days:
                continue
            shared = set(a.categories) & set(b.categories)
            if not shared:
                continue
            if a.signal and b.signal and frozenset({a.signal, b.signal}) in _OPPOSED:
                out.append({"claims": [a.id, b.id],
                            "reason": f"{a.source} says {a.signal}, {b.source} says {b.signal} "
                                      f"({', '.join(sorted(shared))})"})  # fmt: skip
                continue
            for ma in a.equipment:
                for mb in b.equipment:
                    same = ma.get("type_id") and ma.get("type_id") == mb.get("type_id")
                    if (
                        same
                        and ma.get("count")
                        and mb.get("count")
                        and _ranges_disjoint(ma["count"], mb["count"])
                    ):
                        out.append({"claims": [a.id, b.id],
                                    "reason": f"{a.source} counts '{ma['count']['text']}' {ma['type_id']}, "
                                              f"{b.source} counts '{mb['count']['text']}'"})  # fmt: skip
    return out


# ---- checking against imagery ---------------------------------------------------------------
def _acquired(p: Pass) -> datetime:
    """The acquisition time of a dated pass (claims are checked against dated passes only)."""
    if p.acquired is None:
        raise ValueError(f"pass {p.id} has no acquisition time")
    return p.acquired


def _acq(p: Pass) -> date:
    return _acquired(p).date()


def _matching(p: Pass, mention: dict[str, Any]) -> list[Any]:
    """Detections of a pass that count for a mention: by identified type, else by category."""
    dets = [d for d in p.detections if d.category == mention.get("category")]
    tid = mention.get("type_id")
    if tid and any(d.best_type and d.best_type.type_id == tid for d in dets):
        return [d for d in dets if d.best_type and d.best_type.type_id == tid]
    return dets


def _observable_mentions(claim: Claim) -> list[dict[str, Any]]:
    return [m for m in claim.equipment if m.get("category") in CATEGORIES]


def _comparison_between(comparisons: list[Any], a: Pass, b: Pass) -> Any | None:
    for c in comparisons:
        if cmp.pass_ids(c) == (a.id, b.id):
            return c
    return None


def _det_refs(dets: list[Any], limit: int = 50) -> list[str]:
    return [f"det:{d.id}" for d in dets if d.id is not None][:limit]


def check_claims(
    claims: list[Claim], passes: list[Pass], comparisons: list[Any], *, tolerance_days: int = 3
) -> list[ClaimCheck]:
    """Check claims against the imagery of their site.

    * **not-observable**: the claim names no equipment imagery can count (troops, intentions,
      exercises without numbers), or describes an activity in progress that counts have not
      yet shown.
    * **no-imagery**: no pass brackets the claim's date (a pass on/before and one after it for
      "left"/"arrived"; a pass within ``tolerance_days`` for "N are there").
    * **corroborated / contradicted**: the counted detections (by identified type where the
      detections carry it, else by category) moved the way the claim says, by at least
      :data:`COUNT_TOLERANCE` of a claimed number.

    Args:
        claims: claims to check.
        passes: passes (of the claims' site or sites), any order.
        comparisons: comparisons between consecutive passes (their departed/arrived objects
            become evidence when they match a claim's pass pair).
        tolerance_days: how far a pass may be from a claim's date for "present" claims, days.
    """
    ordered = sorted((p for p in passes if p.acquired is not None), key=_acquired)
    return [_check_one(c, ordered, comparisons, tolerance_days) for c in claims]


def _check_one(claim: Claim, passes: list[Pass], comparisons: list[Any], tol: int) -> ClaimCheck:
    mentions = _observable_mentions(claim)
    signal = claim.signal
    if not mentions and claim.speaker:
        role = f" ({claim.speaker_role})" if claim.speaker_role else ""
        return ClaimCheck(
            claim.id,
            "not-observable",
            f"A statement by {claim.speaker}{role}: not observable in imagery.",
            [claim.ref],
        )
    if not mentions or signal in (None, "exercise", "rotation", "mixed"):
        why = (
            "names no equipment imagery can count"
            if not mentions
            else f"describes {signal or 'no activity'} that counts cannot show"
        )
        return ClaimCheck(claim.id, "not-observable", f"The claim {why}.", [claim.ref])
    site_passes = [p for p in passes if claim.site is None or p.site == claim.site]
    if not site_passes:
        return ClaimCheck(claim.id, "no-imagery", f"No passes of {claim.site or 'the site'}.", [claim.ref])
    when = claim.reference_date
    mention = max(mentions, key=lambda m: (m.get("count") is not None, m.get("resolved", False)))
    what = mention.get("type_id") or mention["category"]
    if signal in ("present", "absent"):
        return _check_presence(claim, site_passes, mention, what, when, tol)
    return _check_change(claim, site_passes, comparisons, mention, what, when)


def _check_presence(
    claim: Claim, passes: list[Pass], mention: dict, what: str, when: date | None, tol: int
) -> ClaimCheck:
    near = passes[-1:] if when is None else [p for p in passes if abs((_acq(p) - when).days) <= tol]
    if not near:
        return ClaimCheck(claim.id, "no-imagery", f"No pass within {tol} days of {when}.", [claim.ref])
    p = min(near, key=lambda p: abs((_acq(p) - when).days)) if when else near[0]
    blind = unobserved([p], {})
    if blind:
        return ClaimCheck(
            claim.id, "not-observable", f"{blind[0].upper()}{blind[1:]}.", [claim.ref, f"pass:{p.id}"]
        )
    dets = _matching(p, mention)
    n = len(dets)
    count = mention.get("count")
    if claim.signal == "absent":
        ok = n == 0
    elif count:
        hi = count["max"] if count["max"] is not None else float("inf")
        ok = COUNT_TOLERANCE * count["min"] <= n <= hi / COUNT_TOLERANCE
    else:
        ok = n > 0
    verdict = "corroborated" if ok else "contradicted"
    claimed = f" (claimed {count['text']})" if count else ""
    reason = f"{n} {what} detected on {_acq(p)}{claimed}."
    return ClaimCheck(claim.id, verdict, reason, [claim.ref, f"pass:{p.id}", *_det_refs(dets)],
                      {"what": what, "pass": p.id, "count": n, "date": str(_acq(p))})  # fmt: skip


def _check_change(
    claim: Claim, passes: list[Pass], comparisons: list[Any], mention: dict, what: str, when: date | None
) -> ClaimCheck:
    if when is None:
        before, after = (passes[0], passes[-1]) if len(passes) > 1 else (None, None)
    else:
        # A pass on the claimed day may already show the change; one pass day of slack before.
        earlier = [p for p in passes if _acq(p) < when + timedelta(days=1)]
        later = [p for p in passes if _acq(p) >= when]
        before = earlier[-1] if earlier else None
        after = next((p for p in reversed(later) if p is not before), None)
        if before is not None and after is not None and _acquired(after) <= _acquired(before):
            after = None
    if before is None or after is None:
        side = "before" if before is None else "after"
        return ClaimCheck(
            claim.id, "no-imagery", f"No pass {side} {when or 'the claim'} to compare.", [claim.ref]
        )
    joint, why = joint_observed(None, before, after, {})
    blind = unobserved([before, after], {}) or why
    if blind:
        return ClaimCheck(
            claim.id,
            "not-observable",
            f"{blind[0].upper()}{blind[1:]}.",
            [claim.ref, f"pass:{before.id}", f"pass:{after.id}"],
        )
    # counted only on ground both passes observed
    a, b = on_area(joint, _matching(before, mention)), on_area(joint, _matching(after, mention))
    delta = len(b) - len(a)
    refs = [claim.ref, f"pass:{before.id}", f"pass:{after.id}"]
    comp = _comparison_between(comparisons, before, after)
    if comp is not None:
        refs.append(cmp.ref(comp))
        want = "departed" if claim.signal == "decrease" else "arrived"
        for o in cmp.objects(comp):
            if cmp.status(o) == want and cmp.category(o) == mention["category"]:
                refs.extend(f"det:{i}" for i in cmp.detection_ids(o))
    else:
        refs.extend(_det_refs(a if claim.signal == "decrease" else b))
    observed = {"what": what, "before": {"pass": before.id, "date": str(_acq(before)), "count": len(a)},
                "after": {"pass": after.id, "date": str(_acq(after)), "count": len(b)},
                "change": delta}  # fmt: skip
    change = -delta if claim.signal == "decrease" else delta
    count = mention.get("count")
    needed = COUNT_TOLERANCE * count["min"] if count else 1
    text = f"{what}: {len(a)} on {_acq(before)}, {len(b)} on {_acq(after)}"
    if change >= max(needed, 1):
        return ClaimCheck(claim.id, "corroborated", f"{text}, as claimed.", refs, observed)
    if change > 0 and count:  # (without a claimed number any rise is enough)
        return ClaimCheck(
            claim.id, "contradicted", f"{text}: smaller than the claimed {count['text']}.", refs, observed
        )
    if any(s in IN_PROGRESS_STATES for s in claim.states) and change == 0:
        return ClaimCheck(
            claim.id,
            "not-observable",
            f"{text}: no change yet; the claimed activity is in progress.",
            refs,
            observed,
        )
    return ClaimCheck(
        claim.id, "contradicted", f"{text}: the opposite of or no {claim.signal}.", refs, observed
    )
