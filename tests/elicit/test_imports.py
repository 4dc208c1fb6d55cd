"""Importing reference data: summaries (synthesised votes) and dumps, idempotent and atomic.

Behaviours:
- summary: the synthetic votes reproduce every edge's counts, contexts (in order) and summary;
  impressions from non-upgrade reverse votes; both directions listed; edges that no set of votes
  can reproduce are refused naming the edge; a second import adds nothing; an edge naming an
  unknown value is refused and nothing is written.
- dump: values (ref ids), pseudonymous participants, votes (times kept), stories (first wins),
  cards (linked only with canonicalCardId), demographics; a second import adds nothing;
  malformed files give one message naming file and row and write nothing; a failure in the
  middle of the write leaves nothing behind.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session, select

from db import queries
from db.models import CanonicalValue, Deliberation, Hypothesis, Participant, ValuesCard, WiserVote
from db.queries.graphdata import ImportBatch, ImportValue, ImportVote, create_import
from elicit.console import ConsoleError
from elicit.imports import import_mge_dump, import_mge_summary, summary_votes
from graph.formats import parse_mge_dump
from graph.stats import edge_statistics, edge_stats_from_counts
from graph.types import ImportFormatError, Vote
from tests.graph_seed import DUMP_CONTEXTS, deliberation_id, write_dump

START = datetime(2024, 1, 1, tzinfo=UTC)


def _edge(a: int, b: int, w: int, n: int, less: int, u: int, imp: int, contexts=("When x",)):
    return edge_stats_from_counts(
        a,
        b,
        contexts=list(contexts),
        counts=dict(
            marked_wiser=w,
            marked_not_wiser=n,
            marked_less_wise=less,
            marked_unsure=u,
            impressions=imp,
        ),
    )


def _stats(votes):
    plain = [Vote(v.user, v.from_ref, v.to_ref, v.context, v.choice) for v in votes]
    return {(e.source_id, e.wiser_id): e for e in edge_statistics(plain)}


def _summary(values, edges) -> dict:
    return {
        "values": [
            {
                "id": v,
                "title": f"V{v}",
                "instructionsShort": "s",
                "instructionsDetailed": "d",
                "evaluationCriteria": ["THINGS"],
            }
            for v in values
        ],
        "edges": edges,
    }


def _edge_json(a, b, w, n, less, u, imp, contexts=("When x",)):
    e = _edge(a, b, w, n, less, u, imp, contexts)
    return {
        "sourceValueId": a,
        "wiserValueId": b,
        "contexts": list(contexts),
        "counts": {
            "markedWiser": w,
            "markedNotWiser": n,
            "markedLessWise": less,
            "markedUnsure": u,
            "impressions": imp,
        },
        "summary": {"wiserLikelihood": e.wiser_likelihood, "entropy": e.entropy},
    }


# --- summary reconstruction (pure) --------------------------------------------------------------


def test_summary_votes_reproduce_counts_and_extra_impressions():
    edges = [_edge(1, 2, 20, 3, 2, 5, 32), _edge(3, 1, 2, 0, 0, 1, 4)]
    votes = summary_votes(edges, start=START)
    got = _stats(votes)
    for e in edges:
        g = got[(e.source_id, e.wiser_id)]
        assert (g.marked_wiser, g.marked_not_wiser, g.marked_less_wise, g.marked_unsure) == (
            e.marked_wiser,
            e.marked_not_wiser,
            e.marked_less_wise,
            e.marked_unsure,
        )
        assert g.impressions == e.impressions
        assert g.wiser_likelihood == e.wiser_likelihood and g.entropy == e.entropy
    # One pseudonymous participant per vote, times strictly increasing in file order.
    assert len({v.user for v in votes}) == len(votes) == 32 + 4
    assert [v.created_at for v in votes] == sorted({v.created_at for v in votes})
    # The 2 extra impressions of 1 -> 2 are non-upgrade votes on 2 -> 1.
    back = [v.choice for v in votes if (v.from_ref, v.to_ref) == (2, 1)]
    assert back.count("upgrade") == 2 and len(back) == 4


def test_summary_votes_keep_context_order():
    edges = [_edge(1, 2, 3, 0, 0, 1, 4, contexts=("When b", "When a"))]
    got = _stats(summary_votes(edges, start=START))
    assert got[(1, 2)].contexts == ("When b", "When a")


def test_summary_votes_with_both_directions_listed():
    forward = _edge(1, 2, 3, 1, 1, 0, 6)
    reverse = _edge(2, 1, 1, 1, 3, 0, 6)
    got = _stats(summary_votes([forward, reverse], start=START, stored=None))
    assert got[(1, 2)].marked_wiser == 3 and got[(2, 1)].marked_wiser == 1
    assert got[(2, 1)].marked_not_wiser == 1 and got[(1, 2)].impressions == 6


@pytest.mark.parametrize(
    ("edges", "message"),
    [
        ([_edge(1, 2, 3, 0, 0, 1, 3)], "summary edges row 0 (1 -> 2): impressions 3 is less"),
        ([_edge(1, 2, 2, 0, 0, 0, 2, contexts=("When a", "When b", "When c"))], "3 contexts"),
        (
            [_edge(1, 2, 3, 0, 1, 0, 4), _edge(2, 1, 2, 0, 3, 0, 5)],
            "summary edges row 0 (1 -> 2): its counts contradict",
        ),
    ],
)
def test_summary_votes_refuse_impossible_edges(edges, message):
    with pytest.raises(ImportFormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        summary_votes(edges, start=START)


def test_summary_votes_refuse_a_stored_summary_off_by_more_than_1e_12():
    edge = _edge(1, 2, 3, 0, 0, 1, 4)
    stored = [{"wiserLikelihood": 0.75 + 1e-10, "entropy": edge.entropy}]
    with pytest.raises(ImportFormatError, match="wiserLikelihood"):
        summary_votes([edge], stored=stored, start=START)


# --- summary import (database) ------------------------------------------------------------------


def test_import_summary_twice_adds_nothing(engine, tmp_path):
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps(
            _summary([1, 2, 3], [_edge_json(1, 2, 3, 0, 0, 1, 4), _edge_json(2, 3, 2, 1, 0, 0, 4)])
        )
    )
    first = import_mge_summary(engine, path, slug="sum")
    assert first.deliberation_created and first.values == 3 and first.votes == 4 + 4
    with Session(engine) as s:
        before = queries.count_import_rows(s, deliberation_id=first.deliberation_id)
        d = s.get(Deliberation, first.deliberation_id)
        assert d is not None and d.title == "Sum"
    again = import_mge_summary(engine, path, slug="sum")
    assert (again.values, again.votes, again.participants, again.contexts) == (0, 0, 0, 0)
    with Session(engine) as s:
        assert queries.count_import_rows(s, deliberation_id=first.deliberation_id) == before
        people = s.exec(select(Participant)).all()
        assert {p.entry_channel for p in people} == {"import"}
        assert all(p.external_ref and p.external_ref.startswith("mge-summary:") for p in people)


def test_import_summary_with_unknown_value_names_the_edge_and_writes_nothing(engine, tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(_summary([1, 2], [_edge_json(1, 9, 3, 0, 0, 1, 4)])))
    with pytest.raises(ImportFormatError, match=r"s\.json edges row 0 \(1 -> 9\): value 9"):
        import_mge_summary(engine, path, slug="sum")
    assert deliberation_id(engine, "sum") is None


def test_import_refuses_a_bad_slug(engine, tmp_path):
    with pytest.raises(ConsoleError):
        import_mge_summary(engine, tmp_path / "nope.json", slug="Bad Slug!")


# --- dump import ------------------------------------------------------------------------------


def test_import_dump_writes_every_kind_of_row(engine, tmp_path):
    edges = write_dump(tmp_path / "dump")
    result = import_mge_dump(engine, tmp_path / "dump", slug="dump")
    users = {e["userId"] for e in edges}
    assert result.values == 5 and result.votes == len(edges)
    assert result.participants == len(users)  # card and demographic users also voted
    assert result.contexts == len(DUMP_CONTEXTS)
    with Session(engine) as s:
        values = s.exec(select(CanonicalValue)).all()
        assert sorted(v.ref_id for v in values) == [101, 102, 103, 104, 105]
        v102 = next(v for v in values if v.ref_id == 102)
        assert v102.policies == ["MOMENTS of kind 102", "CHOICES that open path 102"]
        assert v102.ref_created_at and v102.ref_created_at.endswith("Z")
        people = {p.external_ref: p for p in s.exec(select(Participant)).all()}
        assert set(people) == {str(u) for u in users}
        p = people["1001"]
        assert p.entry_channel == "import" and p.demographics == {"party": "D", "age": "21"}
        assert not p.consent_publish and len(p.token_hash) == 64
        votes = s.exec(select(WiserVote).order_by(WiserVote.id)).all()
        first = edges[0]
        assert votes[0].created_at.replace(tzinfo=UTC) == datetime.fromisoformat(first["createdAt"])
        assert [v.choice for v in votes] == [e["relationship"] for e in edges]
        assert sum(1 for v in votes if v.comment) == sum(1 for e in edges if e["comment"])
        hyps = s.exec(select(Hypothesis)).all()
        triples = {(e["fromId"], e["toId"], e["contextId"]) for e in edges}
        assert len(hyps) == len(triples) == result.hypotheses
        assert {h.origin for h in hyps} == {"import"}
        cards = s.exec(select(ValuesCard).order_by(ValuesCard.ref_id)).all()
        assert [c.ref_id for c in cards] == list(range(500, 508))
        linked = [c for c in cards if c.canonical_value_id is not None]
        assert len(linked) == 6 and all(c.submitted_at for c in cards)
        assert all(c.participant_id == people[str(1000 + c.ref_id - 500)].id for c in cards)


def test_import_dump_first_story_wins(engine, tmp_path):
    edges = write_dump(tmp_path / "dump", n_users=2)
    edges.append({**edges[0], "userId": 9999, "story": "A later story", "createdAt": None})
    (tmp_path / "dump" / "edge.json").write_text(json.dumps(edges))
    import_mge_dump(engine, tmp_path / "dump", slug="dump")
    with Session(engine) as s:
        stories = {h.story for h in s.exec(select(Hypothesis)).all()}
    assert edges[0]["story"] in stories and "A later story" not in stories


def test_import_dump_twice_duplicates_nothing(engine, tmp_path):
    write_dump(tmp_path / "dump")
    first = import_mge_dump(engine, tmp_path / "dump", slug="dump")
    with Session(engine) as s:
        before = queries.count_import_rows(s, deliberation_id=first.deliberation_id)
    again = import_mge_dump(engine, tmp_path / "dump", slug="dump")
    assert not again.deliberation_created
    assert (again.values, again.participants, again.votes, again.hypotheses, again.cards) == (
        0,
        0,
        0,
        0,
        0,
    )
    with Session(engine) as s:
        assert queries.count_import_rows(s, deliberation_id=first.deliberation_id) == before


def _break(folder: Path, kind: str) -> str:
    edge = folder / "edge.json"
    if kind == "json":
        edge.write_text(edge.read_text()[:-3] + ",]")
        return "edge.json: malformed JSON at line"
    if kind == "utf8":
        raw = (folder / "canonicalValuesCard.json").read_bytes()
        (folder / "canonicalValuesCard.json").write_bytes(raw.replace(b"Value 103", b"Value \xff"))
        return "canonicalValuesCard.json: not valid UTF-8 (byte 0xff"
    rows = json.loads(edge.read_text())
    if kind == "relationship":
        rows[3]["relationship"] = "maybe"
        edge.write_text(json.dumps(rows))
        return "edge.json row 3: relationship 'maybe' is not one of"
    if kind == "unknown value":
        rows[5]["toId"] = 999
        edge.write_text(json.dumps(rows))
        return "edge.json row 5: toId 999 is not in canonicalValuesCard.json"
    rows[2]["comment"] = 12
    edge.write_text(json.dumps(rows))
    return "edge.json row 2: field 'comment' must be a string"


@pytest.mark.parametrize("kind", ["json", "utf8", "relationship", "unknown value", "comment"])
def test_import_malformed_dump_names_file_and_row_and_writes_nothing(engine, tmp_path, kind):
    write_dump(tmp_path / "dump")
    message = _break(tmp_path / "dump", kind)
    with pytest.raises(ImportFormatError) as info:
        import_mge_dump(engine, tmp_path / "dump", slug="broken")
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)
    assert deliberation_id(engine, "broken") is None


def test_import_missing_folder_or_file(engine, tmp_path):
    with pytest.raises(ImportFormatError, match="not a folder"):
        import_mge_dump(engine, tmp_path / "none", slug="x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImportFormatError, match="canonicalValuesCard.json: file not found"):
        import_mge_dump(engine, tmp_path / "empty", slug="x")


def test_a_failure_in_the_middle_of_the_write_leaves_nothing(engine):
    batch = ImportBatch(
        values=[ImportValue(1, "One", "", "", ())],
        votes=[ImportVote("u1", 1, 2, "When x", "upgrade", START)],  # value 2 is missing
    )
    with Session(engine) as s, pytest.raises(KeyError):
        create_import(s, slug="half", title="Half", batch=batch)
    assert deliberation_id(engine, "half") is None
    with Session(engine) as s:
        assert s.exec(select(CanonicalValue)).all() == []


def test_dump_votes_round_trip_through_parse(engine, tmp_path):
    """The votes the database holds are exactly the dump's (graph.formats' reading of it)."""
    write_dump(tmp_path / "dump")
    result = import_mge_dump(engine, tmp_path / "dump", slug="dump")
    dump = parse_mge_dump(tmp_path / "dump")
    with Session(engine) as s:
        refs = queries.list_value_ref_ids(s, deliberation_id=result.deliberation_id)
        people = {p.id: p.external_ref for p in s.exec(select(Participant)).all()}
        stored = [
            (people[v.participant_id], refs[v.from_value_id], refs[v.to_value_id], v.choice)
            for v in s.exec(select(WiserVote).order_by(WiserVote.created_at, WiserVote.id))
        ]
    assert stored == [(v.participant, v.from_id, v.to_id, v.choice) for v in dump.votes]
