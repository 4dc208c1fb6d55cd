"""Text embeddings for values cards: the offline default, an API-backed provider, and top-k search.

Every embedder returns one L2-normalised ``float32`` row per text, so a dot product is a cosine.

`LocalEmbedder` is the default and needs nothing but numpy: a TF-IDF over word 1-2-grams and
in-word character 3-5-grams, hashed with a sign bit into a fixed number of columns. It was chosen
on the deduplication development set over two embedding models whose weights ship inside a wheel
(WordLlama and all-MiniLM-L6-v2 run in numpy): cards that express the same value were written from
one another and share literal phrases, while every card talks about the same few topics, so
distinctive shared wording separates duplicates better than topical closeness does.

The IDF weights are corpus statistics. Unless the embedder was built with
`LocalEmbedder.with_corpus`, each `embed` call computes them from the texts it is given, so
vectors are comparable only within one call: the deduplication step embeds all of a
deliberation's cards together at dedupe time (about a millisecond per card). Build a frozen
embedder with ``with_corpus`` when vectors from separate calls must be compared, for instance a
new card against stored canonical values.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Embedder",
    "LocalEmbedder",
    "OpenAIEmbedder",
    "card_text",
    "cosine_top_k",
    "normalize_rows",
]

_WORD = re.compile(r"[^\W_]+")
_SIGN_BIT = np.uint32(1 << 31)
# Queries per block in `cosine_top_k`, so a block of similarities stays a few MB.
_BLOCK = 1024


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length vectors.

    Attributes
    ----------
    name : str
        Identifies the model and its settings; store it beside saved vectors, because vectors
        of different embedders cannot be compared.
    dim : int or None
        Vector length, or None while unknown (an API model before its first call).
    """

    name: str
    dim: int | None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an array of shape ``(len(texts), dim)`` with L2-normalised float32 rows."""
        ...


def card_text(title: str, description: str, policies: Sequence[str], detail: str = "") -> str:
    """The text a values card is embedded from.

    Title, description, each policy and the detail go on their own lines. All of them are used:
    on the development set, dropping the policies or the detail lost duplicates whose titles
    differ but whose attentional policies were copied from one another.

    Parameters
    ----------
    title, description : str
        The card's title and one- or two-sentence description.
    policies : sequence of str
        The attentional policies.
    detail : str, optional
        A longer explanation, when the card has one.

    Returns
    -------
    str

    Examples
    --------
    >>> card_text("Honest Care", "Say what is true, kindly.", ["MOMENTS when truth helps"])
    'Honest Care\\nSay what is true, kindly.\\nMOMENTS when truth helps'
    """
    parts = [title, description, *policies, detail]
    return "\n".join(p.strip() for p in parts if p and p.strip())


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Scale each row to unit L2 norm as float32; all-zero rows stay zero.

    Examples
    --------
    >>> normalize_rows(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    out = np.asarray(matrix, dtype=np.float32)
    if out.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {out.shape}")
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


# --- the offline default ----------------------------------------------------------------------


def _feature_id(feature: str) -> int:
    # crc32 rather than hash(): Python salts str hashes per process, vectors must not change.
    return zlib.crc32(feature.encode("utf-8"))


@lru_cache(maxsize=200_000)
def _char_ids(word: str) -> tuple[int, ...]:
    padded = f"<{word}>"
    return tuple(
        _feature_id("c:" + padded[i : i + n]) for n in (3, 4, 5) for i in range(len(padded) - n + 1)
    )


def _text_features(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Distinct feature ids of one text and how often each occurs."""
    words = _WORD.findall(text.casefold())
    ids: list[int] = [_feature_id("w:" + w) for w in words]
    ids += [_feature_id(f"b:{a} {b}") for a, b in zip(words, words[1:], strict=False)]
    for w in words:
        ids += _char_ids(w)
    return np.unique(np.asarray(ids, dtype=np.uint32), return_counts=True)


class LocalEmbedder:
    """Offline embedder: signed-hash TF-IDF of word 1-2-grams and in-word char 3-5-grams.

    Deterministic across processes and machines. Term weights are ``1 + ln(tf)`` times the
    smoothed IDF ``ln((1 + N) / (1 + df)) + 1``; features are hashed into `n_features` columns
    with a sign taken from the hash, so collisions cancel out on average instead of adding up.
    With the default 16384 columns (64 KB per card) development-set scores are within hashing
    noise of an unhashed vocabulary.

    Parameters
    ----------
    n_features : int, optional
        Vector length. Memory is ``4 * n_features`` bytes per card.

    Notes
    -----
    Without `with_corpus`, IDF comes from the texts of each `embed` call (see the module
    docstring). Characters are Unicode-aware, so cards in any language written with word
    separators work; scripts without spaces fall back to whole runs of letters.

    Examples
    --------
    >>> emb = LocalEmbedder()
    >>> v = emb.embed(["care for the child", "care for a child", "tax law details"])
    >>> v.shape, v.dtype.name
    ((3, 16384), 'float32')
    >>> bool(v[0] @ v[1] > v[0] @ v[2])
    True
    """

    def __init__(self, *, n_features: int = 16384) -> None:
        if n_features < 1:
            raise ValueError("n_features must be positive")
        self.n_features = n_features
        self.dim: int | None = n_features
        self.name = f"local-tfidf-hash{n_features}-v1"
        self._df_ids: np.ndarray | None = None
        self._df_counts: np.ndarray | None = None
        self._n_docs = 0

    @property
    def frozen(self) -> bool:
        """True when IDF comes from a fixed corpus (`with_corpus`), not from each call."""
        return self._df_ids is not None

    def with_corpus(self, corpus: Sequence[str]) -> LocalEmbedder:
        """A copy whose IDF is fixed to `corpus`, so separate `embed` calls agree.

        Parameters
        ----------
        corpus : sequence of str
            Typically the card texts of the deliberation. Features unseen in it count as
            occurring in no document (the highest weight).

        Returns
        -------
        LocalEmbedder
            A new embedder; this one is unchanged.
        """
        fitted = LocalEmbedder(n_features=self.n_features)
        fitted._df_ids, fitted._df_counts = _document_frequencies(
            [_text_features(t)[0] for t in corpus]
        )
        fitted._n_docs = len(corpus)
        return fitted

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed `texts`; see the class docstring for the weighting.

        Parameters
        ----------
        texts : sequence of str

        Returns
        -------
        numpy.ndarray
            Shape ``(len(texts), n_features)``, float32, unit rows (all zero for a text with
            no letters or digits).
        """
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not one string")
        features = [_text_features(t) for t in texts]
        if self._df_ids is None or self._df_counts is None:
            df_ids, df_counts = _document_frequencies([ids for ids, _ in features])
            n_docs = len(texts)
        else:
            df_ids, df_counts, n_docs = self._df_ids, self._df_counts, self._n_docs
        out = np.zeros((len(texts), self.n_features), dtype=np.float32)
        for row, (ids, tf) in enumerate(features):
            if ids.size == 0:
                continue
            df = _lookup(df_ids, df_counts, ids)
            weight = (1.0 + np.log(tf)) * (np.log((1.0 + n_docs) / (1.0 + df)) + 1.0)
            sign = np.where(ids & _SIGN_BIT, -1.0, 1.0)
            np.add.at(
                out[row], ids % np.uint32(self.n_features), (sign * weight).astype(np.float32)
            )
            norm = np.linalg.norm(out[row])
            if norm > 0:
                out[row] /= norm
        return out

    def __repr__(self) -> str:
        state = f"frozen on {self._n_docs} texts" if self.frozen else "IDF per call"
        return f"LocalEmbedder(n_features={self.n_features}, {state})"


def _document_frequencies(id_sets: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if not id_sets:
        return np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate(id_sets), return_counts=True)


def _lookup(keys: np.ndarray, counts: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Counts for `ids` from sorted `keys`, 0 where absent."""
    if keys.size == 0:
        return np.zeros(ids.shape, dtype=np.float64)
    pos = np.minimum(np.searchsorted(keys, ids), keys.size - 1)
    return np.where(keys[pos] == ids, counts[pos], 0).astype(np.float64)


# --- API-backed -------------------------------------------------------------------------------


class OpenAIEmbedder:
    """Embeddings from an OpenAI-compatible endpoint, through a callable the gateway provides.

    Parameters
    ----------
    embed_fn : callable
        ``embed_fn(texts: list[str]) -> list[list[float]]``, one vector per text in order; the
        LLM gateway batches, retries and logs. This class never talks to the network itself.
    model : str
        The embedding model's name, part of `name` so stored vectors say where they came from.

    Notes
    -----
    Similarity thresholds are specific to an embedder: a threshold tuned for `LocalEmbedder`
    does not carry over to an API model.

    Examples
    --------
    >>> fake = lambda texts: [[float(len(t)), 1.0] for t in texts]
    >>> emb = OpenAIEmbedder(fake, "test-model")
    >>> [round(x, 3) for x in emb.embed(["abc"])[0].tolist()], emb.dim, emb.name
    ([0.949, 0.316], 2, 'openai:test-model')
    """

    def __init__(self, embed_fn: Callable[[list[str]], list[list[float]]], model: str) -> None:
        self._embed_fn = embed_fn
        self.model = model
        self.name = f"openai:{model}"
        self.dim: int | None = None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed `texts` with one call of `embed_fn` and L2-normalise the rows.

        Raises
        ------
        ValueError
            When the provider returns the wrong number of vectors or vectors of mixed length.
        """
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not one string")
        batch = list(texts)
        if not batch:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        vectors = self._embed_fn(batch)
        if len(vectors) != len(batch):
            raise ValueError(f"asked for {len(batch)} embeddings, got {len(vectors)}")
        lengths = {len(v) for v in vectors}
        if len(lengths) != 1 or (self.dim is not None and lengths != {self.dim}):
            raise ValueError(f"embedding lengths {sorted(lengths)} do not match dim {self.dim}")
        matrix = normalize_rows(np.asarray(vectors, dtype=np.float64))
        self.dim = matrix.shape[1]
        return matrix


# --- search -----------------------------------------------------------------------------------


def cosine_top_k(
    matrix: np.ndarray, query_rows: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The `k` most similar rows of `matrix` for each query, best first.

    Rows are assumed L2-normalised, so the dot product is the cosine. Ties go to the lower
    row index, which keeps results deterministic.

    Parameters
    ----------
    matrix : numpy.ndarray
        Shape ``(n, d)``.
    query_rows : numpy.ndarray
        Either query vectors, shape ``(m, d)`` or ``(d,)``, or a 1-D integer array of row
        indices into `matrix`; with indices each query's own row is left out of its results
        (the "nearest other cards" case).
    k : int
        How many neighbours; fewer come back when fewer rows are available.

    Returns
    -------
    indices : numpy.ndarray
        Shape ``(m, k')`` of row indices into `matrix` (int64).
    similarities : numpy.ndarray
        Shape ``(m, k')`` of cosines (float32).

    Examples
    --------
    >>> m = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], dtype=np.float32)
    >>> idx, sim = cosine_top_k(m, np.array([0]), 2)
    >>> idx.tolist(), [round(s, 2) for s in sim[0].tolist()]
    ([[1, 2]], [0.8, 0.0])
    """
    if k < 0:
        raise ValueError("k must be >= 0")
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"matrix must be 2-D, got shape {matrix.shape}")
    query = np.asarray(query_rows)
    self_rows: np.ndarray | None = None
    if query.ndim == 1 and query.dtype.kind in "iu":
        self_rows = query.astype(np.int64)
        queries = matrix[self_rows]
    else:
        queries = np.atleast_2d(query).astype(np.float32)
        if queries.ndim != 2 or queries.shape[1] != matrix.shape[1]:
            raise ValueError(f"queries of shape {query.shape} do not match matrix {matrix.shape}")
    n = matrix.shape[0]
    kk = min(k, n - 1 if self_rows is not None else n)
    kk = max(kk, 0)
    m = queries.shape[0]
    indices = np.zeros((m, kk), dtype=np.int64)
    sims = np.zeros((m, kk), dtype=np.float32)
    if kk == 0:
        return indices, sims
    for start in range(0, m, _BLOCK):
        block = queries[start : start + _BLOCK] @ matrix.T
        if self_rows is not None:
            rows = np.arange(block.shape[0])
            block[rows, self_rows[start : start + _BLOCK]] = -np.inf
        for r, row in enumerate(block):
            kth = np.partition(row, n - kk)[n - kk]
            candidates = np.flatnonzero(row >= kth)  # all ties at the cut, ascending
            # lexsort's last key is primary: similarity descending, then index ascending
            top = candidates[np.lexsort((candidates, -row[candidates]))[:kk]]
            indices[start + r] = top
            sims[start + r] = row[top]
    return indices, sims
