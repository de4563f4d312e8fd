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


def test_clean_up_never_follows_a_symlink_into_the_host(sandbox, tmp_path):
    host = tmp_path / "host-dir"
    host.mkdir(mode=0o755)
    host.chmod(0o755)
    (host / "keep.txt").write_text("keep")
    program = (
        f"import os\nos.mkdir('locked')\nos.symlink({str(host)!r}, 'locked/link')\nos.chmod('locked', 0)\n"
    )
    result = sandbox.run(program)
    assert result.ok, result.stderr
    assert oct(host.stat().st_mode & 0o777) == "0o755"
    assert (host / "keep.txt").read_text() == "keep"


def test_permission_repair_before_the_second_removal_skips_links(tmp_path, monkeypatch):
    """The pass that runs when the first removal failed (a parent that is not root, a locked
    directory) gives permissions back to real directories only, never to a link's target."""
    from aipo_env.sandbox import runner

    host = tmp_path / "host-dir"
    host.mkdir()
    host.chmod(0o755)
    workdir = tmp_path / "work"
    (workdir / "locked").mkdir(parents=True)
    (workdir / "locked" / "link").symlink_to(host)
    (workdir / "locked").chmod(0)
    calls = []
    real_rmtree = runner.shutil.rmtree

    def first_fails(path, ignore_errors=False):
        calls.append(path)
        if len(calls) > 1:
            real_rmtree(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(runner.shutil, "rmtree", first_fails)
    runner.remove_tree(workdir)
    assert len(calls) == 2 and not workdir.exists()
    assert oct(host.stat().st_mode & 0o777) == "0o755"


def test_total_written_is_bounded_not_only_each_file(sandbox):
    if sandbox.isolation.mode != "bwrap":
        pytest.skip("the total is bounded in bwrap mode (sized tmpfs); other modes bound each file")
    limits = Limits(max_file_mb=16, disk_mb=24, wall_seconds=10)
    program = (
        "written = 0\n"
        "for where in ('.', '/tmp'):\n"
        "    for index in range(4):\n"
        "        try:\n"
        "            with open(f'{where}/big{index}', 'wb') as handle:\n"
        "                for _ in range(16):\n"
        "                    handle.write(b'x' * 1024 * 1024)\n"
        "                    written += 1\n"
        "        except OSError:\n"
        "            pass\n"
        "print(written)\n"
    )
    result = sandbox.run(program, limits=limits)
    assert result.ok, result.stderr
    assert int(result.stdout) <= 2 * 24  # MiB: the working directory and /tmp, 24 MiB each
