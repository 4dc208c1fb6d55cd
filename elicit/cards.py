"""Values-card rules: the tool arguments the interviewer submits, and the checks a card must pass.

A card (DESIGN.md 2, 5.0) has a short title, a one-or-two-sentence description and 3-7
policies. Each policy starts with an ALL-CAPS plural noun phrase ("MOMENTS", "SMALL STEPS")
followed by a lowercase qualifier, is general (no names from the participant's story), positive,
plain, and describes what someone pays attention to rather than a goal or a rule.

`check_card` returns `Problem`s phrased so that a participant (or the model, on a re-ask) can act
on them. Blocking problems stop a card from being confirmed; the others are advice shown beside
the card, because a participant's own wording should win over our style preferences.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

TITLE_MIN_WORDS = 2
TITLE_MAX_WORDS = 5
TITLE_MAX_CHARS = 60
DESCRIPTION_MAX_SENTENCES = 2
DESCRIPTION_MAX_CHARS = 320
POLICIES_MIN = 3
POLICIES_MAX = 7
POLICY_MAX_CHARS = 220

CARD_TOOL_NAME = "submit_values_card"

# Kept small and hand-written: these bytes go with every interview call, so every token counts
# and they must never change between calls (provider prompt caching keys on the exact prefix).
CARD_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": CARD_TOOL_NAME,
        "description": "Show the participant their values card (first draft or a revision).",
        "parameters": {
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "description": {"type": "string"},
                "policies": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["title", "description", "policies"],
        },
    },
}

# Plurals that do not end in S; the head noun of a policy's caps phrase may be one of these.
_IRREGULAR_PLURALS = frozenset(
    {"PEOPLE", "CHILDREN", "MEN", "WOMEN", "DATA", "CRITERIA", "PHENOMENA", "FEET", "TEETH"}
)
# Words ending in S that are not plurals of a noun (so "AWARENESS when ..." is flagged).
_S_SINGULARS = frozenset({"THIS", "ITS", "HIS", "HERS", "YOURS", "OURS", "THEIRS", "LESS", "IS"})
_RULE_WORDS = frozenset(
    {"SHOULD", "MUST", "NEVER", "ALWAYS", "DON'T", "DONT", "DO", "AVOID", "STOP", "BE", "MAKE"}
)
_PREPOSITIONS = frozenset({"OF", "FOR", "IN", "TO", "WITH", "FROM", "ABOUT", "AT", "ON", "BY"})
_NEGATIVE_WORDS = frozenset({"NO", "NOT", "NOTHING", "LACK", "ABSENCE", "NONE"})
_BANNED = re.compile(r"\b(meaningful(?:ly|ness)?|deep(?:ly|er|est)?)\b", re.IGNORECASE)
# A caps phrase: one or more ALL-CAPS words (2+ letters, or "A"/"I" after the first word).
_CAPS_WORD = r"[A-Z][A-Z0-9'’\-]+"
_POLICY = re.compile(rf"^(?P<caps>{_CAPS_WORD}(?:\s+(?:{_CAPS_WORD}|A|I))*)(?P<rest>.*)$")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")


@dataclass(frozen=True)
class Problem:
    """One thing to fix. `field` is title/description/policies/policy; `index` the policy's
    position (0-based) for policy problems; `blocking` problems stop confirmation."""

    field: str
    message: str
    index: int | None = None
    blocking: bool = True

    def __str__(self) -> str:
        where = f"policy {self.index + 1}" if self.index is not None else self.field
        return f"{where}: {self.message}"


class CardArgs(BaseModel):
    """The arguments of the card tool, as the model sends them (whitespace trimmed)."""

    model_config = ConfigDict(extra="ignore")

    title: str
    description: str
    policies: list[str]

    @field_validator("title", "description")
    @classmethod
    def _strip(cls, v: str) -> str:
        return " ".join(v.split())

    @field_validator("policies", mode="before")
    @classmethod
    def _clean_policies(cls, v: Any) -> Any:
        if isinstance(v, str):  # some models send one string with a policy per line
            v = v.splitlines()
        if isinstance(v, list):
            return [" ".join(str(p).split()).lstrip("-*• ").strip() for p in v if str(p).strip()]
        return v


def split_policies(text: str) -> list[str]:
    """Policies typed one per line (a textarea) -> a clean list; list markers removed."""
    out = []
    for line in text.splitlines():
        line = " ".join(line.split()).lstrip("-*•0123456789.) ").strip()
        if line:
            out.append(line)
    return out


def _words(text: str) -> list[str]:
    return re.findall(r"[\w'’-]+", text)


def _sentences(text: str) -> int:
    text = text.strip()
    if not text:
        return 0
    ends = len(_SENTENCE_END.findall(text))
    # A final sentence without a full stop still counts as a sentence.
    return ends + (0 if _SENTENCE_END.search(text[-1:] + " ") else 1)


def _banned_word(text: str) -> str | None:
    m = _BANNED.search(text)
    return m.group(1) if m else None


def _name_hits(text: str, names: Iterable[str]) -> list[str]:
    hits = []
    for name in names:
        # Case-sensitive: "College" from a story is a name-like detail, "college" is a word.
        if name and re.search(rf"\b{re.escape(name)}\b", text):
            hits.append(name)
    return hits


def policy_problems(
    policy: str, *, index: int | None = None, story_names: Sequence[str] = ()
) -> list[Problem]:
    """What is wrong with one policy (used for live checks while a participant types)."""
    p = " ".join(policy.split())
    found: list[Problem] = []

    def add(message: str, *, blocking: bool = True) -> None:
        found.append(Problem("policy", message, index=index, blocking=blocking))

    if not p:
        add("this line is empty.")
        return found
    if len(p) > POLICY_MAX_CHARS:
        add(f"shorten it to at most {POLICY_MAX_CHARS} characters (it has {len(p)}).")
    m = _POLICY.match(p)
    if m is None:
        add(
            "start with a few words in CAPITALS naming what you notice, in the plural, "
            'like "MOMENTS when ..." or "OPPORTUNITIES for ...".'
        )
    else:
        caps_words = m.group("caps").split()
        rest = m.group("rest").strip()
        if not rest or not re.search(r"[a-z]", rest):
            add(
                "after the words in CAPITALS, say in normal lowercase words what exactly you "
                'notice, e.g. "MOMENTS when the person hesitates".'
            )
        elif not re.match(r"^[,:;–—-]?\s*[\"'“‘(]?[a-z0-9]", rest):
            add('continue in lowercase after the CAPITALS, e.g. "CHOICES that ...".')
        head_first = caps_words[0].replace("’", "'")
        # The head noun comes before a preposition: "SOURCES OF COMFORT" is about SOURCES.
        nouns = [w.replace("’", "'") for w in caps_words]
        cut = next((i for i, w in enumerate(nouns) if i and w in _PREPOSITIONS), len(nouns))
        head = nouns[cut - 1]
        if head_first in _RULE_WORDS:
            add(
                "describe what you pay attention to, not a rule or a goal: instead of "
                f'"{caps_words[0]} ...", name what you notice, e.g. "MOMENTS when ...".',
                blocking=False,
            )
        elif head_first in _NEGATIVE_WORDS:
            add(
                "say it positively: name what you look for rather than what is missing.",
                blocking=False,
            )
        elif not (
            head in _IRREGULAR_PLURALS
            or (head.endswith("S") and not head.endswith("SS") and head not in _S_SINGULARS)
        ):
            add(
                f'use a plural for the word in CAPITALS ("{head}" looks singular), '
                "e.g. MOMENTS, CHOICES, FEELINGS, PEOPLE.",
                blocking=False,
            )
    word = _banned_word(p)
    if word:
        add(f'"{word}" is vague here; say what it looks like in practice.', blocking=False)
    for name in _name_hits(p, story_names):
        add(
            f'leave out "{name}": the card should fit anyone, so use a general word '
            '(e.g. "a friend", "the person") instead.'
        )
    return found


def check_card(
    title: str,
    description: str,
    policies: Sequence[str],
    *,
    story_names: Sequence[str] = (),
) -> list[Problem]:
    """Every problem of a card, in reading order. An empty list means the card follows the rules.

    >>> check_card("Grounded honesty", "Being truthful so they can decide.",
    ...            ["MOMENTS when a fact helps them choose", "SIGNS they feel safe",
    ...             "CHANCES to name my doubt"])
    []
    """
    found: list[Problem] = []
    t = " ".join(title.split())
    n_words = len(_words(t))
    if not t:
        found.append(Problem("title", "give the card a short title (2 to 5 words)."))
    elif n_words < TITLE_MIN_WORDS or n_words > TITLE_MAX_WORDS:
        found.append(Problem("title", f"use 2 to 5 words for the title (it has {n_words})."))
    elif len(t) > TITLE_MAX_CHARS:
        found.append(
            Problem("title", f"shorten the title to at most {TITLE_MAX_CHARS} characters.")
        )
    d = " ".join(description.split())
    if not d:
        found.append(
            Problem("description", "add one or two sentences saying what this value is about.")
        )
    else:
        if _sentences(d) > DESCRIPTION_MAX_SENTENCES:
            found.append(Problem("description", "keep the description to one or two sentences."))
        if len(d) > DESCRIPTION_MAX_CHARS:
            found.append(
                Problem(
                    "description",
                    f"shorten the description to at most {DESCRIPTION_MAX_CHARS} characters "
                    f"(it has {len(d)}).",
                )
            )
    for fname, text in (("title", t), ("description", d)):
        word = _banned_word(text)
        if word:
            found.append(
                Problem(fname, f'"{word}" is vague here; say it more concretely.', blocking=False)
            )
        for name in _name_hits(text, story_names):
            found.append(Problem(fname, f'leave out "{name}": the card should fit anyone.'))
    items = [" ".join(p.split()) for p in policies if p.strip()]
    if len(items) < POLICIES_MIN:
        found.append(
            Problem(
                "policies",
                f"list at least {POLICIES_MIN} things you pay attention to (there are "
                f"{len(items)}).",
            )
        )
    elif len(items) > POLICIES_MAX:
        found.append(
            Problem(
                "policies",
                f"keep at most {POLICIES_MAX} things you pay attention to (there are "
                f"{len(items)}); merge or drop some.",
            )
        )
    for i, p in enumerate(items):
        found += policy_problems(p, index=i, story_names=story_names)
    return found


def blocking(problems: Iterable[Problem]) -> list[Problem]:
    """The problems that stop a card from being confirmed."""
    return [p for p in problems if p.blocking]


_NOT_NAMES = frozenset(
    """I I'm I've I'd I'll AI Ok OK Okay Yes No Hi Hello Thanks Thank Mom Mum Dad God Lord Bible
    Christian Christians Muslim Jewish Hindu Buddhist Catholic Protestant Church English
    Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May
    June July August September October November December Internet Google ChatGPT""".split()
)


def story_names(texts: Iterable[str], *, ignore: str = "") -> list[str]:
    """Likely proper names in a participant's messages: capitalised words in mid-sentence
    that are not common capitalised words and do not occur in `ignore` (the question text).

    A heuristic, so it errs on the side of few names: a false positive would stop a card.

    >>> story_names(["My sister Maria and I argued.", "Then Maria called."])
    ['Maria']
    """
    ignored = {w.lower() for w in _words(ignore)}
    seen: dict[str, None] = {}
    for text in texts:
        for sentence in re.split(r"(?<=[.!?])\s+|\n+", text):
            words = re.findall(r"[A-Za-z][\w'’-]*", sentence)
            for w in words[1:]:  # the first word of a sentence is capitalised anyway
                if (
                    len(w) > 1
                    and w[0].isupper()
                    and not w.isupper()
                    and w not in _NOT_NAMES
                    and w.lower() not in ignored
                ):
                    seen.setdefault(w, None)
    return list(seen)
