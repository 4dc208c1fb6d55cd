"""`mge import ...` and `mge export`: the acceptance checks, through the database, on SQLite and
PostgreSQL.

1. The published reference summary, imported and exported again, gives the same values and
   edges (counts, contexts in order, wiserLikelihood and entropy to 1e-12).
2. A synthetic dump exported as a summary up to T equals the statistics computed directly from
   its votes up to T; importing it twice duplicates nothing; a malformed dump gives one line
   naming file and row, exit 1, and writes nothing.
3. Every format, read back by its reader.
4. A deleted participant no longer counts in the next export.
5. No export holds panel ids, tokens, emails or comments without consent to publish.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import networkx as nx
import pandas as pd
import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from db import queries
from db.engine import make_engine
from db.models import Participant
from elicit.cli import app
from graph.formats import parse_mge_dump, to_mge_summary
from graph.stats import edge_statistics
from tests.conftest import shared_data
from tests.graph_seed import deliberation_id, seed_native, write_dump

runner = CliRunner()
FORMATS = ("mge-summary", "json", "graphml", "gexf", "csv", "html", "preferences", "rubrics")


def mge(*args: str, url: str) -> object:
    return runner.invoke(app, [*args, "--database-url", url])


def _export(url: str, slug: str, fmt: str, out: Path, *extra: str) -> list[Path]:
    result = mge("export", "--deliberation", slug, "--format", fmt, "-o", str(out), *extra, url=url)
    assert result.exit_code == 0, result.output
    return [Path(line.removeprefix("wrote ")) for line in result.output.splitlines()]


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-12


def test_reference_summary_round_trip_through_the_database(db_url, tmp_path):
    source = shared_data("reference-graph-summary.json")
    for _ in range(2):  # the second import adds nothing and changes nothing
        result = mge("import", "mge-summary", str(source), "--deliberation", "ref", url=db_url)
        assert result.exit_code == 0, result.output
    assert "0 values, 0 contexts, 0 participants, 0 votes" in result.output
    out = tmp_path / "summary.json"
    _export(db_url, "ref", "mge-summary", out)
    want = json.loads(source.read_text(encoding="utf-8"))
    got = json.loads(out.read_text(encoding="utf-8"))

    def key(v: dict) -> str:
        return json.dumps(v, sort_keys=True)

    assert sorted(map(key, got["values"])) == sorted(map(key, want["values"]))
    assert [(e["sourceValueId"], e["wiserValueId"]) for e in got["edges"]] == [
        (e["sourceValueId"], e["wiserValueId"]) for e in want["edges"]
    ]
    for g, w in zip(got["edges"], want["edges"], strict=True):
        assert g["counts"] == w["counts"]
        assert g["contexts"] == w["contexts"]
        for field in ("wiserLikelihood", "entropy"):
            assert _close(g["summary"][field], w["summary"][field]), (g, w)


def test_dump_until_t_equals_direct_statistics_and_imports_once(db_url, tmp_path):
    edges = write_dump(tmp_path / "dump", n_users=24, seed=3)
    for _ in range(2):
        result = mge("import", "mge-dump", str(tmp_path / "dump"), "-d", "dump", url=db_url)
        assert result.exit_code == 0, result.output
    assert "0 values, 0 contexts, 0 participants, 0 votes, 0 stories, 0 cards" in result.output
    engine = make_engine(db_url)
    with Session(engine) as s:
        did = queries.get_deliberation(s, slug="dump").id
        counts = queries.count_import_rows(s, deliberation_id=did)
    engine.dispose()
    assert counts["votes"] == len(edges) and counts["values"] == 5
    assert counts["participants"] == len({e["userId"] for e in edges})

    dump = parse_mge_dump(tmp_path / "dump")
    for cut_row in (len(edges) // 3, len(edges) - 1):
        cut = edges[cut_row]["createdAt"]
        out = tmp_path / f"until-{cut_row}.json"
        _export(db_url, "dump", "mge-summary", out, "--until", cut)
        when = datetime.fromisoformat(cut)
        direct = to_mge_summary(
            dump.values,
            edge_statistics([v for v in dump.votes if v.created_at <= when]),
        )
        got = json.loads(out.read_text(encoding="utf-8"))
        assert got == json.loads(json.dumps(direct))
    assert got["edges"], "the synthetic dump should keep some edges"


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("json", "error: edge.json: malformed JSON at line"),
        ("utf8", "error: edge.json: not valid UTF-8 (byte 0xff"),
        ("relationship", "error: edge.json row 4: relationship 'sideways' is not one of"),
    ],
)
def test_malformed_dump_is_one_line_and_writes_nothing(db_url, tmp_path, breakage, message):
    write_dump(tmp_path / "dump")
    edge = tmp_path / "dump" / "edge.json"
    if breakage == "json":
        edge.write_text(edge.read_text().replace('"userId"', "userId", 1))
    elif breakage == "utf8":
        edge.write_bytes(edge.read_bytes().replace(b"because", b"bec\xffause", 1))
    else:
        rows = json.loads(edge.read_text())
        rows[4]["relationship"] = "sideways"
        edge.write_text(json.dumps(rows))
    result = mge("import", "mge-dump", str(tmp_path / "dump"), "-d", "broken", url=db_url)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.output
    assert "Traceback" not in result.output
    engine = make_engine(db_url)
    assert deliberation_id(engine, "broken") is None
    engine.dispose()


def test_every_format_reads_back(db_url, tmp_path):
    engine = make_engine(db_url)
    n = seed_native(engine)
    engine.dispose()
    ids = {v.id for v in n.values}

    summary = json.loads(_export(db_url, n.slug, "mge-summary", tmp_path / "s.json")[0].read_text())
    assert summary["edges"] and {v["id"] for v in summary["values"]} <= ids

    native = json.loads(_export(db_url, n.slug, "json", tmp_path / "g.json")[0].read_text())
    assert native["schema"] == "mge-graph" and native["contexts"]
    assert native["filters"]["min_wiser"] == 2 and native["bootstrap"]["replicates"] == 200

    for fmt, reader in (("graphml", nx.read_graphml), ("gexf", nx.read_gexf)):
        (path,) = _export(db_url, n.slug, fmt, tmp_path / f"g.{fmt}")
        g = reader(path, node_type=int)
        assert set(g.nodes) == ids and g.number_of_edges() == len(summary["edges"])
        assert g.nodes[n.values[0].id]["title"] == "Native value 0"

    paths = _export(db_url, n.slug, "csv", tmp_path / "csv")
    assert sorted(p.name for p in paths) == ["edges.csv", "values.csv"]
    values = pd.read_csv(tmp_path / "csv" / "values.csv")
    edges = pd.read_csv(tmp_path / "csv" / "edges.csv")
    assert set(values["id"]) == ids and set(edges["context"]) == set(n.contexts)

    (html,) = _export(db_url, n.slug, "html", tmp_path / "g.html")
    page = html.read_text()
    assert page.lstrip().lower().startswith("<html") and "Native value 0" in page

    for fmt in ("preferences", "rubrics"):
        out = tmp_path / fmt / "data.jsonl"
        paths = _export(db_url, n.slug, fmt, out)
        assert paths == [out, out.parent / "README.md"]
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert rows and all(
            r["prompt"] == "My teenager lies to me, what should I do?" for r in rows
        )
        assert (out.parent / "README.md").read_text().startswith("---\n")


def test_deleted_participant_no_longer_counts(db_url, tmp_path):
    engine = make_engine(db_url)
    n = seed_native(engine)
    before = json.loads(
        _export(db_url, n.slug, "json", tmp_path / "a.json", "--bootstrap", "0")[0].read_text()
    )
    with Session(engine) as s:
        p = s.get(Participant, n.participants[2].id)
        p.deleted_at = datetime.now(UTC)
        s.add(p)
        s.commit()
    engine.dispose()
    after = json.loads(
        _export(db_url, n.slug, "json", tmp_path / "b.json", "--bootstrap", "0")[0].read_text()
    )
    assert after["provenance"]["votes"] == before["provenance"]["votes"] - 3
    assert after["provenance"]["participants"] == before["provenance"]["participants"] - 1
    impressions = [e["counts"]["impressions"] for e in after["pooled"]["edges"]]
    assert (
        sum(impressions) == sum(e["counts"]["impressions"] for e in before["pooled"]["edges"]) - 6
    )


def test_exports_hold_no_personal_data(db_url, tmp_path):
    engine = make_engine(db_url)
    n = seed_native(engine)
    engine.dispose()
    written: list[Path] = []
    for fmt in FORMATS:
        target = tmp_path / fmt / ("out" if fmt == "csv" else "out.file")
        written += _export(db_url, n.slug, fmt, target)
    assert len(written) == 11
    for path in written:
        data = path.read_bytes()
        for secret in n.secrets:
            assert secret.encode() not in data, (path.name, secret)
        for p in n.participants:
            assert f'"participant": "{p.id}"'.encode() not in data
    native = json.loads((tmp_path / "json" / "out.file").read_text())
    assert [c["text"] for c in native["comments"]] == ["a reason I agreed to publish"] * 3


def test_export_errors_are_one_line(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    seed_native(engine)
    engine.dispose()
    (tmp_path / "file").write_text("x")
    cases = [
        (["-d", "nope", "-f", "json", "-o", str(tmp_path / "x")], "no deliberation 'nope'"),
        (["-d", "native", "-f", "json", "-o", "x", "--until", "soon"], "not an ISO 8601"),
        (["-d", "native", "-f", "csv", "-o", str(tmp_path / "file")], "csv writes a folder"),
        (["-d", "native", "-f", "json", "-o", "x", "--context", "When never"], "no context"),
        (["-d", "native", "-f", "json", "-o", "x", "--question", "999"], "no question 999"),
    ]
    for args, message in cases:
        result = mge("export", *args, url=sqlite_url)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1
    result = mge("export", "-d", "native", "-f", "pdf", "-o", "x", url=sqlite_url)
    assert result.exit_code == 2  # refused by the option's choices


def test_import_with_a_bad_slug_is_one_line(sqlite_url, tmp_path):
    write_dump(tmp_path / "dump")
    result = mge("import", "mge-dump", str(tmp_path / "dump"), "-d", "Not A Slug", url=sqlite_url)
    assert result.exit_code == 1 and "slug" in result.output
    assert len(result.output.strip().splitlines()) == 1
