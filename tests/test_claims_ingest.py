"""Claims ingest: documents identified by content, dependent reports weighed once, bounded work, safe terminal output."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from tests.test_assess import det, make_pass
from tests.test_claims import SITES

from sitewatch.assess import _extract
from sitewatch.assess.assessment import assess_site
from sitewatch.assess.claims import MAX_TEXT_CHARS, Claim, extract_claims
from sitewatch.cli.main import cli
from sitewatch.errors import ClaimsError
from sitewatch.store import open_store

NOW = datetime(2024, 12, 21, 12, tzinfo=UTC)
REPORT = ("Over 10 jets left Hmeimim since Dec. 10, a US official said.\n"
          "Satellite images from Maxar show about 5 aircraft parked at Hmeimim on Dec. 17.\n")  # fmt: skip
#: Another outlet retelling the same story in other words.
RETOLD = ("More than 10 jets have left Hmeimim since Dec. 10, a US official told the agency.\n"
          "Images from Maxar show about 5 aircraft parked at Hmeimim on Dec. 17.\n")  # fmt: skip
#: An independent report of a different observation.
OTHER = "Two Su-24 bombers flew out of Khmeimim on Dec. 12, a Syrian monitoring group said.\n"


def passes() -> list:
    before = make_pass(1, 5, [det("aircraft", 60 * i, 0) for i in range(20)])
    after = make_pass(2, 17, [det("aircraft", 60 * i, 0) for i in range(5)])
    return [before, after]


def add(path, source: str = "Wire", reliability: str = "B"):  # noqa: ANN001, ANN201
    return CliRunner().invoke(cli, ["claims", "add", str(path), "--source", source, "--published", "2024-12-21",
                                    "--reliability", reliability])  # fmt: skip


def assessment():  # noqa: ANN201
    with open_store() as store:
        stored = store.list_claims("hmeimim")
    return assess_site("hmeimim", passes(), [], stored, now=NOW, weak_categories={})


def test_ingesting_the_same_text_twice_is_a_no_op(tmp_path):
    f = tmp_path / "wire.txt"
    f.write_text(REPORT, encoding="utf-8")
    assert add(f).exit_code == 0
    first = assessment()
    with open_store() as store:
        n_claims = len(store.list_claims())
    corroborated = [c.claim_id for c in first.checks if c.verdict == "corroborated"]
    assert n_claims == 2 and len(corroborated) == 2
    # the same file again, and the same text re-wrapped under the same source spelled differently
    again = tmp_path / "copy.txt"
    again.write_text(REPORT.replace("\n", "  \n\n"), encoding="utf-8")
    for path, source in ((f, "Wire"), (again, " wire ")):
        res = add(path, source)
        assert res.exit_code == 0, res.output
        assert f"{path}: already stored as document 1 from" in res.output and "nothing added" in res.output
    with open_store() as store:
        assert len(store.list_documents()) == 1 and len(store.list_claims()) == n_claims
    second = assessment()
    assert [c.claim_id for c in second.checks if c.verdict == "corroborated"] == corroborated
    assert [(h.name, h.probability) for h in second.hypotheses] == [(h.name, h.probability) for h in first.hypotheses]
    assert second.confidence == first.confidence


def test_the_same_story_from_two_outlets_is_two_sources_weighed_as_one(tmp_path):
    for name, text in (("wire.txt", REPORT), ("retold.txt", RETOLD), ("other.txt", OTHER)):
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert add(tmp_path / "wire.txt", "Wire").exit_code == 0
    alone = assessment()
    p_alone = alone.most_likely.probability
    # the identical text from a second outlet, and a retelling in other words from a third
    assert add(tmp_path / "wire.txt", "Second Outlet").exit_code == 0
    assert add(tmp_path / "retold.txt", "Third Outlet").exit_code == 0
    with open_store() as store:
        assert [d["source"] for d in store.list_documents()] == ["Wire", "Second Outlet", "Third Outlet"]
        assert len(store.list_claims()) == 6
    both = assessment()
    assert len(both.dependencies) == 2 and all(len(d["claims"]) == 3 for d in both.dependencies)
    assert "the same sentence" in both.dependencies[0]["reason"]
    rows = [r for r in both.ach_matrix["rows"] if r["kind"] == "claim"]
    assert len(rows) == 6 and all("possibly dependent: one of 3" in r["title"] for r in rows)
    # three tellings of one story weigh as one: the likelihoods do not move
    assert both.most_likely.name == alone.most_likely.name
    assert both.most_likely.probability == pytest.approx(p_alone, abs=1e-9)
    assert both.confidence["reasons"] == alone.confidence["reasons"]
    # an independent report does move them (the check above can fail)
    assert add(tmp_path / "other.txt", "Monitor").exit_code == 0
    assert assessment().most_likely.probability > p_alone + 0.01


def test_claims_of_one_document_are_never_dependent():
    claims = extract_claims("Two jets left Hmeimim on Dec. 12. Two jets left Hmeimim on Dec. 12 again.", source="A",
                            published=NOW, sites=SITES)  # fmt: skip
    from sitewatch.assess.claims import find_dependencies

    assert len(claims) == 2 and find_dependencies(claims) == []
    other = [Claim.from_dict({**c.to_dict(), "source": "B", "id": c.id + "b"}) for c in claims]
    assert [len(g["claims"]) for g in find_dependencies(claims + other)] == [4]


def test_text_blocks_join_back_and_respect_the_size():
    rng = random.Random(7)
    words = ["Two", "jets", "left.", "Hmeimim", "\n", "said", "“quote”", "x" * 50, "a", "end."]
    text = " ".join(rng.choice(words) for _ in range(20_000))
    for size in (100, 1_000, 20_000):
        blocks = _extract.text_blocks(text, size)
        assert "".join(blocks) == text and all(len(b) <= size for b in blocks)
    assert _extract.text_blocks("short", 100) == ["short"]


def test_block_size_does_not_change_what_is_extracted(monkeypatch):
    paragraph = ('Over 10 jets left Hmeimim since Dec. 10, a US official said. "The base is empty," Maxar said. '
                 '"Only two Il-76 remain." Kremlin spokesman Dmitry Peskov denied it. He said Su-24 jets remain.\n')  # fmt: skip
    text = "".join(paragraph.replace("10", str(10 + i)) for i in range(30))

    def run() -> list[dict]:
        out = []
        for c in extract_claims(text, source="t", published=NOW, sites=SITES):
            d = c.to_dict()
            out.append({k: d[k] for k in ("text", "equipment", "states", "attributions", "speaker", "sentence")})
        return out

    whole = run()
    monkeypatch.setattr(_extract, "BLOCK_CHARS", 700)
    assert run() == whole and len(whole) == 150


def test_text_above_the_limit_is_one_line(tmp_path):
    with pytest.raises(ClaimsError) as e:
        extract_claims("Two jets left Hmeimim. " * (MAX_TEXT_CHARS // 23 + 1), source="big.txt", published=NOW, sites=SITES)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("big.txt: text is 2,000,0") and "above the limit of 2,000,000" in msg
    big = tmp_path / "big.txt"
    big.write_text("Two jets left Hmeimim. " * (MAX_TEXT_CHARS // 23 + 1), encoding="utf-8")
    res = CliRunner().invoke(cli, ["claims", "extract", str(big), "--source", "Wire"])
    assert isinstance(res.exception, ClaimsError) and str(res.exception).startswith(f"{big}: text is")


@pytest.mark.slow
def test_a_million_characters_are_extracted():
    text = "Over 10 jets left Hmeimim since Dec. 10, a US official said. Kremlin spokesman Dmitry Peskov denied it.\n"
    repeats = 1_050_000 // len(text)
    text = text * repeats
    claims = extract_claims(text, source="t", published=NOW, sites=SITES)
    assert len(text) > 1_000_000 and len(claims) == 2 * repeats
    assert {c.speaker for c in claims} == {None, "Dmitry Peskov"}


def test_terminal_text_removes_escapes_controls_and_markup():
    from sitewatch.cli.console import terminal_text

    raw = "\x1b[2J\x1b[H\x1b[31mred\x1b[0m \x1b]0;title\x07\x1b]8;;http://x\x1b\\link\x9b1m \x07\x08bell\u202eevil [bold]b[/bold]\tok\n"
    assert terminal_text(raw) == "red link bellevil \\[bold]b\\[/bold]\tok\n"


def test_claims_list_strips_escape_sequences_and_markup(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one table row per line
    f = tmp_path / "hostile.txt"
    f.write_text("\x1b[2J\x1b[H\x1b[31mTwo Su-24 bombers left Hmeimim\x1b[0m on Friday, [bold]Maxar[/bold] said.\x07\n"
                 "\x1b]0;owned\x07Three Ka-52 arrived at Hmeimim\u202e on Dec. 18.\n", encoding="utf-8")  # fmt: skip
    assert add(f, "Evil\x1b[5m Wire").exit_code == 0
    with open_store() as store:  # a claim written raw by another tool: the terminal still gets no escapes
        doc = store.add_document("raw", "x")
        store.save_claims(doc, [{**store.list_claims()[0], "text": "\x1b[2J\x1b]0;owned\x07Cleared \x1b[5mscreen"}])
    res = CliRunner().invoke(cli, ["claims", "list"])
    assert res.exit_code == 0
    out = res.output
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "claims: 3" in out and "│ Cleared screen  " in out  # the title sequence removed whole
    assert "Two Su-24 bombers left Hmeimim" in out and "[bold]Maxar[/bold] said." in out  # markup shown as written
    assert "Three Ka-52 arrived at Hmeimim on Dec. 18." in out


@pytest.mark.parametrize("value", ["2999-01-01", "1959-12-31", "0001-01-01"])
def test_absurd_publication_dates_are_refused(tmp_path, value):
    f = tmp_path / "wire.txt"
    f.write_text(REPORT, encoding="utf-8")
    res = CliRunner().invoke(cli, ["claims", "add", str(f), "--source", "Wire", "--published", value])
    assert isinstance(res.exception, ClaimsError)
    msg = str(res.exception)
    assert msg.startswith("--published: ") and "outside 1960-01-01 .. " in msg and "\n" not in msg
    with open_store() as store:
        assert store.list_documents() == []
