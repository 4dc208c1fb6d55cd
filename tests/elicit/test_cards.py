"""Card rules: what passes, what each problem says, the tool schema, name detection."""

from __future__ import annotations

import json

import pytest

from elicit.cards import (
    CARD_TOOL,
    CardArgs,
    blocking,
    check_card,
    policy_problems,
    split_policies,
    story_names,
)
from tests.llm_server import valid_card

GOOD_POLICIES = [
    "MOMENTS when a plain fact would help them choose for themselves",
    "SMALL STEPS they could take today without deciding everything",
    "FEELINGS of relief that show what they really want",
]


def messages(problems: list) -> str:
    return " | ".join(str(p) for p in problems)


def test_check_card_good_card_has_no_problems() -> None:
    assert (
        check_card("Room to decide", "Helping them see their own way forward.", GOOD_POLICIES) == []
    )


def test_check_card_scripted_server_card_passes() -> None:
    card = valid_card()
    assert check_card(card["title"], card["description"], card["policies"]) == []


@pytest.mark.parametrize(
    ("title", "fragment"),
    [
        ("", "short title"),
        ("Honesty", "2 to 5 words"),
        ("A very long title with far too many words", "2 to 5 words"),
        ("Extraordinarily-hyphenated-incomprehensibly-elongated-words " * 1 + "here", "characters"),
    ],
)
def test_check_card_title_rules(title: str, fragment: str) -> None:
    problems = check_card(title, "One sentence.", GOOD_POLICIES)
    assert any(p.field == "title" and fragment in p.message for p in problems), messages(problems)
    assert blocking(problems)


def test_check_card_description_one_or_two_sentences() -> None:
    assert check_card("Room to decide", "One. Two.", GOOD_POLICIES) == []
    problems = check_card("Room to decide", "One. Two. Three.", GOOD_POLICIES)
    assert [p.field for p in problems] == ["description"]
    assert "one or two sentences" in problems[0].message
    long = "word " * 80
    assert any("at most" in p.message for p in check_card("Room to decide", long, GOOD_POLICIES))


def test_check_card_empty_description_is_blocking() -> None:
    problems = check_card("Room to decide", "  ", GOOD_POLICIES)
    assert problems and problems[0].field == "description" and problems[0].blocking


@pytest.mark.parametrize("n", [0, 2, 8])
def test_check_card_needs_three_to_seven_policies(n: int) -> None:
    policies = [f"MOMENTS when thing number {i} happens" for i in range(n)]
    problems = check_card("Room to decide", "One sentence.", policies)
    assert [p.field for p in problems] == ["policies"]
    assert ("at least 3" if n < 3 else "at most 7") in problems[0].message


@pytest.mark.parametrize(
    "policy",
    [
        "MOMENTS when the person hesitates",
        "OPPORTUNITIES for the user to reach their own conclusion",
        "SMALL STEPS that fit into an ordinary day",
        "PEOPLE who could stand beside them",
        "CHANCES, however small, to rest",
        "SOURCES OF COMFORT that are already in their life",
    ],
)
def test_policy_problems_accepts_caps_plural_then_lowercase(policy: str) -> None:
    assert policy_problems(policy) == []


@pytest.mark.parametrize(
    ("policy", "fragment", "is_blocking"),
    [
        ("moments when they hesitate", "CAPITALS", True),
        ("MOMENTS", "lowercase", True),
        ("MOMENTS WHEN THEY HESITATE", "lowercase", True),
        ("Moments when they hesitate", "CAPITALS", True),
        ("AWARENESS of how they feel", "plural", False),
        ("NEVER lie to the user", "not a rule", False),
        ("SHOULD tell them the truth", "not a rule", False),
        ("NO pressure on the person", "positively", False),
        ("MOMENTS of meaningful connection", "meaningful", False),
        ("CONVERSATIONS that go deep", "deep", False),
        ("MOMENTS when " + "x" * 230, "at most", True),
    ],
)
def test_policy_problems_plain_actionable_messages(
    policy: str, fragment: str, is_blocking: bool
) -> None:
    problems = policy_problems(policy, index=1)
    assert any(fragment in p.message for p in problems), messages(problems)
    hit = next(p for p in problems if fragment in p.message)
    assert hit.blocking is is_blocking
    assert str(hit).startswith("policy 2:")


def test_check_card_names_from_the_story_are_refused() -> None:
    policies = [*GOOD_POLICIES[:2], "MOMENTS when Maria needs a friend"]
    problems = check_card("Room for Maria", "One sentence.", policies, story_names=["Maria"])
    assert {p.field for p in problems} == {"title", "policy"}
    assert all(p.blocking and '"Maria"' in p.message for p in problems)


def test_check_card_meaningful_and_deep_in_title_are_advice() -> None:
    problems = check_card("Deep care", "A meaningful way to help.", GOOD_POLICIES)
    assert {(p.field, p.blocking) for p in problems} == {("title", False), ("description", False)}


def test_story_names_finds_mid_sentence_names_only() -> None:
    texts = ["Yesterday my friend Tom said no.", "I asked God. Then Tom and Mom left.", "Okay"]
    assert story_names(texts) == ["Tom"]
    assert story_names(["I met Christian friends."], ignore="I am a Christian girl") == []


def test_split_policies_drops_markers_and_blanks() -> None:
    text = "- MOMENTS when a\n\n2. CHOICES that b\n•  FEELINGS of c  \n"
    assert split_policies(text) == ["MOMENTS when a", "CHOICES that b", "FEELINGS of c"]


def test_card_args_cleans_whitespace_and_accepts_lines() -> None:
    args = CardArgs.model_validate(
        {"title": " Room  to decide ", "description": "x", "policies": "- A\n- B"}
    )
    assert args.title == "Room to decide"
    assert args.policies == ["A", "B"]


def test_card_tool_schema_matches_the_model_and_stays_small() -> None:
    params = CARD_TOOL["function"]["parameters"]
    assert set(params["properties"]) == set(CardArgs.model_fields)
    assert set(params["required"]) == set(CardArgs.model_fields)
    assert len(json.dumps(CARD_TOOL)) < 500


def test_story_names_match_only_as_names() -> None:
    policies = [*GOOD_POLICIES[:2], "MOMENTS when college feels like the only path"]
    assert check_card("Room to decide", "One sentence.", policies, story_names=["College"]) == []
