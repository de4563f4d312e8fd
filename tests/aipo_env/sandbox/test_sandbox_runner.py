"""The sandbox runs programs, returns their output and status, and cleans up after them."""

from __future__ import annotations

import tempfile

import pytest

from aipo_env.sandbox import Job, Limits, Sandbox


def test_program_output_status_stdin_and_files_come_back(sandbox):
    result = sandbox.run(
        "import sys\ndata = open('data.txt').read()\nprint(data + sys.stdin.read())\n"
        "print('warning', file=sys.stderr)\nsys.exit(3)",
        stdin="world",
        files={"data.txt": "hello "},
    )
    assert result.status == "exit" and result.returncode == 3
    assert result.stdout == "hello world\n" and result.stderr == "warning\n"
    assert result.isolation == sandbox.isolation.mode


def test_exceptions_show_the_programs_traceback_only(sandbox):
    result = sandbox.run("def f():\n    return 1 / 0\nf()")
    assert result.status == "exit" and result.returncode == 1
    assert "ZeroDivisionError" in result.stderr and 'File "main.py", line 2, in f' in result.stderr
    assert "bootstrap" not in result.stderr


def test_environment_is_scrubbed(sandbox, monkeypatch):
    monkeypatch.setenv("AIPO_TEST_TOKEN", "do-not-leak")
    result = sandbox.run("import os\nprint(sorted(os.environ))")
    assert result.ok
    assert "AIPO_TEST_TOKEN" not in result.stdout
    assert set(eval(result.stdout)) <= {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "PWD"}


def test_working_directory_is_fresh_and_removed_even_if_locked(sandbox, monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    program = (
        "import os\nprint(sorted(os.listdir('.')))\nos.mkdir('locked')\n"
        "open('locked/file', 'w').write('x')\nos.chmod('locked', 0)"
    )
    first, second = sandbox.run(program), sandbox.run(program)
    assert first.ok and second.ok
    assert first.stdout == second.stdout == "['main.py']\n"
    assert not [path for path in tmp_path.iterdir() if path.name.startswith("aipo-sandbox-")]


def test_run_many_keeps_order_and_runs_workers_in_parallel():
    program = "import time\nstart = time.time()\ntime.sleep(0.4)\nprint(start, time.time(), {index})"
    with Sandbox(Limits(wall_seconds=10), workers=2) as box:
        results = box.run_many([Job(program.replace("{index}", str(i))) for i in range(4)])
    spans = [tuple(float(x) for x in result.stdout.split()) for result in results]
    assert [int(span[2]) for span in spans] == [0, 1, 2, 3]
    overlaps = [sum(s[0] < t[1] and t[0] < s[1] for s in spans) for t in spans]
    # each span overlaps itself; two workers means some pair overlaps and no three do at once
    assert max(overlaps) >= 2
    assert all(sum(s[0] <= t[0] < s[1] for s in spans) <= 2 for t in spans), (
        f"more than two programs ran at once: {spans}"
    )


def test_run_many_accepts_plain_sources(sandbox):
    results = sandbox.run_many(["print(1)", "print(2)"])
    assert [result.stdout for result in results] == ["1\n", "2\n"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("wall_seconds", 0), ("memory_mb", 8), ("max_processes", -1), ("max_open_files", 4)],
)
def test_bad_limits_are_rejected_with_the_field_named(field, value):
    with pytest.raises(ValueError, match=field):
        Limits(**{field: value})


def test_bad_sandbox_arguments_are_rejected():
    with pytest.raises(ValueError, match="workers"):
        Sandbox(workers=0)
    with pytest.raises(ValueError, match="isolation"):
        Sandbox(isolation="docker")  # type: ignore[arg-type]


def test_file_names_must_stay_inside_the_working_directory(sandbox):
    with pytest.raises(ValueError, match="inside the working directory"):
        sandbox.run("pass", files={"../escape.txt": "x"})


def test_file_size_limit_stops_big_files(sandbox):
    result = sandbox.run("open('big', 'wb').write(b'x' * (40 * 2**20))", limits=Limits(max_file_mb=1))
    # Python ignores SIGXFSZ, so the write fails with EFBIG
    assert result.status == "exit" and "File too large" in result.stderr
