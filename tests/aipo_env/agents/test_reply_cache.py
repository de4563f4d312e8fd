"""The on-disk reply cache: keys, round trips, crashes mid-write, a corrupt file."""

from __future__ import annotations

import logging
import pickle
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from aipo_env.agents.cache import ReplyCache, cache_key

MESSAGES = [{"role": "user", "content": "Is 196 = 14^2?"}]
GREEDY = {"temperature": 0.0, "max_tokens": 16}


def test_key_depends_on_backend_model_messages_and_sampling():
    key = cache_key("openai", "m", MESSAGES, GREEDY)
    assert key == cache_key("openai", "m", [dict(MESSAGES[0])], dict(reversed(GREEDY.items())))
    others = [
        cache_key("transformers", "m", MESSAGES, GREEDY),
        cache_key("openai", "m2", MESSAGES, GREEDY),
        cache_key("openai", "m", [{"role": "user", "content": "Is 196 = 13^2?"}], GREEDY),
        cache_key("openai", "m", MESSAGES, {**GREEDY, "max_tokens": 17}),
    ]
    assert key not in others and len(set(others)) == 4


def test_entries_survive_reopening_and_pickling(tmp_path):
    cache = ReplyCache(tmp_path / "sub" / "c.sqlite")
    cache.put("k", {"text": "Correct.", "finish_reason": "stop"})
    cache.close()
    copy = pickle.loads(pickle.dumps(ReplyCache(tmp_path / "sub" / "c.sqlite")))
    assert copy.get("k") == {"text": "Correct.", "finish_reason": "stop"}
    assert copy.get("missing") is None and copy.count() == 1


_WRITER = textwrap.dedent(
    """
    import sys
    from aipo_env.agents.cache import ReplyCache
    cache = ReplyCache(sys.argv[1])
    cache.put("committed", {"text": "kept"})
    print("ready", flush=True)
    number = 0
    while True:
        cache.put(f"k{number}", {"text": "x" * 20000, "number": number})
        number += 1
    """
)


@pytest.mark.timeout(60)
def test_a_process_killed_mid_write_leaves_only_complete_entries(tmp_path):
    path = tmp_path / "c.sqlite"
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    time.sleep(0.5)  # thousands of writes are under way
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=10)
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    cache = ReplyCache(path)
    assert cache.get("committed") == {"text": "kept"}
    count = cache.count()
    assert count > 1
    for number in range(count - 1):  # every entry written before the kill is whole
        assert cache.get(f"k{number}") == {"text": "x" * 20000, "number": number}
    cache.put("after", {"text": "still writable"})
    assert cache.get("after") == {"text": "still writable"}


def test_an_uncommitted_write_is_invisible_after_a_crash(tmp_path):
    path = tmp_path / "c.sqlite"
    script = textwrap.dedent(
        """
        import os, sys, sqlite3
        from aipo_env.agents.cache import ReplyCache
        cache = ReplyCache(sys.argv[1])
        cache.put("before", {"text": "kept"})
        connection = sqlite3.connect(sys.argv[1])
        connection.execute("BEGIN")
        connection.execute("INSERT INTO replies VALUES ('torn', '{\\"text\\": ')")
        os._exit(1)  # dies inside the transaction
        """
    )
    subprocess.run([sys.executable, "-c", script, str(path)], timeout=30, check=False)
    cache = ReplyCache(path)
    assert cache.get("before") == {"text": "kept"} and cache.get("torn") is None


def test_a_corrupt_cache_file_is_reported_once_and_treated_as_empty(tmp_path, caplog):
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    cache = ReplyCache(path)
    with caplog.at_level(logging.WARNING):
        assert cache.get("k") is None
        cache.put("k", {"text": "x"})
        assert cache.get("k") is None
    assert sum("unusable" in record.message for record in caplog.records) == 1
