"""Embedders and top-k search: shapes, normalisation, determinism, corpus handling."""

from __future__ import annotations

import doctest
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import elicit.embeddings
from elicit.embeddings import (
    Embedder,
    LocalEmbedder,
    OpenAIEmbedder,
    card_text,
    cosine_top_k,
    normalize_rows,
)

REPO = Path(__file__).resolve().parents[2]

TEXTS = [
    "Honest Care\nChatGPT should tell the truth kindly.\nMOMENTS when the truth helps",
    "Kind Honesty\nChatGPT should tell the truth with kindness.\nMOMENTS when truth helps",
    "Budget Basics\nHelp the user plan household money.\nCOSTS that can be cut",
]


def test_card_text_joins_fields_in_order_and_skips_blanks() -> None:
    text = card_text(" Title ", "Desc.", ["POLICY one", "  ", "POLICY two"], detail="")
    assert text == "Title\nDesc.\nPOLICY one\nPOLICY two"
    assert card_text("T", "D", [], detail="More.").endswith("\nMore.")


def test_local_embedder_returns_unit_float32_rows() -> None:
    emb = LocalEmbedder()
    vectors = emb.embed(TEXTS)
    assert isinstance(emb, Embedder)
    assert vectors.shape == (3, emb.dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


def test_local_embedder_ranks_paraphrase_above_unrelated() -> None:
    v = LocalEmbedder().embed(TEXTS)
    assert v[0] @ v[1] > 0.5 > v[0] @ v[2]


def test_local_embedder_gives_zero_row_for_text_without_words() -> None:
    v = LocalEmbedder().embed(["", "?! ...", "words here"])
    assert not v[0].any() and not v[1].any()
    assert np.linalg.norm(v[2]) == pytest.approx(1.0, abs=1e-6)


def test_local_embedder_handles_empty_batch() -> None:
    assert LocalEmbedder(n_features=64).embed([]).shape == (0, 64)


def test_local_embedder_rejects_a_bare_string() -> None:
    with pytest.raises(TypeError):
        LocalEmbedder().embed("one text")  # type: ignore[arg-type]


def test_local_embedder_reads_non_ascii_words() -> None:
    v = LocalEmbedder().embed(["Ehrlichkeit und Fürsorge", "Ehrlichkeit, Fürsorge", "Steuern"])
    assert v[0] @ v[1] > 0.5 > v[0] @ v[2]


def test_local_embedder_is_deterministic_within_a_process() -> None:
    a = LocalEmbedder().embed(TEXTS)
    b = LocalEmbedder().embed(TEXTS)
    np.testing.assert_array_equal(a, b)


def test_local_embedder_is_identical_in_a_fresh_process() -> None:
    code = (
        "import json, sys; from elicit.embeddings import LocalEmbedder;"
        "v = LocalEmbedder(n_features=256).embed(json.loads(sys.argv[1]));"
        "print(json.dumps(v.tolist()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=env,
    ).stdout
    here = LocalEmbedder(n_features=256).embed(TEXTS)
    np.testing.assert_array_equal(np.asarray(json.loads(out), dtype=np.float32), here)


def test_unfrozen_local_embedder_takes_idf_from_each_call() -> None:
    emb = LocalEmbedder()
    alone = emb.embed(TEXTS[:1])
    together = emb.embed(TEXTS)
    assert not emb.frozen
    assert not np.allclose(alone[0], together[0])


def test_with_corpus_freezes_idf_so_separate_calls_agree() -> None:
    base = LocalEmbedder()
    frozen = base.with_corpus(TEXTS)
    assert frozen.frozen and not base.frozen
    together = frozen.embed(TEXTS)
    one_by_one = np.vstack([frozen.embed([t]) for t in TEXTS])
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)
    np.testing.assert_allclose(together, base.embed(TEXTS), atol=1e-6)


def test_with_corpus_weights_unseen_words_and_keeps_unit_rows() -> None:
    frozen = LocalEmbedder().with_corpus(TEXTS)
    v = frozen.embed(["entirely novel vocabulary", TEXTS[0]])
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)


def test_local_embedder_name_says_its_settings() -> None:
    assert LocalEmbedder(n_features=512).name == "local-tfidf-hash512-v1"
    with pytest.raises(ValueError):
        LocalEmbedder(n_features=0)


def test_openai_embedder_calls_embed_fn_once_and_normalises() -> None:
    calls: list[list[str]] = []

    def embed_fn(texts: list[str]) -> list[list[float]]:
        calls.append(texts)
        return [[3.0, 4.0], [0.0, 2.0]]

    emb = OpenAIEmbedder(embed_fn, "text-embedding-3-small")
    v = emb.embed(("a", "b"))
    assert calls == [["a", "b"]]
    assert emb.name == "openai:text-embedding-3-small"
    assert emb.dim == 2
    assert v.dtype == np.float32
    np.testing.assert_allclose(v, [[0.6, 0.8], [0.0, 1.0]], atol=1e-6)


def test_openai_embedder_skips_the_call_for_no_texts() -> None:
    def embed_fn(texts: list[str]) -> list[list[float]]:
        raise AssertionError("must not be called")

    assert OpenAIEmbedder(embed_fn, "m").embed([]).shape == (0, 0)


def test_openai_embedder_rejects_wrong_count_and_changed_length() -> None:
    with pytest.raises(ValueError, match="asked for 2"):
        OpenAIEmbedder(lambda texts: [[1.0]], "m").embed(["a", "b"])
    with pytest.raises(ValueError, match="lengths"):
        OpenAIEmbedder(lambda texts: [[1.0], [1.0, 2.0]], "m").embed(["a", "b"])
    emb = OpenAIEmbedder(lambda texts: [[1.0, 0.0]] * len(texts), "m")
    emb.embed(["a"])
    emb._embed_fn = lambda texts: [[1.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match="dim 2"):
        emb.embed(["b"])


def test_normalize_rows_leaves_zero_rows_zero() -> None:
    out = normalize_rows(np.array([[0.0, 0.0], [0.0, 5.0]]))
    np.testing.assert_array_equal(out, [[0.0, 0.0], [0.0, 1.0]])


def test_cosine_top_k_with_query_vectors_ranks_by_similarity() -> None:
    m = normalize_rows(np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]))
    idx, sim = cosine_top_k(m, np.array([0.0, 1.0]), 2)
    assert idx.tolist() == [[2, 1]]
    np.testing.assert_allclose(sim, [[1.0, 0.8]], atol=1e-6)


def test_cosine_top_k_with_row_indices_leaves_each_row_out() -> None:
    m = normalize_rows(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    idx, _ = cosine_top_k(m, np.arange(3), 5)
    assert idx.shape == (3, 2)
    assert idx[:, 0].tolist() == [1, 0, 0]
    assert all(i not in row for i, row in enumerate(idx.tolist()))


def test_cosine_top_k_breaks_ties_by_lower_index() -> None:
    m = np.array([[1.0, 0.0]] * 4, dtype=np.float32)
    idx, _ = cosine_top_k(m, np.array([[1.0, 0.0]]), 3)
    assert idx.tolist() == [[0, 1, 2]]


def test_cosine_top_k_handles_k_zero_and_many_query_blocks() -> None:
    rng = np.random.default_rng(0)
    m = normalize_rows(rng.normal(size=(1100, 8)))
    assert cosine_top_k(m, np.arange(3), 0)[0].shape == (3, 0)
    idx, sim = cosine_top_k(m, np.arange(1100), 3)
    brute = m @ m.T
    np.fill_diagonal(brute, -np.inf)
    np.testing.assert_array_equal(idx[:, 0], brute.argmax(axis=1))
    assert (np.diff(sim, axis=1) <= 0).all()


def test_cosine_top_k_rejects_mismatched_dimensions() -> None:
    with pytest.raises(ValueError):
        cosine_top_k(np.eye(3, dtype=np.float32), np.ones((1, 2)), 1)


def test_docstring_examples_run() -> None:
    assert doctest.testmod(elicit.embeddings).failed == 0
