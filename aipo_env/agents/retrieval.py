"""A Knowledge agent that retrieves entries of a knowledge base with BM25 (``bm25s``).

A knowledge base is a JSONL file, one entry per line::

    {"title": "Divisor count", "text": "If n = p^a q^b ... then n has (a+1)(b+1) divisors.",
     "tags": ["number theory", "divisors"]}

Each entry is indexed as its title, text and tags (tags twice, so that they weigh more), lower-cased,
English stop words removed and words stemmed (Snowball, via PyStemmer). An entry's score is

    score(entry) = BM25(query, entry) + context_weight * BM25(problem statement, entry)

so the question asked counts most and the problem breaks ties. The best ``top_k`` entries with a
positive score are returned as ``"Title: text"`` paragraphs, as many as fit the reply budget
(the first one is trimmed if it alone is too long). Entries a task brings (``Task.knowledge()``)
are searched too: they join the agent's entries in one index, built once per task.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
import Stemmer

from aipo_env.agents.base import Agent, AgentReply, ConsultRequest
from aipo_env.agents.model_agent import trim_reply
from aipo_env.agents.reference import bundled_knowledge
from aipo_env.tasks.loading import DataError

NO_MATCH = "No entry in the knowledge base matches that question."


def read_knowledge(path: str | Path) -> list[dict[str, Any]]:
    """The entries of a JSONL knowledge base.

    Raises:
        DataError: the file is missing, a line is not a JSON object, or an entry lacks a
            non-empty ``title`` or ``text`` (the message names the file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such knowledge base (a .jsonl file with title, text and tags)")
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}, line {number}: not valid JSON ({error.msg})") from None
        entries.append(_checked(entry, f"{path}, line {number}"))
    if not entries:
        raise DataError(f"{path}: the knowledge base has no entries")
    return entries


class KnowledgeIndex:
    """A BM25 index over knowledge entries.

    Args:
        entries: mappings with ``title``, ``text`` and optional ``tags``.
    """

    def __init__(self, entries: Sequence[Mapping[str, Any]]) -> None:
        self.entries = [_checked(entry, f"knowledge entry {i + 1}") for i, entry in enumerate(entries)]
        self._stemmer = Stemmer.Stemmer("english")
        self._bm25 = bm25s.BM25()
        if self.entries:
            documents = [_document(entry) for entry in self.entries]
            self._bm25.index(self._tokens(documents), show_progress=False)

    def scores(self, text: str) -> np.ndarray:
        """The BM25 score of every entry for ``text`` (zeros when no word matches)."""
        if not self.entries:
            return np.zeros(0)
        words = self._tokens([text])[0]
        if not words:
            return np.zeros(len(self.entries))
        return np.asarray(self._bm25.get_scores(words), dtype=float)

    def _tokens(self, texts: list[str]) -> list[list[str]]:
        return bm25s.tokenize(
            texts, stopwords="en", stemmer=self._stemmer, return_ids=False, show_progress=False
        )


class RetrievalKnowledge(Agent):
    """The Knowledge role answered by BM25 retrieval (needs no model and no reference access).

    Args:
        entries: the knowledge base; ``None`` = the bundled one.
        top_k: the most entries in one reply.
        context_weight: weight of the problem statement in the score (see the module docstring).
        task_knowledge: also search the task's own entries.
        max_reply_chars: the reply budget in characters.
    """

    name = "knowledge"
    reference_access = False

    def __init__(
        self,
        entries: Sequence[Mapping[str, Any]] | None = None,
        *,
        top_k: int = 3,
        context_weight: float = 0.3,
        task_knowledge: bool = True,
        max_reply_chars: int = 1024,
    ) -> None:
        if top_k < 1 or context_weight < 0 or max_reply_chars < 32:
            raise ValueError("top_k must be >= 1, context_weight >= 0 and max_reply_chars >= 32")
        self.index = KnowledgeIndex(entries if entries is not None else bundled_knowledge())
        self.top_k, self.context_weight = top_k, context_weight
        self.task_knowledge, self.max_reply_chars = task_knowledge, max_reply_chars
        self._task_indexes: dict[int, tuple[Any, KnowledgeIndex]] = {}
        self._lock = threading.Lock()

    def reply(self, request: ConsultRequest) -> AgentReply:
        ranked = self.search(request.query, request.question, self._index_for(request))
        if not ranked:
            return AgentReply(NO_MATCH)
        return AgentReply(self._format(ranked))

    def search(
        self, query: str, context: str = "", index: KnowledgeIndex | None = None
    ) -> list[dict[str, Any]]:
        """The best ``top_k`` entries of ``index`` (default: the agent's own) for ``query`` and ``context``."""
        index = index or self.index
        scores = index.scores(query)
        if self.context_weight and context:
            scores = scores + self.context_weight * index.scores(context)
        order = sorted(range(len(scores)), key=lambda position: (-scores[position], position))
        return [index.entries[position] for position in order[: self.top_k] if scores[position] > 0]

    def _format(self, entries: Sequence[Mapping[str, Any]]) -> str:
        paragraphs: list[str] = []
        used = 0
        for entry in entries:
            paragraph = f"{entry['title']}: {entry['text']}"
            if used + len(paragraph) + 1 > self.max_reply_chars:
                if not paragraphs:
                    paragraphs.append(trim_reply(paragraph, self.max_reply_chars))
                break
            paragraphs.append(paragraph)
            used += len(paragraph) + 1
        return "\n".join(paragraphs)

    def _index_for(self, request: ConsultRequest) -> KnowledgeIndex:
        """The agent's entries plus the task's, indexed together once per task (BM25 weights
        depend on the whole collection, so separate indexes would not rank comparably)."""
        if not self.task_knowledge:
            return self.index
        with self._lock:
            cached = self._task_indexes.get(id(request.task))
            # The task object is kept with its index so that its id cannot be reused meanwhile.
            if cached is None or cached[0] is not request.task:
                extra = list(request.task.knowledge())
                index = KnowledgeIndex([*self.index.entries, *extra]) if extra else self.index
                cached = (request.task, index)
                self._task_indexes[id(request.task)] = cached
            return cached[1]


def _document(entry: Mapping[str, Any]) -> str:
    tags = " ".join(entry.get("tags", ()))
    return f"{entry['title']} {entry['text']} {tags} {tags}"


def _checked(entry: Any, where: str) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise DataError(f"{where}: an entry must be a JSON object with title, text and tags")
    for field in ("title", "text"):
        if not isinstance(entry.get(field), str) or not entry[field].strip():
            raise DataError(f"{where}: missing or empty field {field!r}")
    tags = entry.get("tags", [])
    if isinstance(tags, str) or not all(isinstance(tag, str) for tag in tags):
        raise DataError(f"{where}: 'tags' must be a list of strings")
    return {"title": entry["title"].strip(), "text": entry["text"].strip(), "tags": list(tags)}
