"""Import and export formats: read every export back, pin the shapes, reject bad imports."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import networkx as nx
import pandas as pd
import pytest

from graph.build import build_graph
from graph.formats import (
    dumps_json,
    parse_mge_dump,
    parse_mge_summary,
    preference_pairs,
    preference_pairs_card,
    read_mge_summary,
    rubrics,
    rubrics_card,
    to_csv_tables,
    to_gexf,
    to_graphml,
    to_jsonl,
    to_mge_summary,
    to_native_json,
    write_csv_tables,
    write_gexf,
    write_graphml,
    write_json,
    write_jsonl,
)
from graph.scoring import analyse
from graph.stats import edge_statistics, edge_statistics_by_context
from graph.types import GraphError, ImportFormatError, Value, Vote

SECRET = "participant-secret-7f3a"
VALUES = [
    Value(
        1,
        "Honest care",
        "Care that tells the truth.",
        "",
        ("MOMENTS when", "CHOICES that"),
        created_at="2023-09-30T06:00:09.346Z",
        updated_at="2023-09-30T06:00:09.346Z",
    ),
    Value(2, "Steady presence", "Stay.", "Stay, longer.", ("FEELINGS of",), contributors=3),
    Value(3, '=HYPERLINK("http://x")', "Formula-looking title.", "", ("PEOPLE who",)),
    Value(4, "Unused", "Never voted on.", "", ()),
]


def votes() -> list[Vote]:
    out = [Vote(f"{SECRET}-{p}", 1, 2, "When lost", "upgrade") for p in "abc"]
    out += [Vote(f"{SECRET}-{p}", 2, 3, "When lost", "upgrade") for p in "ab"]
    out += [Vote(f"{SECRET}-{p}", 2, 3, "When calm", "not_sure") for p in "ab"]
    out += [Vote(f"{SECRET}-{p}", 1, 3, "When calm", "upgrade") for p in "abcd"]
    return out


QUESTIONS = {"What should I do?": ["When lost", "When calm"], "Other?": ["When calm"]}


# --- mge-summary ----------------------------------------------------------------------------


def test_to_mge_summary_uses_reference_field_names() -> None:
    summary = to_mge_summary(VALUES, edge_statistics(votes()))
    assert set(summary) == {"values", "edges"}
    value = summary["values"][0]
    assert value == {
        "id": 1,
        "title": "Honest care",
        "instructionsShort": "Care that tells the truth.",
        "instructionsDetailed": "Care that tells the truth.",  # no detail: the description
        "evaluationCriteria": ["MOMENTS when", "CHOICES that"],
        "createdAt": "2023-09-30T06:00:09.346Z",
        "updatedAt": "2023-09-30T06:00:09.346Z",
    }
    assert "createdAt" not in summary["values"][1]
    assert summary["values"][1]["instructionsDetailed"] == "Stay, longer."
    edge = summary["edges"][0]
    assert set(edge) == {"sourceValueId", "wiserValueId", "contexts", "counts", "summary"}
    assert set(edge["counts"]) == {
        "markedWiser",
        "markedNotWiser",
        "markedLessWise",
        "markedUnsure",
        "impressions",
    }
    assert set(edge["summary"]) == {"wiserLikelihood", "entropy"}


def test_to_mge_summary_keeps_only_kept_edges_and_their_values() -> None:
    edges = edge_statistics(votes())
    summary = to_mge_summary(VALUES, edges)
    assert [(e["sourceValueId"], e["wiserValueId"]) for e in summary["edges"]] == [
        (e.source_id, e.wiser_id) for e in edges if e.kept
    ]
    used = {i for e in summary["edges"] for i in (e["sourceValueId"], e["wiserValueId"])}
    assert [v["id"] for v in summary["values"]] == sorted(used)
    assert 4 not in used


def test_to_mge_summary_rejects_kept_edge_to_unknown_value() -> None:
    with pytest.raises(GraphError, match="missing from the values"):
        to_mge_summary(VALUES[:1], edge_statistics(votes()))


def test_read_mge_summary_round_trips_through_a_file(tmp_path: Path) -> None:
    summary = to_mge_summary(VALUES, edge_statistics(votes()))
    path = write_json(summary, tmp_path / "summary.json")
    values, edges = read_mge_summary(path)
    assert to_mge_summary(values, edges) == summary


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("edges"), "summary row 0: missing field 'edges'"),
        (lambda d: d["values"][0].pop("title"), "summary values row 0: missing field 'title'"),
        (lambda d: d["values"][0].update(id="7"), "field 'id' must be an integer"),
        (lambda d: d["edges"][0]["counts"].pop("impressions"), "summary edges row 0: missing"),
        (lambda d: d["edges"][0].update(contexts="When x"), "'contexts' must be a list"),
        (lambda d: d["values"][0].update(evaluationCriteria=5), "list of strings"),
        (lambda d: d["values"][0].update(createdAt="yesterday"), "not an ISO timestamp"),
    ],
)
def test_parse_mge_summary_names_the_faulty_row(mutate: Any, message: str) -> None:
    data = to_mge_summary(VALUES, edge_statistics(votes()))
    mutate(data)
    with pytest.raises(ImportFormatError, match=message.replace("(", r"\(")):
        parse_mge_summary(data)


def test_parse_mge_summary_rejects_non_object() -> None:
    with pytest.raises(ImportFormatError, match="expected an object"):
        parse_mge_summary([])


# --- database dump --------------------------------------------------------------------------


def write_dump(folder: Path, **override: Any) -> Path:
    tables: dict[str, Any] = {
        "canonicalValuesCard.json": [
            {
                "id": 10,
                "title": "Honest care",
                "instructionsShort": "Short.",
                "instructionsDetailed": "Long.",
                "evaluationCriteria": ["MOMENTS when"],
                "createdAt": "2023-09-30T06:00:09.346Z",
                "updatedAt": "2023-09-30T06:00:09.346Z",
            },
            {
                "id": 11,
                "title": "Steady presence",
                "instructionsShort": "S.",
                "instructionsDetailed": "L.",
                "evaluationCriteria": "['FEELINGS of', \"it's\"]",
                "createdAt": "2023-10-01T00:00:00.000Z",
                "updatedAt": "2023-10-01T00:00:00.000Z",
            },
            {
                "id": 12,
                "title": "Quiet trust",
                "instructionsShort": "T.",
                "instructionsDetailed": "",
                "evaluationCriteria": '["PEOPLE who"]',
                "createdAt": None,
                "updatedAt": None,
            },
        ],
        "edge.json": [
            {
                "userId": 1,
                "fromId": 10,
                "toId": 11,
                "contextId": "When lost",
                "relationship": "upgrade",
                "comment": "private words",
                "story": "A story.",
                "createdAt": "2023-10-02T10:00:00.000Z",
            },
            {
                "userId": 2,
                "fromId": 10,
                "toId": 11,
                "contextId": "When lost",
                "relationship": "upgrade",
                "comment": None,
                "story": "A story.",
                "createdAt": "2023-10-02T11:00:00.000Z",
            },
            {
                "userId": 2,
                "fromId": 11,
                "toId": 12,
                "contextId": "When calm",
                "relationship": "not_sure",
                "comment": None,
                "story": "Another.",
                "createdAt": "2023-10-02T12:00:00.000Z",
            },
        ],
        "valuesCard.json": [
            {
                "id": 100,
                "title": "Care",
                "instructionsShort": "",
                "instructionsDetailed": "",
                "evaluationCriteria": [],
                "canonicalCardId": 10,
                "userId": 1,
            },
            {
                "id": 101,
                "title": "Care too",
                "instructionsShort": "",
                "instructionsDetailed": "",
                "evaluationCriteria": "[]",
                "canonicalCardId": 10,
                "userId": 2,
            },
            {
                "id": 102,
                "title": "Care again",
                "instructionsShort": "",
                "instructionsDetailed": "",
                "evaluationCriteria": [],
                "canonicalCardId": 10,
                "userId": 2,
            },
            {
                "id": 103,
                "title": "Alone",
                "instructionsShort": "",
                "instructionsDetailed": "",
                "evaluationCriteria": [],
                "canonicalCardId": None,
            },
        ],
        "demographic.json": [
            {
                "id": 1,
                "userId": 1,
                "usPoliticalAffiliation": "Democrat",
                "age": 34,
                "createdAt": "2023-10-02T10:00:00.000Z",
            },
            {"id": 2, "userId": 2, "usPoliticalAffiliation": "Republican", "age": None},
        ],
        "vote.json": [{"userId": 1, "valuesCardId": 100}],
        "impression.json": [{"userId": 1, "valuesCardId": 101}],
    }
    tables.update(override)
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        if rows is None:
            continue
        data = rows if isinstance(rows, bytes) else json.dumps(rows).encode("utf-8")
        (folder / name).write_bytes(data)
    return folder


def test_parse_mge_dump_reads_values_votes_and_groups(tmp_path: Path) -> None:
    dump = parse_mge_dump(write_dump(tmp_path / "dump"))
    assert [v.id for v in dump.values] == [10, 11, 12]
    assert dump.values[1].policies == ("FEELINGS of", "it's")
    assert dump.values[2].policies == ("PEOPLE who",)
    assert dump.values[0].contributors == 2  # users 1 and 2 (user 2 twice)
    assert dump.values[2].created_at is None
    assert [(x.participant, x.from_id, x.to_id, x.context, x.choice) for x in dump.votes] == [
        ("1", 10, 11, "When lost", "upgrade"),
        ("2", 10, 11, "When lost", "upgrade"),
        ("2", 11, 12, "When calm", "not_sure"),
    ]
    assert dump.votes[0].created_at is not None and dump.votes[0].created_at.hour == 10
    assert dump.groups == {
        "1": {"usPoliticalAffiliation": "Democrat", "age": "34"},
        "2": {"usPoliticalAffiliation": "Republican"},
    }
    assert [c.canonical_id for c in dump.cards] == [10, 10, 10, None]
    assert dump.card_votes == [{"userId": 1, "valuesCardId": 100}]
    assert dump.impressions == [{"userId": 1, "valuesCardId": 101}]


def test_parse_mge_dump_needs_only_required_files(tmp_path: Path) -> None:
    folder = write_dump(
        tmp_path / "dump",
        **{
            "valuesCard.json": None,
            "demographic.json": None,
            "vote.json": None,
            "impression.json": None,
        },
    )
    dump = parse_mge_dump(folder)
    assert dump.cards == [] and dump.groups == {} and dump.values[0].contributors == 0


def test_parse_mge_dump_feeds_edge_statistics(tmp_path: Path) -> None:
    dump = parse_mge_dump(write_dump(tmp_path / "dump"))
    summary = to_mge_summary(dump.values, edge_statistics(dump.votes))
    assert [(e["sourceValueId"], e["wiserValueId"]) for e in summary["edges"]] == [(10, 11)]
    assert "private words" not in dumps_json(summary)


CARD: dict[str, Any] = {
    "id": 1,
    "title": "x",
    "instructionsShort": "s",
    "instructionsDetailed": None,
    "evaluationCriteria": [],
}


def bad_edge(**fields: Any) -> list[dict[str, Any]]:
    good = {
        "userId": 1,
        "fromId": 10,
        "toId": 11,
        "contextId": "When lost",
        "relationship": "upgrade",
    }
    rows = [dict(good, userId=n) for n in range(12)]
    rows.append({**good, "userId": 99, **fields})
    return rows


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"edge.json": bad_edge(relationship="maybe")},
            "edge.json row 12: relationship 'maybe' is not one of upgrade, no_upgrade, not_sure",
        ),
        (
            {"edge.json": bad_edge(fromId="10")},
            "edge.json row 12: field 'fromId' must be an integer",
        ),
        ({"edge.json": bad_edge(toId=999)}, "edge.json row 12: toId 999 is not in canonical"),
        ({"edge.json": bad_edge(toId=10)}, "edge.json row 12: fromId equals toId"),
        ({"edge.json": bad_edge(userId=3)}, "edge.json row 12: the same user already judged"),
        ({"edge.json": bad_edge(createdAt="noon")}, "edge.json row 12: field 'createdAt' is not"),
        ({"edge.json": bad_edge(contextId=None)}, "edge.json row 12: field 'contextId' must be"),
        ({"edge.json": b"\xff\xfe[]"}, "edge.json: not valid UTF-8 (byte 0xff at offset 0)"),
        ({"edge.json": b'[{"userId": 1,]'}, "edge.json: malformed JSON at line 1 column 15"),
        ({"edge.json": b'{"rows": []}'}, "edge.json: expected a JSON array of rows, got dict"),
        ({"edge.json": b"[1]"}, "edge.json row 0: expected an object, got int"),
        ({"edge.json": None}, "edge.json: file not found in"),
        (
            {"canonicalValuesCard.json": [{k: x for k, x in CARD.items() if k != "title"}]},
            "canonicalValuesCard.json row 0: missing field 'title'",
        ),
        (
            {"canonicalValuesCard.json": [{k: x for k, x in CARD.items() if "Short" not in k}]},
            "canonicalValuesCard.json row 0: missing field 'instructionsShort'",
        ),
        (
            {"canonicalValuesCard.json": [{**CARD, "instructionsDetailed": 3}]},
            "canonicalValuesCard.json row 0: field 'instructionsDetailed' must be a string",
        ),
        (
            {"canonicalValuesCard.json": [{**CARD, "evaluationCriteria": "[oops"}]},
            "canonicalValuesCard.json row 0: field 'evaluationCriteria' is a string but not a list",
        ),
        (
            {"canonicalValuesCard.json": [{**CARD, "evaluationCriteria": "__import__('os')"}]},
            "canonicalValuesCard.json row 0: field 'evaluationCriteria' is a string but not a list",
        ),
        (
            {"valuesCard.json": [{**CARD, "id": 5, "canonicalCardId": 77}]},
            "valuesCard.json row 0: canonicalCardId 77 is not in canonicalValuesCard.json",
        ),
        (
            {"demographic.json": [{"userId": 1, "tags": ["a"]}]},
            "demographic.json row 0: field 'tags' must be a scalar",
        ),
    ],
)
def test_parse_mge_dump_raises_one_clear_error(
    tmp_path: Path, override: dict[str, Any], message: str
) -> None:
    folder = write_dump(tmp_path / "dump", **override)
    if override.get("edge.json", "") is None:
        (folder / "edge.json").unlink(missing_ok=True)
    with pytest.raises(ImportFormatError) as info:
        parse_mge_dump(folder)
    assert str(info.value).startswith(message)


def test_parse_mge_dump_rejects_duplicate_canonical_id(tmp_path: Path) -> None:
    row = dict(CARD)
    folder = write_dump(
        tmp_path / "d",
        **{"canonicalValuesCard.json": [row, row], "edge.json": [], "valuesCard.json": []},
    )
    with pytest.raises(ImportFormatError, match="row 1: id 1 repeats row 0"):
        parse_mge_dump(folder)


# --- native JSON ----------------------------------------------------------------------------


def native() -> dict[str, Any]:
    return to_native_json(
        VALUES,
        analyse(votes(), n_bootstrap=30, seed=1),
        provenance={"deliberation": "test", "app_version": "0.1.0"},
        filters={"min_votes": 0},
        generated_at="2024-01-01T00:00:00Z",
    )


def test_to_native_json_has_schema_and_sections() -> None:
    doc = json.loads(dumps_json(native()))
    assert doc["schema"] == "mge-graph" and doc["schema_version"] == 1
    assert doc["generated_at"] == "2024-01-01T00:00:00Z"
    assert doc["provenance"] == {"deliberation": "test", "app_version": "0.1.0"}
    assert doc["filters"] == {"min_votes": 0}
    assert [c["context"] for c in doc["contexts"]] == ["When calm", "When lost"]
    assert [v["id"] for v in doc["values"]] == [1, 2, 3, 4]
    lost = doc["contexts"][1]
    assert lost["winner"] == 3
    assert 0.0 <= lost["winner_stability"] <= 1.0
    assert set(lost["scores"]) == {"1", "2", "3"}
    first = lost["edges"][0]
    assert set(first) == {
        "source_id",
        "wiser_id",
        "contexts",
        "counts",
        "wiser_likelihood",
        "entropy",
        "kept",
        "likelihood_interval",
    }
    assert set(doc["pooled"]) == {"edges", "scores", "reference_scores"}


def test_to_native_json_is_deterministic_and_has_no_participant_ids() -> None:
    text = dumps_json(native())
    assert text == dumps_json(native())
    assert SECRET not in text


def test_to_native_json_without_bootstrap_has_null_stability() -> None:
    doc = to_native_json(VALUES, analyse(votes()))
    assert doc["generated_at"] is None and doc["bootstrap"] is None
    assert all(c["winner_stability"] is None for c in doc["contexts"])
    assert all("likelihood_interval" not in e for c in doc["contexts"] for e in c["edges"])


# --- GraphML / GEXF -------------------------------------------------------------------------


def scored_graph() -> nx.DiGraph[int]:
    result = analyse(votes())
    return build_graph(VALUES, result.pooled, scores=result.pooled_scores)


def node_attrs(g: nx.Graph[int]) -> dict[int, dict[str, Any]]:
    return {n: dict(g.nodes[n]) for n in g.nodes}


def test_to_graphml_reads_back_with_same_nodes_edges_and_attributes(tmp_path: Path) -> None:
    g = scored_graph()
    path = write_graphml(g, tmp_path / "graph.graphml")
    back = nx.read_graphml(path, node_type=int)
    assert isinstance(back, nx.DiGraph)
    assert node_attrs(back) == node_attrs(g)
    assert sorted(back.edges(data=True)) == sorted(g.edges(data=True))


def test_to_gexf_reads_back_with_same_nodes_edges_and_attributes(tmp_path: Path) -> None:
    g = scored_graph()
    path = write_gexf(g, tmp_path / "graph.gexf")
    back = nx.read_gexf(path, node_type=int)
    assert node_attrs(back) == node_attrs(g)
    edges = sorted(
        (a, b, {k: x for k, x in d.items() if k != "id"}) for a, b, d in back.edges(data=True)
    )
    assert edges == sorted(g.edges(data=True))


def test_graph_exports_are_deterministic_and_private() -> None:
    for render in (to_graphml, to_gexf):
        text = render(scored_graph())
        assert text == render(scored_graph())
        assert SECRET not in text
    assert "lastmodifieddate" not in to_gexf(scored_graph())


# --- CSV ------------------------------------------------------------------------------------


def test_to_csv_tables_read_back_with_pandas(tmp_path: Path) -> None:
    result = analyse(votes())
    paths = write_csv_tables(VALUES, result.pooled, tmp_path / "csv", scores=result.pooled_scores)
    assert [p.name for p in paths] == ["edges.csv", "values.csv"]
    values = pd.read_csv(tmp_path / "csv" / "values.csv", keep_default_na=False)
    assert values["id"].tolist() == [1, 2, 3, 4]
    assert json.loads(str(values.loc[0, "policies"])) == ["MOMENTS when", "CHOICES that"]
    assert values.loc[2, "score"] == pytest.approx(result.pooled_scores[3], abs=0)
    edges = pd.read_csv(tmp_path / "csv" / "edges.csv")
    mine = sorted(result.pooled, key=lambda e: (e.source_id, e.wiser_id))
    assert edges["source_id"].tolist() == [e.source_id for e in mine]
    assert edges["marked_wiser"].tolist() == [e.marked_wiser for e in mine]
    assert edges["entropy"].tolist() == [e.entropy for e in mine]  # exact float round trip
    assert [tuple(json.loads(c)) for c in edges["contexts"]] == [e.contexts for e in mine]
    assert edges["kept"].tolist() == [e.kept for e in mine]


def test_to_csv_tables_per_context_adds_context_column() -> None:
    tables = to_csv_tables(VALUES, edge_statistics_by_context(votes()))
    edges = pd.read_csv(io.StringIO(tables["edges.csv"]))
    assert edges.columns[0] == "context"
    assert edges["context"].tolist() == sorted(edges["context"].tolist())


def test_to_csv_tables_neutralises_spreadsheet_formulas() -> None:
    values = pd.read_csv(io.StringIO(to_csv_tables(VALUES, [])["values.csv"]))
    assert values.loc[2, "title"] == '\'=HYPERLINK("http://x")'
    assert values.loc[0, "title"] == "Honest care"


# --- training data --------------------------------------------------------------------------


def test_preference_pairs_rows_per_kept_edge_per_question_context(tmp_path: Path) -> None:
    by_context = edge_statistics_by_context(votes())
    rows = preference_pairs(by_context, VALUES, questions=QUESTIONS)
    kept = {c: [e for e in es if e.kept] for c, es in by_context.items()}
    expected = sum(len(kept[c]) for cs in QUESTIONS.values() for c in cs)
    assert len(rows) == expected == 4
    path = write_jsonl(rows, tmp_path / "pairs.jsonl")
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines == rows
    first = lines[0]
    assert set(first) == {"prompt", "context", "chosen", "rejected", "evidence"}
    assert (first["prompt"], first["context"]) == ("Other?", "When calm")
    assert first["chosen"] == {
        "title": VALUES[2].title,
        "description": VALUES[2].description,
        "policies": ["PEOPLE who"],
    }
    assert first["rejected"]["title"] == "Honest care"
    assert first["evidence"]["marked_wiser"] == 4 and first["evidence"]["wiser_likelihood"] == 1.0


def test_preference_pairs_without_questions_have_null_prompt() -> None:
    rows = preference_pairs(edge_statistics_by_context(votes()), VALUES)
    assert {r["prompt"] for r in rows} == {None}
    assert [r["context"] for r in rows] == sorted(r["context"] for r in rows)


def test_rubrics_list_top_values_per_question_context() -> None:
    result = analyse(votes())
    rows = rubrics(result.scores, VALUES, questions=QUESTIONS, top=2)
    assert [(r["prompt"], r["context"]) for r in rows] == [
        ("Other?", "When calm"),
        ("What should I do?", "When calm"),
        ("What should I do?", "When lost"),
    ]
    lost = rows[2]["rubric"]
    assert len(lost) == 2 and lost[0]["title"] == VALUES[2].title
    assert lost[0]["score"] >= lost[1]["score"]
    back = [json.loads(line) for line in to_jsonl(rows).splitlines()]
    assert back == rows


def test_training_exports_are_deterministic_and_private() -> None:
    result = analyse(votes())
    pairs = to_jsonl(preference_pairs(result.by_context, VALUES, questions=QUESTIONS))
    rubric = to_jsonl(rubrics(result.scores, VALUES, questions=QUESTIONS))
    assert pairs == to_jsonl(preference_pairs(result.by_context, VALUES, questions=QUESTIONS))
    assert SECRET not in pairs and SECRET not in rubric


def test_dataset_cards_describe_rows_without_personal_data() -> None:
    result = analyse(votes())
    rows = preference_pairs(result.by_context, VALUES, questions=QUESTIONS)
    card = preference_pairs_card(rows, provenance={"deliberation": "test"})
    assert card.startswith("---\npretty_name:")
    assert "- rows: 4" in card and "No personal data" in card
    assert '`deliberation`: `"test"`' in card
    assert card == preference_pairs_card(rows, provenance={"deliberation": "test"})
    r_card = rubrics_card(rubrics(result.scores, VALUES, questions=QUESTIONS))
    assert "# Moral graph rubrics" in r_card and "- rows: 3" in r_card


def test_rubrics_rejects_unknown_value() -> None:
    with pytest.raises(GraphError, match="unknown value 9"):
        rubrics({"When x": {9: 1.0}}, VALUES)
