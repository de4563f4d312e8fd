"""BM25 retrieval for the Knowledge role: ranking, budget, task knowledge, bad knowledge files."""

from __future__ import annotations

import json

import pytest

from aipo_env.agents import AgentsConfig, build_agents
from aipo_env.agents.retrieval import NO_MATCH, RetrievalKnowledge, read_knowledge
from aipo_env.tasks.loading import DataError

ENTRIES = [
    {
        "title": "Divisor count",
        "text": "If n = p^a q^b with p, q prime, n has (a+1)(b+1) divisors.",
        "tags": ["number theory", "divisors"],
    },
    {
        "title": "Pythagorean theorem",
        "text": "In a right triangle the squares of the legs add up to the square of the hypotenuse.",
        "tags": ["geometry", "triangle"],
    },
    {
        "title": "Sum of an arithmetic series",
        "text": "The sum of n terms is n times the mean of the first and last term.",
        "tags": ["series", "sum"],
    },
    {
        "title": "Prime factorisation",
        "text": "Every integer above 1 is a product of primes in exactly one way, up to order.",
        "tags": ["number theory", "primes", "factorisation"],
    },
]


def test_the_best_matching_entry_comes_first(make_request):
    agent = RetrievalKnowledge(ENTRIES, top_k=1)
    assert agent.reply(make_request("knowledge", "How do I count divisors?")).text.startswith(
        "Divisor count:"
    )
    hypotenuse = agent.reply(make_request("knowledge", "What is the hypotenuse of a right triangle?")).text
    assert hypotenuse.startswith("Pythagorean theorem:")


def test_stemming_matches_word_forms_and_the_problem_breaks_ties(make_request):
    agent = RetrievalKnowledge(ENTRIES, top_k=2)
    ranked = agent.search("factorising into primes", context="")
    assert ranked[0]["title"] == "Prime factorisation"
    # "number theory" matches two entries equally; the problem statement (divisors of 196) decides.
    tied = agent.search("number theory", context="How many divisors does 196 have?")
    assert [entry["title"] for entry in tied] == ["Divisor count", "Prime factorisation"]


def test_replies_hold_at_most_top_k_entries_within_the_budget(make_request):
    query = "sum of primes in a right triangle series divisors"
    three = RetrievalKnowledge(ENTRIES, top_k=3).reply(make_request("knowledge", query)).text
    assert len(three.splitlines()) == 3
    small = (
        RetrievalKnowledge(ENTRIES, top_k=3, max_reply_chars=100).reply(make_request("knowledge", query)).text
    )
    assert len(small) <= 100 and len(small.splitlines()) == 1
    tiny = (
        RetrievalKnowledge(ENTRIES, top_k=3, max_reply_chars=40).reply(make_request("knowledge", query)).text
    )
    assert len(tiny) <= 40 and tiny.endswith("[trimmed]")


def test_no_match_says_so(make_request):
    agent = RetrievalKnowledge(ENTRIES, context_weight=0.0)
    assert agent.reply(make_request("knowledge", "zebra xylophone")).text == NO_MATCH


def test_entries_of_the_task_are_searched_too(make_request):
    request = make_request("knowledge", "what is a wombat?")
    request.task.knowledge = lambda: [{"title": "Wombat", "text": "A wombat is a marsupial.", "tags": []}]
    assert RetrievalKnowledge(ENTRIES).reply(request).text.startswith("Wombat:")
    assert "Wombat" not in RetrievalKnowledge(ENTRIES, task_knowledge=False).reply(request).text


def test_bad_knowledge_files_name_the_line(tmp_path):
    path = tmp_path / "kb.jsonl"
    path.write_text(json.dumps(ENTRIES[0]) + "\n{not json\n")
    with pytest.raises(DataError, match="kb.jsonl, line 2: not valid JSON"):
        read_knowledge(path)
    path.write_text(json.dumps({"title": "No text"}) + "\n")
    with pytest.raises(DataError, match="line 1: missing or empty field 'text'"):
        read_knowledge(path)
    with pytest.raises(DataError, match="no such knowledge base"):
        read_knowledge(tmp_path / "missing.jsonl")


def test_a_config_builds_the_retrieval_agent_from_a_file(tmp_path, make_request):
    path = tmp_path / "kb.jsonl"
    path.write_text("\n".join(json.dumps(entry) for entry in ENTRIES) + "\n")
    config = AgentsConfig.model_validate(
        {"knowledge": {"backend": {"kind": "retrieval", "knowledge_path": str(path), "top_k": 1}}}
    )
    agents = build_agents(config, ("verify", "knowledge", "reasoning"))
    assert set(agents) == {"knowledge"}
    assert (
        agents["knowledge"]
        .reply(make_request("knowledge", "right triangle legs"))
        .text.startswith("Pythagorean")
    )
    wrong_role = AgentsConfig.model_validate({"verify": {"backend": {"kind": "retrieval"}}})
    with pytest.raises(ValueError, match="knowledge role only"):
        build_agents(wrong_role, ("verify", "knowledge", "reasoning"))
