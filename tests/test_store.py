"""Store: round trips, rescans, migrations, PostGIS queries and one-line errors (SQLite + PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
import shapely
from shapely.geometry import box
from sqlalchemy import MetaData, Table, text
from sqlalchemy.engine import make_url

from ci_support import missing
from sitewatch.errors import StoreError
from sitewatch.store import (
    SCHEMA_VERSION,
    detection_from_feature,
    detection_to_feature,
    migrations,
    open_store,
    pass_from_feature_collection,
    pass_to_feature_collection,
)
from sitewatch.store import schema as sc
from sitewatch.store.store import make_engine
from sitewatch.types import Candidate, Detection, Measurement, OrientedBox, Pass

PG_URL = os.environ.get("SITEWATCH_TEST_PG_URL")


@pytest.fixture(scope="module")
def pg_database() -> str:
    """A private PostGIS database on the test server (dropped afterwards), so no other tests interfere."""
    if not PG_URL:
        missing("SITEWATCH_TEST_PG_URL not set: no PostgreSQL/PostGIS server to test against")
    name = f"sw_store_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh, empty store URL: a SQLite file, or the private PostGIS database emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url = request.getfixturevalue("pg_database")
    eng = make_engine(url)
    with eng.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alert_deliveries, alerts, watch_items, watch_sources, claims, documents, detections, passes, schema_version CASCADE"))
    eng.dispose()
    return url


def _detection(i: int, lon0: float = 35.94, lat0: float = 35.40, *, identified: bool = True) -> Detection:
    d = 0.0002
    fp = ((lon0 + i * d, lat0), (lon0 + i * d + d / 2, lat0), (lon0 + i * d + d / 2, lat0 + d / 3), (lon0 + i * d, lat0 + d / 3))
    return Detection(
        box=OrientedBox(100.5 + 40 * i, 220.25, 44.123456789, 30.5, 17.25),
        category="aircraft" if i % 2 == 0 else "helicopter",
        score=0.8123456789,
        footprint=fp,
        measurement=Measurement(22.06, 15.25, 0.8, 0.6, 12.5, 2.0, 0.5) if identified else None,
        candidates=(Candidate("su-24", "Su-24 Fencer", "strike", 0.61), Candidate("unknown", "unknown", "unknown", 0.2))
        if identified
        else (),
    )


def _pass(scene: str = "a.tif", n: int = 3, acquired: datetime | None = None, site: str = "hmeimim") -> Pass:
    return Pass(
        site=site,
        scene_path=scene,
        acquired=acquired or datetime(2024, 3, 1, 8, 30, tzinfo=UTC),
        footprint_wkt="POLYGON ((35.9 35.38, 35.99 35.38, 35.99 35.43, 35.9 35.43, 35.9 35.38))",
        aoi_coverage=0.75,
        gsd_m=0.5,
        model="sitewatch-det 0.1.0",
        crs="EPSG:32636",
        transform=(0.5, 0.0, 268000.0, 0.0, -0.5, 3921000.0),
        simulated=True,
        metadata={"platform": "SIMULATED", "off_nadir_deg": 12.5},
        detections=[_detection(i, identified=i != 1) for i in range(n)],
    )


def _same_detection(a: Detection, b: Detection) -> None:
    assert a.box == b.box and a.category == b.category and a.score == b.score
    assert a.measurement == b.measurement and a.candidates == b.candidates
    assert a.footprint == b.footprint  # exact: WKT/WKB keep full double precision


def test_pass_round_trips_through_row_and_geojson(store_url: str) -> None:
    original = _pass()
    with open_store(store_url) as store:
        pid = store.save_pass(original)
        assert original.id == pid
        got = store.get_pass(pid)
    for field in ("site", "scene_path", "acquired", "aoi_coverage", "gsd_m", "model", "crs", "transform", "simulated", "metadata"):
        assert getattr(got, field) == getattr(original, field), field
    assert shapely.from_wkt(got.footprint_wkt).equals(shapely.from_wkt(original.footprint_wkt))
    assert got.acquired.tzinfo is not None and got.created is not None
    assert len(got.detections) == 3 and all(d.id is not None for d in got.detections)
    for a, b in zip(original.detections, got.detections, strict=True):
        _same_detection(a, b)
    # row -> GeoJSON -> value objects
    fc = pass_to_feature_collection(got)
    assert fc["features"][0]["geometry"]["type"] == "Polygon"
    assert fc["features"][0]["properties"]["best_type"] == "su-24"
    back = pass_from_feature_collection(fc)
    assert back.id == pid and back.acquired == got.acquired and back.transform == got.transform
    for a, b in zip(got.detections, back.detections, strict=True):
        _same_detection(a, b)
        assert a.id == b.id
    assert detection_from_feature(detection_to_feature(got.detections[1])) == got.detections[1]


def test_rescan_replaces_and_passes_are_ordered(store_url: str) -> None:
    t0 = datetime(2024, 3, 1, 8, 30, tzinfo=UTC)
    with open_store(store_url) as store:
        late = store.save_pass(_pass("b.tif", n=1, acquired=t0 + timedelta(days=3)))
        first = store.save_pass(_pass("a.tif", n=3, acquired=t0.astimezone(timezone(timedelta(hours=3)))))
        store.save_pass(_pass("other.tif", n=2, site="tartus"))
        again = store.save_pass(_pass("a.tif", n=2, acquired=t0))
        assert again != first
        passes = store.list_passes("hmeimim")
        assert [p.scene_path for p in passes] == ["a.tif", "b.tif"]
        assert [len(p.detections) for p in passes] == [2, 1]
        assert passes[0].acquired == t0 and passes[1].id == late
        assert store.sites() == ["hmeimim", "tartus"]
        with pytest.raises(StoreError, match=f"no pass with id {first}"):
            store.get_pass(first)
        store.delete_pass(late)
        assert [p.scene_path for p in store.list_passes("hmeimim")] == ["a.tif"]
        with pytest.raises(StoreError, match="no pass"):
            store.delete_pass(late)
        with store.engine.connect() as conn:
            n_det = conn.execute(text("SELECT count(*) FROM detections")).scalar_one()
        assert n_det == 4  # 2 (a.tif) + 2 (tartus): replaced and deleted passes left no detections


def test_change_mark_moves_on_every_commit_by_anyone(store_url: str) -> None:
    with open_store(store_url) as store:
        if store.dialect != "sqlite":
            assert store.change_mark() is None  # PostgreSQL: no cheap mark, callers look things up
            return
    with open_store(store_url) as store, open_store(store_url) as other:
        m0 = store.change_mark()
        assert m0 is not None and store.change_mark() == m0
        pid = other.save_pass(_pass(n=2))  # another connection (as another process would)
        m1 = store.change_mark()
        assert m1 != m0
        store.get_pass(pid)
        store.list_passes("hmeimim")
        assert store.change_mark() == m1  # reads change nothing
        store.save_pass(_pass("b.tif", n=1))  # this store's own writes count too
        m2 = store.change_mark()
        assert m2 not in (m0, m1)
        other.delete_pass(pid)
        assert store.change_mark() != m2
        store.close()
        assert store.change_mark() is not None and store.change_mark()[0] != m2[0]  # new connection, new serial


def test_detections_in_area(store_url: str) -> None:
    with open_store(store_url) as store:
        pid = store.save_pass(_pass(n=4))
        store.save_pass(_pass("far.tif", n=2, site="tartus"))
        # a zone covering only detections 1 and 2 of hmeimim (each 0.0001 deg wide, 0.0002 apart)
        zone = box(35.94015, 35.4, 35.94045, 35.4001)
        hits = store.detections_in(zone, site="hmeimim")
        assert [(p, d.box.cx) for p, d in hits] == [(pid, 140.5), (pid, 180.5)]
        assert [d.category for _, d in store.detections_in(zone, site="hmeimim", category="aircraft")] == ["aircraft"]
        assert len(store.detections_in(zone)) == 3  # + detection 1 of the 2-detection tartus pass
        assert store.detections_in(box(0, 0, 1, 1)) == []
        if store.dialect == "postgresql":
            with store.engine.connect() as conn:
                kind, srid = conn.execute(
                    text("SELECT GeometryType(footprint), ST_SRID(footprint) FROM detections LIMIT 1")
                ).one()
                assert (kind, srid) == ("POLYGON", 4326)
                n = conn.execute(
                    text("SELECT count(*) FROM detections WHERE ST_Intersects(footprint, ST_GeomFromText(:w, 4326))"),
                    {"w": zone.wkt},
                ).scalar_one()
                assert n == 3


def test_documents_and_claims(store_url: str) -> None:
    with open_store(store_url) as store:
        doc = store.add_document("ministry", "Ten Su-24 arrived at Hmeimim.", datetime(2024, 3, 2, tzinfo=UTC), None, "Statement")
        other = store.add_document("blog", "Nothing happened at Tartus.", None)
        store.save_claims(doc, [{"site": "hmeimim", "category": "aircraft", "count": 10, "when": datetime(2024, 3, 2, tzinfo=UTC)}])
        store.save_claims(other, [{"site": "tartus", "count": 0}])
        store.save_claims(doc, [{"site": "hmeimim", "category": "aircraft", "count": 12}])  # re-ingest replaces
        claims = store.list_claims("hmeimim")
        assert [(c["count"], c["document_id"], c["site"]) for c in claims] == [(12, doc, "hmeimim")]
        assert len(store.list_claims()) == 2
        docs = store.list_documents()
        assert [d["title"] for d in docs] == ["Statement", None]
        assert docs[0]["published"] == datetime(2024, 3, 2, tzinfo=UTC)
        with pytest.raises(StoreError, match="no document with id 999"):
            store.save_claims(999, [{"count": 1}])


def test_documents_are_identified_by_content_hash(store_url: str) -> None:
    text_a = "Ten Su-24 arrived at Hmeimim.\nTwo left."
    with open_store(store_url) as store:
        first, new = store.add_document_once("Ministry", text_a)
        assert new
        # the same text re-wrapped, from the same source spelled differently: the stored document
        assert store.add_document_once(" ministry ", "Ten Su-24 arrived   at Hmeimim. Two left.") == (first, False)
        other, new_other = store.add_document_once("Blog", text_a)  # another source keeps its own document
        assert new_other and other != first
        docs = store.list_documents()
        assert [d["id"] for d in docs] == [first, other]
        assert docs[0]["content_hash"] == docs[1]["content_hash"] == sc.content_hash("Ten Su-24 arrived at Hmeimim. Two left.")
        assert len(docs[0]["content_hash"]) == 64


def test_upgrade_from_v3_hashes_stored_documents(store_url: str) -> None:
    engine = make_engine(store_url)
    assert migrations.upgrade(engine, target=3) == 3
    docs = sc.documents_table(MetaData(), version=3)
    with engine.begin() as conn:
        conn.execute(docs.insert().values(source="wire", text="Two Il-76 left.", created=datetime.now(UTC)))
    engine.dispose()
    with open_store(store_url) as store:
        [doc] = store.list_documents()
        assert doc["content_hash"] == sc.content_hash("Two Il-76 left.")
        assert store.add_document_once("wire", "Two Il-76 left.") == (doc["id"], False)


def test_upgrade_from_v1_keeps_data(store_url: str) -> None:
    engine = make_engine(store_url)
    assert migrations.upgrade(engine, target=1) == 1
    md = MetaData()
    passes = sc.passes_table(md, engine.dialect.name, version=1)
    dets = Table("detections", md, *sc.detection_columns(engine.dialect.name, version=1))
    wkt = "POLYGON ((35.9 35.4, 35.91 35.4, 35.91 35.41, 35.9 35.4))"
    geom = wkt
    if engine.dialect.name == "postgresql":
        from geoalchemy2 import WKTElement

        geom = WKTElement(wkt, srid=4326)
    with engine.begin() as conn:
        pid = conn.execute(
            passes.insert()
            .values(site="hmeimim", scene_path="old.tif", model="m 0", simulated=False, created=datetime.now(UTC), footprint=geom)
            .returning(passes.c.id)
        ).scalar_one()
        conn.execute(
            dets.insert(),
            [
                {"pass_id": pid, "category": "aircraft", "score": 0.9, "cx": 1, "cy": 2, "length_px": 40, "width_px": 30,
                 "heading_px_deg": 10, "candidates": [{"type_id": "il-76", "name": "Il-76", "role": "transport", "probability": 0.7}]},
                {"pass_id": pid, "category": "ship", "score": 0.5, "cx": 5, "cy": 6, "length_px": 20, "width_px": 5,
                 "heading_px_deg": 0, "candidates": []},
            ],
        )
    engine.dispose()
    with open_store(store_url) as store:
        with store.engine.connect() as conn:
            assert migrations.current_version(conn) == SCHEMA_VERSION
            rows = conn.execute(text("SELECT best_type, role FROM detections ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [("il-76", "transport"), (None, None)]
        (p,) = store.list_passes("hmeimim")
        assert [d.best_type.type_id if d.best_type else None for d in p.detections] == ["il-76", None]
        store.add_document("x", "y")  # v2 tables exist
    with open_store(store_url) as store:  # idempotent re-open
        assert len(store.list_passes("hmeimim")) == 1


def test_observed_area_and_scene_hash_round_trip_and_identify_rescans(store_url: str) -> None:
    p = _pass("/data/a.tif")
    p.observed_wkt = box(35.9, 35.38, 35.95, 35.43).wkt
    p.observed_coverage, p.zone_coverage, p.scene_hash = 0.5, {"apron-west": 0.25}, "sha256:" + "ab" * 32
    with open_store(store_url) as store:
        got = store.get_pass(store.save_pass(p))
        assert got.observed_coverage == 0.5 and got.zone_coverage == {"apron-west": 0.25} and got.scene_hash == p.scene_hash
        assert shapely.from_wkt(got.observed_wkt).equals(box(35.9, 35.38, 35.95, 35.43))
        assert got.seen_coverage == 0.5 and got.aoi_coverage == 0.75
        # the same bytes under another name: a rescan, replacing the pass
        copy = _pass("/data/copy-of-a.tif", n=1)
        copy.scene_hash = p.scene_hash
        store.save_pass(copy)
        (only,) = store.list_passes("hmeimim")
        assert only.scene_path == "/data/copy-of-a.tif" and len(only.detections) == 1
        other = _pass("/data/b.tif")
        other.scene_hash = "sha256:" + "cd" * 32
        store.save_pass(other)
        assert len(store.list_passes("hmeimim")) == 2


def test_upgrade_from_v5_leaves_observed_unknown(store_url: str) -> None:
    engine = make_engine(store_url)
    assert migrations.upgrade(engine, target=5) == 5
    passes = sc.passes_table(MetaData(), engine.dialect.name, version=5)
    with engine.begin() as conn:
        conn.execute(passes.insert().values(site="hmeimim", scene_path="old.tif", model="m 0", simulated=False,
                                            aoi_coverage=0.8, created=datetime.now(UTC)))  # fmt: skip
    engine.dispose()
    with open_store(store_url) as store:
        (p,) = store.list_passes("hmeimim")
        assert p.observed_coverage is None and p.observed_wkt is None and p.scene_hash is None and p.zone_coverage == {}
        assert p.seen_coverage == 0.8  # the outline coverage, as before


def test_newer_schema_is_refused(store_url: str) -> None:
    open_store(store_url).close()
    eng = make_engine(store_url)
    with eng.begin() as conn:
        conn.execute(text("INSERT INTO schema_version (version, applied) VALUES (99, '2030-01-01')"))
    eng.dispose()
    with pytest.raises(StoreError, match="schema v99, newer than this sitewatch") as e:
        open_store(store_url)
    assert "\n" not in str(e.value)


def test_unreachable_and_bad_urls_are_one_line() -> None:
    for url, pattern in [
        ("postgresql://nobody@127.0.0.1:1/none", "cannot open: .*127.0.0.1"),
        ("sqlite:////nonexistent-dir/x/store.db", "folder /nonexistent-dir/x does not exist"),
        ("not a url", "bad store URL"),
        ("mysql://u@h/db", "unsupported store URL"),
    ]:
        with pytest.raises(StoreError, match=pattern) as e:
            open_store(url)
        assert "\n" not in str(e.value)


def _count(url: str) -> tuple[int, int]:
    eng = make_engine(url)
    with eng.connect() as conn:
        n = (conn.execute(text("SELECT count(*) FROM passes")).scalar_one(), conn.execute(text("SELECT count(*) FROM detections")).scalar_one())
    eng.dispose()
    return n


def _read_only(url: str) -> str:
    """The same store opened read-only: SQLite's ``mode=ro``, PostgreSQL's read-only transactions."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return f"sqlite:///file:{u.database}?mode=ro&uri=true"
    return u.update_query_dict({"options": "-c default_transaction_read_only=on"}).render_as_string(hide_password=False)


def test_read_only_store_is_refused_and_unchanged(store_url: str) -> None:
    with open_store(store_url) as store:
        store.save_pass(_pass("a.tif", n=3))
    with open_store(_read_only(store_url)) as store:
        assert len(store.list_passes("hmeimim")[0].detections) == 3  # reading works
        with pytest.raises(StoreError, match="read-only") as e:
            store.save_pass(_pass("a.tif", n=1))
        assert "\n" not in str(e.value)
    assert _count(store_url) == (1, 3)


def test_full_disk_is_refused_and_unchanged(tmp_path) -> None:
    """SQLite only: a PostgreSQL server's disk cannot be filled from a test without root on the server."""
    path = tmp_path / "full.db"
    url = f"sqlite:///{path}"
    with open_store(url) as store:
        store.save_pass(_pass("a.tif", n=3))
        with store.engine.connect() as conn:
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()

    from sqlalchemy import event

    store = open_store(url)

    @event.listens_for(store.engine, "connect")
    def _cap(dbapi_conn, _rec) -> None:  # the file may not grow: SQLite reports a full disk
        dbapi_conn.execute(f"PRAGMA max_page_count={pages}")

    store.engine.dispose()
    big = _pass("b.tif", n=1)
    big.metadata = {"blob": "x" * 200_000}
    with pytest.raises(StoreError, match="full") as e:
        store.save_pass(big)
    assert "\n" not in str(e.value)
    store.close()
    assert _count(url) == (1, 3)
