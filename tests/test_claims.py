"""Claims: bad input, unresolved names, conflicts, round trip, checking against imagery, reading URLs."""

from __future__ import annotations

import http.server
import threading
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from tests.test_assess import det, make_pass

from sitewatch.assess.claims import Claim, check_claims, extract_claims, find_conflicts
from sitewatch.assess.documents import read_report
from sitewatch.cli.main import cli
from sitewatch.errors import ClaimsError

SITES = [SimpleNamespace(name="hmeimim", title="Hmeimim Air Base", aliases=["Khmeimim"]),
         SimpleNamespace(name="tartus", title="Tartus naval base", aliases=["Tartous"])]  # fmt: skip
PUB = datetime(2024, 12, 21, 9, tzinfo=UTC)


def claims_of(text: str, source: str = "test", reliability: str | None = None) -> list[Claim]:
    return extract_claims(text, source=source, published=PUB, reliability=reliability, sites=SITES)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("Die russischen Flugzeuge haben den Stützpunkt Hmeimim verlassen, berichtete die Agentur am Freitag.", "not look like English"),
        ("Российские самолёты покинули авиабазу Хмеймим в пятницу, сообщили источники.", "not look like English"),
        ("1234 5678 ----", "no words"),
    ],
)
def test_bad_text_is_one_clear_error(text, match):
    with pytest.raises(ClaimsError, match=match) as e:
        claims_of(text, source="wire.txt")
    assert "\n" not in str(e.value) and str(e.value).startswith("wire.txt")


def test_unknown_equipment_is_kept_unresolved():
    [c] = claims_of("Two Su-99 fighters and an Orion-X drone arrived at Hmeimim on Friday.")
    assert c.unresolved == ["Su-99", "Orion-X"]
    kept = {m["text"]: m for m in c.equipment}
    assert kept["Su-99 fighters"]["resolved"] is False and kept["Su-99 fighters"]["count"]["min"] == 2
    assert kept["Su-99 fighters"]["category"] == "aircraft" and kept["Su-99 fighters"]["type_id"] is None
    assert kept["Orion-X drone"]["category"] == "aircraft"  # the generic word still gives a category


def test_library_names_and_aliases_resolve():
    [c] = claims_of("Three Su-24M2s, a Fencer and an An-124 Ruslan were parked at Khmeimim.")
    assert [m["type_id"] for m in c.equipment] == ["su-24", "su-24", "an-124"]
    assert c.places == ["hmeimim"] and c.signal == "present"


def test_round_trip_through_dict():
    for c in claims_of("Over 150 vehicles left Tartus since Dec. 10, according to the Syrian Observatory.", reliability="B"):
        d = c.to_dict()
        assert Claim.from_dict(d).to_dict() == d
        assert d["equipment"][0]["count"] == {"text": "Over 150", "qualifier": "more-than", "min": 151, "max": None}
        assert d["dates"][0] == {"text": "Dec. 10", "date": "2024-12-10", "qualifier": "since"}


def test_contradictory_claims_are_both_kept_and_flagged():
    a = claims_of("Dozens of jets have left Hmeimim air base, a US official said.", source="Wire A")
    b = claims_of("All the jets remain at Hmeimim, the Russian Defence Ministry said.", source="Ministry")
    conflicts = find_conflicts(a + b)
    assert len(a + b) == 2 and len(conflicts) == 1
    assert set(conflicts[0]["claims"]) == {a[0].id, b[0].id}


def test_claims_checked_against_imagery():
    before = make_pass(1, 5, [det("aircraft", 60 * i, 0) for i in range(20)])
    after = make_pass(2, 17, [det("aircraft", 60 * i, 0) for i in range(5)])
    texts = {
        "left": "Over 10 jets left Hmeimim since Dec. 10, a US official said.",
        "arrived": "Dozens of jets arrived at Hmeimim since Dec. 10, a blogger claimed.",
        "present": "About 20 aircraft were parked at Hmeimim on Dec. 5, Maxar said.",
        "future": "Two frigates were spotted at Hmeimim on Dec. 1.",
        "troops": "Russian troops were withdrawn from Hmeimim, officials said.",
        "nodate": "Two jets arrived at Hmeimim on Nov. 1.",
    }
    claims = {k: claims_of(t)[0] for k, t in texts.items()}
    checks = {k: ch for k, ch in zip(claims, check_claims(list(claims.values()), [after, before], []), strict=True)}
    assert checks["left"].verdict == "corroborated"
    assert checks["left"].observed["before"]["count"] == 20 and checks["left"].observed["after"]["count"] == 5
    assert {"pass:1", "pass:2"} <= set(checks["left"].evidence)
    assert checks["arrived"].verdict == "contradicted"
    assert checks["present"].verdict == "corroborated"
    assert checks["future"].verdict == "no-imagery"  # no pass within 3 days of Dec. 1
    assert checks["troops"].verdict == "not-observable"
    assert checks["nodate"].verdict == "no-imagery"  # no pass before Nov. 1


class _Handler(http.server.BaseHTTPRequestHandler):
    PAGE = (b"<html><head><title>Jets leave Hmeimim</title><script>var x = 'Su-57';</script></head><body>"
            b"<nav>Home | World</nav><p>Over 20 jets have left Hmeimim since Dec. 10, a US official said.</p></body></html>")  # fmt: skip

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        if self.path == "/missing":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(self.PAGE)

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture
def local_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_reads_html_from_a_url(local_server):
    r = read_report(local_server + "/news")
    assert r.title == "Jets leave Hmeimim" and r.url.endswith("/news")
    assert "Su-57" not in r.text and "Home" not in r.text and r.text.startswith("Over 20 jets")
    with pytest.raises(ClaimsError, match="HTTP 404"):
        read_report(local_server + "/missing")


def test_cli_extract_and_errors(tmp_path, local_server):
    runner = CliRunner()
    f = tmp_path / "wire.txt"
    f.write_text("Two Il-76 transport aircraft left Khmeimim on Tuesday, a US defence official said.", encoding="utf-8")
    res = runner.invoke(cli, ["claims", "extract", str(f), "--source", "Wire", "--published", "2024-12-21", "--json"])
    assert res.exit_code == 0, res.output
    assert '"il-76md"' in res.output and '"2024-12-17"' in res.output
    res = runner.invoke(cli, ["claims", "extract", local_server + "/news", "--source", "Web", "--json"])
    assert res.exit_code == 0 and '"min": 21' in res.output
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    res = runner.invoke(cli, ["claims", "extract", str(empty), "--source", "Wire"])
    assert isinstance(res.exception, ClaimsError) and str(res.exception) == f"{empty}: text is empty"


def test_cli_add_stores_claims_that_round_trip(tmp_path):
    from sitewatch.store import open_store

    f = tmp_path / "wire.txt"
    f.write_text("Two Il-76 transport aircraft left the base on Tuesday, a US defence official said.\n"
                 "Syrian sources said a Su-99 had arrived.", encoding="utf-8")  # fmt: skip
    res = CliRunner().invoke(cli, ["claims", "add", str(f), "--source", "Wire", "--published", "2024-12-21", "--reliability", "b"])
    assert res.exit_code == 0, res.output
    with open_store() as store:
        [doc] = store.list_documents()
        stored = store.list_claims()
    assert doc["source"] == "Wire" and len(stored) == 2
    claims = [Claim.from_dict(d) for d in stored]
    assert claims[0].reliability == "B" and claims[0].equipment[0]["type_id"] == "il-76md"
    assert claims[1].unresolved == ["Su-99"] and all(c.document_id == doc["id"] for c in claims)


NEWS = ('British broadcaster Channel 4 reported a convoy of over 150 vehicles leaving Tartus. '
        'The outlet suggested the convoy was heading to Hmeimim. '
        'Kremlin spokesman Dmitry Peskov downplayed the reports on Monday. '
        'He confirmed that talks with the new authorities were continuing. '
        '"The base is empty," Maxar said. "Only two Il-76 remain on the apron. The rest left on Thursday."')  # fmt: skip


def test_names_with_numbers_outlets_officials_and_quotes():
    convoy, outlet, peskov, confirmed, empty, two, rest = claims_of(NEWS)
    # "Channel 4" is a name, not a count: the convoy has no number, the vehicles over 150
    assert [(m["text"], m["count"]) for m in convoy.equipment] == [
        ("convoy", None), ("vehicles", {"text": "over 150", "qualifier": "more-than", "min": 151, "max": None})]
    assert (convoy.attributions, convoy.speaker, convoy.speaker_role) == (["Channel 4"], "Channel 4", "British broadcaster")
    # "The outlet" is Channel 4
    assert (outlet.attributions, outlet.speaker) == (["Channel 4"], "Channel 4")
    # an official's statement names no equipment but is kept, with speaker and role, not observable
    for c in (peskov, confirmed):
        assert (c.attributions, c.speaker, c.speaker_role) == (["Dmitry Peskov"], "Dmitry Peskov", "Kremlin spokesman")
        assert not c.observable and c.equipment == []
    assert peskov.dates[0]["date"] == "2024-12-16"
    # the quote's attribution carries to its following sentences
    assert [c.attributions for c in (empty, two, rest)] == [["Maxar"], ["Maxar"], ["Maxar"]]
    assert two.equipment[0]["type_id"] == "il-76md" and two.equipment[0]["count"]["min"] == 2
    checks = check_claims([peskov, confirmed], [make_pass(1, 17, [det("aircraft", 0, 0)])], [])
    assert [ch.verdict for ch in checks] == ["not-observable", "not-observable"]
    assert checks[0].reason == "A statement by Dmitry Peskov (Kremlin spokesman): not observable in imagery."


def test_round_trip_keeps_speaker():
    c = claims_of(NEWS)[2]
    d = c.to_dict()
    assert Claim.from_dict(d).to_dict() == d and d["speaker_role"] == "Kremlin spokesman"


def test_back_references_without_a_source_stay_as_written():
    [c] = claims_of("He said two Su-24 bombers left Hmeimim on Friday.")
    assert c.attributions == ["He"] and c.speaker is None


def test_a_quote_does_not_lend_its_source_to_unquoted_text():
    first, after = claims_of('"Two Su-24 left Hmeimim," Maxar said. Three Ka-52 arrived at Hmeimim on Friday.')
    assert first.attributions == ["Maxar"] and after.attributions == []
