"""The total memory bound: a memory cgroup per execution counts what no per-process limit sees."""

from __future__ import annotations

import os
import warnings

import pytest

from aipo_env.sandbox import Limits, SandboxWarning
from aipo_env.sandbox import cgroup as cgroup_module


@pytest.fixture
def cgroups():
    """This process's memory cgroup; the test is skipped where the machine has no usable one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SandboxWarning)
        found = cgroup_module.memory_cgroups()
    if found is None:
        pytest.skip(f"no usable memory cgroup here: {cgroup_module._detect()}")
    return found


def _ours(cgroups: cgroup_module.MemoryCgroups) -> list[str]:
    """The execution cgroups this process has now."""
    prefix = f"aipo-{os.getpid()}-"
    return [entry.name for entry in cgroups.parent.iterdir() if entry.name.startswith(prefix)]


def test_a_tmpfs_file_past_the_total_is_stopped_and_the_cgroup_removed(sandbox, cgroups):
    # /tmp may hold 512 MiB, the execution 128: the file's pages count against the cgroup
    limits = Limits(wall_seconds=5, memory_mb=128, disk_mb=512, total_memory_mb=128, max_file_mb=512)
    program = (
        "with open('/tmp/pinned', 'wb') as out:\n    for _ in range(300):\n        out.write(bytes(1 << 20))"
    )
    result = sandbox.run(program, limits=limits)
    assert result.status == "memory_limit" and "total memory limit of 128 MiB" in result.describe(), result
    assert _ours(cgroups) == []
    assert sandbox.run("print('next')").stdout == "next\n"


def test_many_processes_together_are_stopped_at_the_total(sandbox, cgroups):
    # 8 processes of 100 MiB each stay under their own 256 MiB, not under 256 MiB together
    limits = Limits(wall_seconds=5, memory_mb=256, total_memory_mb=256, max_processes=8)
    program = "import os, time\nfor _ in range(3):\n    os.fork()\nheld = bytearray(100 << 20)\ntime.sleep(2)"
    result = sandbox.run(program, limits=limits)
    assert result.status == "memory_limit", result
    assert result.seconds < 4 and _ours(cgroups) == []


def test_a_program_within_the_total_is_unaffected(sandbox, cgroups):
    limits = Limits(wall_seconds=5, memory_mb=256, total_memory_mb=256)
    result = sandbox.run("held = bytearray(150 << 20)\nprint(len(held) >> 20)", limits=limits)
    assert result.ok and result.stdout == "150\n", result


def test_without_a_cgroup_executions_run_and_one_warning_says_what_is_not_bounded(sandbox, monkeypatch):
    monkeypatch.setattr(cgroup_module, "_detect", lambda: "no cgroup memory controller is mounted")
    monkeypatch.setattr(cgroup_module, "_WARNED", [])
    with pytest.warns(SandboxWarning, match="bounded per process only") as caught:
        first = sandbox.run("print('ran')")
        second = sandbox.run("print('ran')")
    assert first.stdout == second.stdout == "ran\n"
    assert len([w for w in caught if issubclass(w.category, SandboxWarning)]) == 1


@pytest.mark.parametrize("value", [0, 63, 1.5, "1024"])
def test_total_memory_must_be_an_integer_of_at_least_64(value):
    with pytest.raises(ValueError, match="total_memory_mb"):
        Limits(total_memory_mb=value)


def test_total_memory_defaults_to_twice_the_per_process_memory():
    assert Limits(memory_mb=300).total_memory_bytes() == 600 << 20
    assert Limits(total_memory_mb=100).total_memory_bytes() == 100 << 20


_MOUNTS_V1 = (
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "35 31 0:32 / {root}/memory rw,relatime - cgroup cgroup rw,memory\n"
    "41 31 0:38 / {root}/unified rw,relatime - cgroup2 cgroup2 rw\n"
)


def test_the_own_cgroup_is_found_in_the_v1_memory_hierarchy_before_v2(tmp_path):
    own = "4:memory:/jobs/job7\n9:name=systemd:/\n0::/\n"
    found = cgroup_module._own_memory_cgroup(own, _MOUNTS_V1.format(root=tmp_path))
    assert found == cgroup_module.MemoryCgroups(tmp_path / "memory" / "jobs" / "job7", 1)


def test_the_own_cgroup_in_v2_needs_the_memory_controller(tmp_path):
    (tmp_path / "user.slice").mkdir()
    (tmp_path / "user.slice" / "cgroup.controllers").write_text("cpu io pids\n")
    mounts = f"30 23 0:26 / {tmp_path} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
    found = cgroup_module._own_memory_cgroup("0::/user.slice\n", mounts)
    assert found == "the cgroup v2 hierarchy has no memory controller here"
    (tmp_path / "user.slice" / "cgroup.controllers").write_text("cpu io memory pids\n")
    found = cgroup_module._own_memory_cgroup("0::/user.slice\n", mounts)
    assert found == cgroup_module.MemoryCgroups(tmp_path / "user.slice", 2)
    assert cgroup_module._own_memory_cgroup("0::/\n", "") == "no cgroup memory controller is mounted"


def test_oom_kills_are_read_and_the_join_step_fits_each_version(tmp_path):
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\noom_group_kill 1\n")
    v1, v2 = cgroup_module.ExecutionCgroup(tmp_path, 1), cgroup_module.ExecutionCgroup(tmp_path, 2)
    assert v1.oom_kills() == 3 and v2.oom_kills() == 2
    # v1 moves the shell's one thread (no global lock); v2 moves the process
    assert v1.wrap(["prog"])[2:] == ['echo 0 > "$0" || exit 125; exec "$@"', f"{tmp_path}/tasks", "prog"]
    assert v2.wrap(["prog"])[3:] == [f"{tmp_path}/cgroup.procs", "prog"]


def test_dev_is_read_only_and_dev_shm_is_a_sized_tmpfs(sandbox):
    if sandbox.isolation.mode != "bwrap":
        pytest.skip(f"/dev and /dev/shm are the host's in mode {sandbox.isolation.mode!r}")
    program = (
        "import errno\n"
        "for path, size in (('/dev/pinned', 1), ('/dev/shm/pinned', 3 << 20)):\n"
        "    try:\n"
        "        with open(path, 'wb') as out:\n"
        "            out.write(bytes(size))\n"
        "    except OSError as exc:\n"
        "        print(path, errno.errorcode[exc.errno])\n"
    )
    result = sandbox.run(program, limits=Limits(wall_seconds=5, disk_mb=2))
    assert result.ok, result
    lines = result.stdout.splitlines()
    assert lines[0] in ("/dev/pinned EROFS", "/dev/pinned EACCES") and lines[1] == "/dev/shm/pinned ENOSPC"
