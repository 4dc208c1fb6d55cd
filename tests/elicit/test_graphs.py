"""The graph glue: what the engine reads from the database, the analysis, every export.

Behaviours:
- votes come in creation order as graph Votes (participant as str, question derived, aware
  times); filters until / question / context; deleted participants and archived values left out;
  the DataFrame fast path holds the same votes.
- values: contributors are distinct non-deleted participants with submitted cards; imported
  values carry their reference timestamps; groups hold demographics and entry channel.
- a dump exported as a summary up to T equals the statistics computed directly from its votes
  up to T; imported values keep their reference ids in exports; colliding ids are refused.
- comments appear only in the native JSON and only with consent to publish.
- deleting a participant changes the next export.
- console tables, node details, bridging and minority report, downloads (zip for multi-file).
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from db import queries
from db.models import CanonicalValue, Participant
from elicit import graphs, participants
from elicit.imports import import_mge_dump
from graph.formats import parse_mge_dump, to_mge_summary
from graph.stats import edge_statistics, vote_table
from graph.types import GraphError, Vote
from tests.graph_seed import (
    PUBLIC_COMMENT,
    SECRET_COMMENT,
    seed_native,
    write_dump,
)


def _inputs(engine, did, **filters):
    with Session(engine) as s:
        return graphs.load_graph_inputs(s, deliberation_id=did, **filters)


def test_votes_come_as_graph_votes_in_creation_order(engine):
    n = seed_native(engine)
    inputs = _inputs(engine, n.deliberation_id)
    assert len(inputs.votes) == 6 * 3
    times = [v.created_at for v in inputs.votes]
    assert times == sorted(times) and all(t.tzinfo is not None for t in times)
    first = inputs.votes[0]
    assert first.participant == str(n.participants[0].id)
    assert first.question_id == n.question_id
    assert first.context == n.contexts[0]
    assert {v.from_id for v in inputs.votes} <= {v.id for v in n.values}


def test_filters_until_question_and_context(engine):
    n = seed_native(engine)
    everything = _inputs(engine, n.deliberation_id)
    cut = everything.votes[4].created_at
    assert len(_inputs(engine, n.deliberation_id, until=cut).votes) == 5
    assert len(_inputs(engine, n.deliberation_id, context=n.contexts[1]).votes) == 6
    assert len(_inputs(engine, n.deliberation_id, question_id=n.question_id).votes) == 18
    with Session(engine) as s:
        other = queries.create_question(
            s, deliberation_id=n.deliberation_id, title="Other", text="Other?"
        )
    assert _inputs(engine, n.deliberation_id, question_id=other.id).votes == []
    with Session(engine) as s:
        by_text = queries.list_graph_votes(
            s, deliberation_id=n.deliberation_id, context=f"  {n.contexts[1]} "
        )
        unknown = queries.list_graph_votes(
            s, deliberation_id=n.deliberation_id, context="When nothing"
        )
    assert len(by_text) == 6 and {v.context for v in by_text} == {n.contexts[1]}
    assert unknown == []
    with pytest.raises(queries.NotFound, match="no context"):
        _inputs(engine, n.deliberation_id, context="When nothing")
    with pytest.raises(queries.NotFound):
        _inputs(engine, n.deliberation_id, question_id=987654)


def test_deleted_participants_and_archived_values_are_left_out(engine):
    n = seed_native(engine)
    with Session(engine) as s:
        p = s.get(Participant, n.participants[1].id)
        p.deleted_at = datetime.now(UTC)
        s.add(p)
        v = s.get(CanonicalValue, n.values[2].id)
        v.archived = True
        s.add(v)
        s.commit()
    inputs = _inputs(engine, n.deliberation_id)
    assert str(n.participants[1].id) not in {v.participant for v in inputs.votes}
    assert n.values[2].id not in {x for v in inputs.votes for x in (v.from_id, v.to_id)}
    assert len(inputs.votes) == 5 * 2
    assert n.values[2].id not in {v.id for v in inputs.values}
    assert str(n.participants[1].id) not in inputs.groups
    # Value 1 had the cards of participants 1 and 5; only 5 is left.
    contributors = {v.id: v.contributors for v in inputs.values}
    assert contributors[n.values[1].id] == 1 and contributors[n.values[0].id] == 2


def test_frame_fast_path_equals_the_votes(engine):
    n = seed_native(engine)
    with Session(engine) as s:
        votes = [Vote(*v) for v in queries.list_graph_votes(s, deliberation_id=n.deliberation_id)]
        frame = queries.read_graph_vote_frame(s, deliberation_id=n.deliberation_id)
    assert edge_statistics(frame) == edge_statistics(votes)
    assert len(vote_table(frame)) == len(votes)
    with Session(engine) as s:
        empty = queries.read_graph_vote_frame(
            s, deliberation_id=n.deliberation_id, until=datetime(2000, 1, 1, tzinfo=UTC)
        )
    assert len(empty) == 0 and edge_statistics(empty) == []


def test_groups_hold_demographics_and_entry_channel(engine):
    n = seed_native(engine)
    inputs = _inputs(engine, n.deliberation_id)
    group = inputs.groups[str(n.participants[1].id)]
    assert group["party"] == "D" and group["entry_channel"] == "anonymous"
    assert graphs.group_fields(inputs) == ["email", "entry_channel", "party"]


def test_dump_summary_up_to_t_equals_direct_statistics(engine, tmp_path):
    edges = write_dump(tmp_path / "dump", n_users=20)
    result = import_mge_dump(engine, tmp_path / "dump", slug="dump")
    cut = datetime.fromisoformat(edges[len(edges) * 2 // 3]["createdAt"])
    dump = parse_mge_dump(tmp_path / "dump")
    direct = to_mge_summary(
        dump.values, edge_statistics([v for v in dump.votes if v.created_at <= cut])
    )
    with Session(engine) as s:
        files = graphs.render_export(
            s, deliberation_id=result.deliberation_id, fmt="mge-summary", until=cut
        )
    exported = json.loads(files[0].text)
    assert exported == json.loads(json.dumps(direct))
    assert exported["edges"], "the test data should keep some edges"


def test_imported_values_export_with_reference_ids_and_times(engine, tmp_path):
    write_dump(tmp_path / "dump")
    result = import_mge_dump(engine, tmp_path / "dump", slug="dump")
    with Session(engine) as s:
        doc = json.loads(
            graphs.render_export(
                s, deliberation_id=result.deliberation_id, fmt="json", n_bootstrap=5
            )[0].text
        )
    assert [v["id"] for v in doc["values"]] == [101, 102, 103, 104, 105]
    assert doc["values"][0]["created_at"].startswith("2023-09-")
    assert doc["values"][0]["contributors"] == 2  # cards 500 and 505 (users 1000, 1005)


def test_colliding_public_ids_are_refused(engine, tmp_path):
    write_dump(tmp_path / "dump")
    result = import_mge_dump(engine, tmp_path / "dump", slug="dump")
    with Session(engine) as s:
        own = queries.create_canonical_value(
            s, deliberation_id=result.deliberation_id, title="Ours"
        )
        # Make an imported value's reference id equal our id of another value.
        row = s.exec(select(CanonicalValue).where(CanonicalValue.ref_id == 101)).one()
        row.ref_id = own.id
        s.add(row)
        s.commit()
        with pytest.raises(GraphError, match="would both be exported as id"):
            graphs.render_export(s, deliberation_id=result.deliberation_id, fmt="csv")


def test_comments_only_with_consent_and_only_in_native_json(engine):
    n = seed_native(engine)
    texts = {}
    with Session(engine) as s:
        for fmt in graphs.FORMATS:
            files = graphs.render_export(
                s, deliberation_id=n.deliberation_id, fmt=fmt, n_bootstrap=3
            )
            texts[fmt] = "".join(f.text for f in files)
    doc = json.loads(texts["json"])
    assert {c["text"] for c in doc["comments"]} == {PUBLIC_COMMENT}
    assert all(
        set(c) == {"source_id", "wiser_id", "context", "choice", "text"} for c in doc["comments"]
    )
    for fmt, text in texts.items():
        assert SECRET_COMMENT not in text, fmt
        if fmt != "json":
            assert PUBLIC_COMMENT not in text, fmt


def test_deleting_a_participant_changes_the_next_export(engine):
    n = seed_native(engine)

    def counts():
        with Session(engine) as s:
            doc = json.loads(
                graphs.render_export(
                    s, deliberation_id=n.deliberation_id, fmt="json", n_bootstrap=0
                )[0].text
            )
        return doc["provenance"]["votes"], {
            (e["source_id"], e["wiser_id"]): e["counts"]["impressions"]
            for e in doc["pooled"]["edges"]
        }

    votes, before = counts()
    participants.delete_participant(engine, participant_id=n.participants[3].id)
    votes_after, after = counts()
    assert votes_after == votes - 3
    key = (n.values[0].id, n.values[1].id)
    assert after[key] == before[key] - 2


def test_compute_min_wiser_changes_what_is_kept(engine):
    n = seed_native(engine, voters=3)
    inputs = _inputs(engine, n.deliberation_id)
    strict = graphs.compute(inputs, min_wiser=50, n_bootstrap=0)
    loose = graphs.compute(inputs, min_wiser=1, n_bootstrap=0)
    assert not any(e.kept for e in strict.pooled)
    assert any(e.kept for e in loose.pooled)
    with pytest.raises(GraphError):
        graphs.compute(inputs, min_wiser=-1)


def test_compute_is_reused_until_the_votes_or_arguments_change(engine, monkeypatch):
    n = seed_native(engine, voters=3)
    inputs = _inputs(engine, n.deliberation_id)
    calls = []
    real = graphs.analyse
    monkeypatch.setattr(graphs, "analyse", lambda *a, **k: calls.append(1) or real(*a, **k))
    graphs._analyse.cache_clear()
    first = graphs.compute(inputs, min_wiser=1, n_bootstrap=5)
    assert graphs.compute(_inputs(engine, n.deliberation_id), min_wiser=1, n_bootstrap=5) is first
    assert len(calls) == 1  # a page rerun with the same data: no second bootstrap
    graphs.compute(inputs, min_wiser=2, n_bootstrap=5)
    graphs.compute(inputs, min_wiser=1, n_bootstrap=6)
    assert len(calls) == 3
    fewer = replace(inputs, votes=inputs.votes[:-1])  # e.g. a participant's data deleted
    assert graphs.compute(fewer, min_wiser=1, n_bootstrap=5) is not first
    assert len(calls) == 4


def test_console_tables_and_node_details(engine):
    n = seed_native(engine)
    inputs, analysis = graphs.load_and_compute(
        engine, deliberation_id=n.deliberation_id, n_bootstrap=20
    )
    edges = graphs.edge_table(inputs, analysis)
    assert {(r["context"], r["from_id"], r["wiser_id"]) for r in edges} == {
        (n.contexts[0], n.values[0].id, n.values[1].id),
        (n.contexts[0], n.values[1].id, n.values[2].id),
        (n.contexts[1], n.values[0].id, n.values[1].id),
    }
    assert all(r["ci_low"] <= r["wiser_likelihood"] <= r["ci_high"] for r in edges)
    winners = graphs.winners_table(inputs, analysis)
    assert {w["context"] for w in winners} == set(n.contexts)
    assert all(0.0 <= w["p_stays_winner"] <= 1.0 for w in winners)
    middle = graphs.node_details(inputs, analysis, n.values[1].id)
    assert middle.value.title == "Native value 1" and middle.value.contributors == 2
    assert len(middle.wiser_than) == 2 and len(middle.less_wise_than) == 1
    assert [r["id"] for r in graphs.value_table(inputs, analysis)] == [v.id for v in n.values]
    with pytest.raises(GraphError):
        graphs.node_details(inputs, analysis, 10**9)
    landing = graphs.value_landing(
        engine, deliberation_id=n.deliberation_id, value_id=n.values[2].id
    )
    assert landing is not None and len(landing.wiser_than) == 1
    assert graphs.value_landing(engine, deliberation_id=n.deliberation_id, value_id=10**9) is None


def test_bridging_and_minority_tables(engine):
    n = seed_native(engine)
    inputs = _inputs(engine, n.deliberation_id)
    names, values, edges = graphs.bridging_tables(inputs, field="party", min_wiser=1)
    assert names == ["D", "R"]
    assert {"value", "bridges", "support D", "votes R"} <= set(values[0])
    assert all(e["kept"] for e in edges)
    assert isinstance(graphs.minority_table(inputs, field="party", min_wiser=1), list)
    empty = graphs.GraphInputs(votes=[], values=[], groups={}, questions={})
    assert graphs.bridging_tables(empty, field="party") == ([], [], [])
    assert graphs.minority_table(empty, field="party") == []


def test_downloads_are_single_files_or_reproducible_zips(engine):
    n = seed_native(engine)
    single = graphs.export_download(engine, deliberation_id=n.deliberation_id, fmt="graphml")
    assert single.file_name == "native-graph.graphml" and single.data.startswith(b"<graphml")
    zipped = graphs.export_download(engine, deliberation_id=n.deliberation_id, fmt="preferences")
    again = graphs.export_download(engine, deliberation_id=n.deliberation_id, fmt="preferences")
    assert zipped.file_name == "native-preferences.zip" and zipped.data == again.data
    with zipfile.ZipFile(io.BytesIO(zipped.data)) as archive:
        assert archive.namelist() == ["preferences.jsonl", "README.md"]
        rows = [json.loads(x) for x in archive.read("preferences.jsonl").splitlines()]
    assert rows and rows[0]["prompt"] == "My teenager lies to me, what should I do?"
    with pytest.raises(GraphError, match="unknown format"):
        graphs.download_name("x", "pdf")


def test_parse_until():
    assert graphs.parse_until("2024-05-01T10:00:00") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert graphs.parse_until("2024-05-01") == datetime(2024, 5, 1, tzinfo=UTC) + timedelta(
        days=1, microseconds=-1
    )
    with pytest.raises(GraphError, match="not an ISO 8601"):
        graphs.parse_until("yesterday")
