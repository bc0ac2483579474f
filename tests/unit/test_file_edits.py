"""Partial edits of files: text golden cases (old -> new, then idempotence), loader errors
pinned verbatim, conflicts, the per-host plan (diffs, problems), the guarded write (run in a
local shell on a real file) and the generated checks (testinfra over a local shell)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from orchestrator.compiler import compile_host
from orchestrator.compiler.edits import guarded_write_command
from orchestrator.drift.changes import diff_host
from orchestrator.drift.edits import edit_problems, plan_edited_file
from orchestrator.drift.observed import Observation, ObservedPath
from orchestrator.drift.probe import build_probe_script
from orchestrator.drift.textedit import TextEditError, edit_block, edit_line, edit_setting
from orchestrator.engine.operations import OPERATIONS
from orchestrator.model.policy import Block, LineEdit, Setting
from orchestrator.verify.checks import plan_checks
from tests.unit.builders import desired
from tests.unit.test_checks import LocalLink
from tests.unit.test_resolve import problems

LOGIN_DEFS = "# comment\nUMASK\t\t022\n#PASS_MAX_DAYS 1\nPASS_MAX_DAYS\t99999\nPASS_MIN_DAYS\t0\n"
SSHD = (
    "Include /etc/ssh/sshd_config.d/*.conf\n#PermitRootLogin prohibit-password\n"
    "X11Forwarding yes\n\nMatch User backup\n    PermitRootLogin yes\n"
)
UNIT = "[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=a\n"


def sset(key: str, value: str | None, fmt: str = "space", **kw: object) -> Setting:
    return Setting(path="/etc/x", format=fmt, key=key, value=value, **kw)  # type: ignore[arg-type]


SETTING_CASES: list[tuple[str, Setting, str, str]] = [
    (
        "login.defs value replaced in place, tabs kept",
        sset("PASS_MAX_DAYS", "90"),
        LOGIN_DEFS,
        LOGIN_DEFS.replace("PASS_MAX_DAYS\t99999", "PASS_MAX_DAYS\t90"),
    ),
    ("already set: unchanged", sset("UMASK", "022"), LOGIN_DEFS, LOGIN_DEFS),
    (
        "missing key goes after its commented default, which stays",
        sset("PermitRootLogin", "no"),
        SSHD,
        SSHD.replace("prohibit-password\n", "prohibit-password\nPermitRootLogin no\n"),
    ),
    (
        "space keys compare case-insensitively (sshd); Match blocks are never edited",
        sset("x11forwarding", "no"),
        SSHD,
        SSHD.replace("X11Forwarding yes", "X11Forwarding no"),
    ),
    (
        "a new key goes before sshd's first Match",
        sset("MaxAuthTries", "3"),
        SSHD,
        SSHD.replace("yes\n\nMatch", "yes\nMaxAuthTries 3\n\nMatch"),
    ),
    (
        "every active duplicate gets the value",
        sset("A", "2", "equals"),
        "A=1\nB=1\nA = 3\n",
        "A=2\nB=1\nA = 2\n",
    ),
    ("no trailing newline: one is added", sset("B", "2", "equals"), "A=1", "A=1\nB=2\n"),
    ("empty file", sset("B", "2", "equals"), "", "B=2\n"),
    (
        "removed: every active line",
        sset("A", None, "equals", state="absent"),
        "A=1\n#A=0\nA=2\n",
        "#A=0\n",
    ),
    (
        "INI: appended at the end of its section",
        sset("Restart", "always", "ini", section="Service"),
        UNIT,
        UNIT.replace("/bin/true\n", "/bin/true\nRestart=always\n"),
    ),
    (
        "INI: replaced in its section only",
        sset("Description", "y", "ini", section="Unit"),
        UNIT + "[Other]\nDescription=z\n",
        UNIT.replace("=x", "=y") + "[Other]\nDescription=z\n",
    ),
    (
        "INI: a missing section is created at the end",
        sset("OnCalendar", "daily", "ini", section="Timer"),
        UNIT,
        UNIT + "\n[Timer]\nOnCalendar=daily\n",
    ),
    (
        "INI: a key of the last section at the end of the file",
        sset("RequiredBy", "b", "ini", section="Install"),
        UNIT,
        UNIT + "RequiredBy=b\n",
    ),
]


@pytest.mark.parametrize(
    ("name", "spec", "old", "new"), SETTING_CASES, ids=[c[0] for c in SETTING_CASES]
)
def test_setting_edits(name: str, spec: Setting, old: str, new: str) -> None:
    assert edit_setting(old, spec) == new
    assert edit_setting(new, spec) == new  # applying twice = once


def line(**kw: object) -> LineEdit:
    return LineEdit(path="/etc/x", **kw)  # type: ignore[arg-type]


LINE_CASES: list[tuple[str, LineEdit, str, str]] = [
    ("appended", line(line="c"), "a\nb\n", "a\nb\nc\n"),
    ("already there", line(line="b"), "a\nb\n", "a\nb\n"),
    ("matching lines replaced", line(line="x=2", match=r"^x="), "x=1\ny\nx=3\n", "x=2\ny\nx=2\n"),
    (
        "inserted after the last match",
        line(line="n", insert_after=r"^a"),
        "a1\na2\nb\n",
        "a1\na2\nn\nb\n",
    ),
    (
        "inserted before the first match",
        line(line="n", insert_before=r"^b"),
        "a\nb\nb\n",
        "a\nn\nb\nb\n",
    ),
    ("no anchor found: appended", line(line="n", insert_after=r"^zz"), "a", "a\nn\n"),
    ("removed by pattern", line(state="absent", match=r"^#"), "#a\nb\n#c", "b\n"),
    ("removed by equality", line(state="absent", line="b"), "a\nb\nbb\n", "a\nbb\n"),
    (
        "a line the pattern does not find is ensured once",
        line(line="PermitRootLogin no", match=r"^#?PermitRootLogin yes"),
        "PermitRootLogin yes\n",
        "PermitRootLogin no\n",
    ),
]


@pytest.mark.parametrize(("name", "spec", "old", "new"), LINE_CASES, ids=[c[0] for c in LINE_CASES])
def test_line_edits(name: str, spec: LineEdit, old: str, new: str) -> None:
    assert edit_line(old, spec) == new
    assert edit_line(new, spec) == new


def block(**kw: object) -> Block:
    return Block(path="/etc/x", name="tune", **kw)  # type: ignore[arg-type]


B, E = "# BEGIN patchring tune", "# END patchring tune"
BLOCK_CASES: list[tuple[str, Block, str, str]] = [
    ("appended", block(content="a\nb"), "x\n", f"x\n{B}\na\nb\n{E}\n"),
    ("replaced", block(content="n\n"), f"x\n{B}\no\no2\n{E}\ny\n", f"x\n{B}\nn\n{E}\ny\n"),
    ("inserted before", block(content="n\n", insert_before="^y"), "x\ny\n", f"x\n{B}\nn\n{E}\ny\n"),
    ("removed", block(state="absent"), f"x\n{B}\no\n{E}\ny", "x\ny"),
    (
        "own marker",
        block(content="n\n", marker="// {mark} {name}"),
        "x\n",
        "x\n// BEGIN tune\nn\n// END tune\n",
    ),
]


@pytest.mark.parametrize(
    ("name", "spec", "old", "new"), BLOCK_CASES, ids=[c[0] for c in BLOCK_CASES]
)
def test_block_edits(name: str, spec: Block, old: str, new: str) -> None:
    content = spec.content or ""
    assert edit_block(old, spec, content) == new
    assert edit_block(new, spec, content) == new


def test_a_begin_marker_without_its_end_is_an_error() -> None:
    with pytest.raises(TextEditError) as caught:
        edit_block(f"x\n{B}\ny\n", block(content="n\n"), "n\n")
    assert str(caught.value) == f"line 2 opens the block ({B!r}) but no {E!r} follows"


# --- loader errors and conflicts --------------------------------------------------------------

BAD = """\
name: a
select: {all: true}
lines:
  - {path: /etc/x, line: y, match: "^(unclosed"}
  - {path: /etc/x, match: a}
settings:
  - {path: /etc/x, format: toml, key: a, value: 1}
  - {path: /etc/x, format: space, section: Service, key: a, value: 1}
  - {path: /etc/x, format: equals, key: a}
blocks:
  - {path: /etc/x, name: b, content: y, marker: "# patchring"}
"""


def test_edit_errors_are_located_and_worded(tmp_path: Path) -> None:
    assert problems(tmp_path, {"policies/a.yml": BAD}) == [
        "policies/a.yml:4:36: error: invalid regular expression: missing ), unterminated "
        "subpattern at position 1",
        "policies/a.yml:5:5: error: state is 'present', so set line",
        "policies/a.yml:7:28: error: expected 'space', 'equals' or 'ini', got 'toml'",
        "policies/a.yml:8:5: error: section is only for format 'ini', not 'space'",
        "policies/a.yml:9:5: error: state is 'present', so set value",
        "policies/a.yml:11:5: error: marker must contain {mark} (BEGIN and END tell the markers "
        "apart)",
    ]


TWO = """\
name: {name}
select: {{all: true}}
settings:
  - {{path: /etc/login.defs, format: space, key: UMASK, value: "{umask}"}}
lines:
  - {{path: /etc/hosts, line: "{line}", match: "^10\\\\."}}
"""


def test_two_policies_managing_one_key_or_line_conflict(tmp_path: Path) -> None:
    files = {
        "policies/a.yml": TWO.format(name="a", umask="027", line="10.0.0.1 a"),
        "policies/b.yml": TWO.format(name="b", umask="077", line="10.0.0.1 b"),
    }
    assert problems(tmp_path, files) == [
        "policies/b.yml:4:63: error: setting '/etc/login.defs:UMASK' value '077' conflicts with "
        "value '027' set at policies/a.yml:4:63",
        "policies/b.yml:6:30: error: line '/etc/hosts:^10\\.' line '10.0.0.1 b' conflicts with "
        "line '10.0.0.1 a' set at policies/a.yml:6:30",
    ]


def test_a_file_managed_whole_and_edited_is_a_conflict(tmp_path: Path) -> None:
    policy = (
        "name: a\nselect: {all: true}\nfiles:\n  - {path: /etc/motd, content: hi}\n"
        "lines:\n  - {path: /etc/motd, line: more}\n"
    )
    assert problems(tmp_path, {"policies/a.yml": policy}) == [
        "policies/a.yml:6:12: error: line '/etc/motd:more' edits file '/etc/motd', which the "
        "file at policies/a.yml:4:5 manages whole; edit it in one place",
    ]


# --- plan, compile, write -----------------------------------------------------------------------


def seen(path: str, text: str | None, kind: str = "file") -> Observation:
    sha = hashlib.sha256(text.encode()).hexdigest() if text is not None else None
    observed = ObservedPath(
        path=path, kind=kind, sha256=sha, owner="root", group="root", mode="644"
    )
    data = text.encode() if text is not None else None
    return Observation(paths={path: observed.model_copy(update={"content": data})})


STATE = desired(
    Setting(path="/etc/login.defs", format="space", key="PASS_MAX_DAYS", value="90"),
    Setting(path="/etc/login.defs", format="space", key="UMASK", value="027", restart=("ssh",)),
)


def test_the_probe_asks_for_the_whole_content_of_edited_files() -> None:
    assert "pf /etc/login.defs -\n" in build_probe_script(STATE)


def test_each_edit_shows_its_own_diff_and_one_write_makes_them_all() -> None:
    observed = seen("/etc/login.defs", LOGIN_DEFS)
    changes = diff_host(STATE, observed)
    assert [(c.resource_id, c.summary) for c in changes] == [
        ("setting:/etc/login.defs:PASS_MAX_DAYS", "/etc/login.defs: PASS_MAX_DAYS = 90"),
        ("setting:/etc/login.defs:UMASK", "/etc/login.defs: UMASK = 027"),
        ("restart:ssh.service", "ssh.service: restart (/etc/login.defs:UMASK changes)"),
    ]
    assert changes[1].diff == (
        "--- /etc/login.defs (current)\n+++ /etc/login.defs\n@@ -1,5 +1,5 @@\n # comment\n"
        "-UMASK\t\t022\n+UMASK\t\t027\n #PASS_MAX_DAYS 1\n PASS_MAX_DAYS\t90\n PASS_MIN_DAYS\t0\n"
    )
    ops = compile_host(STATE, only={c.resource_id for c in changes}, observed=observed)
    assert [(op.operation, op.description, op.resource_ids) for op in ops][1:] == [
        (
            "server.shell",
            "edit /etc/login.defs",
            ("setting:/etc/login.defs:PASS_MAX_DAYS", "setting:/etc/login.defs:UMASK"),
        ),
        (
            "server.shell",
            "restart ssh.service (/etc/login.defs:UMASK changed)",
            ("restart:ssh.service",),
        ),
    ]
    assert [op.effect for op in ops][1:] == [("/etc/login.defs",), None]  # kept facts: the rest
    assert "server.shell" in OPERATIONS
    # Without the probe's view there is nothing to write (restarts compile as for files).
    assert all(op.description != "edit /etc/login.defs" for op in compile_host(STATE))


def test_a_host_in_sync_plans_nothing() -> None:
    done = LOGIN_DEFS.replace("99999", "90").replace("022", "027")
    assert diff_host(STATE, seen("/etc/login.defs", done)) == ()


def test_files_that_cannot_take_the_edit_are_plan_problems() -> None:
    where = "policies/base.yml:1:3: cannot edit /etc/login.defs: "
    assert edit_problems(STATE, Observation()) == [
        where + "the file does not exist (set create: true to create it)"
    ]
    assert edit_problems(STATE, seen("/etc/login.defs", None, "directory")) == [
        where + "not a regular file (directory); edits need one"
    ]
    too_big = seen("/etc/login.defs", "x").model_copy(deep=True)
    too_big.paths["/etc/login.defs"].__dict__["content"] = None
    assert edit_problems(STATE, too_big) == [where + "the file is too large to edit in place"]


def _write(target: Path, observed: Observation, state=STATE) -> subprocess.CompletedProcess[str]:
    planned = plan_edited_file(str(target), list(state.resources), observed)
    assert not isinstance(planned, str)
    return subprocess.run(
        ["sh", "-c", guarded_write_command(planned)], capture_output=True, text=True
    )


def _local(text: str, tmp_path: Path):
    target = tmp_path / "login.defs"
    target.write_text(text)
    target.chmod(0o640)
    state = desired(
        *(s.spec.model_copy(update={"path": str(target)}) for s in STATE.resources)  # type: ignore[misc]
    )
    return target, state


def test_the_guarded_write_replaces_the_file_keeping_its_mode(tmp_path: Path) -> None:
    target, state = _local(LOGIN_DEFS, tmp_path)
    done = _write(target, seen(str(target), LOGIN_DEFS), state)
    assert done.returncode == 0, done.stderr
    assert target.read_text() == LOGIN_DEFS.replace("99999", "90").replace("022", "027")
    assert oct(target.stat().st_mode & 0o777) == "0o640"
    assert [p.name for p in tmp_path.iterdir()] == ["login.defs"]  # no temporary file left


def test_a_file_changed_since_the_probe_is_not_overwritten(tmp_path: Path) -> None:
    target, state = _local(LOGIN_DEFS, tmp_path)
    probed = seen(str(target), LOGIN_DEFS)
    target.write_text(LOGIN_DEFS + "LOCAL 1\n")
    done = _write(target, probed, state)
    assert done.returncode == 1
    assert "changed since it was probed" in done.stderr and "not overwritten" in done.stderr
    assert target.read_text() == LOGIN_DEFS + "LOCAL 1\n"


# --- generated checks ---------------------------------------------------------------------------


def test_checks_verify_just_the_edit_with_the_line_as_evidence(tmp_path: Path) -> None:
    from orchestrator.verify.runner import evaluate_checks

    conf = tmp_path / "sshd_config"
    conf.write_text(SSHD)
    path = str(conf)
    state = desired(
        Setting(path=path, format="space", key="X11Forwarding", value="no"),
        Setting(path=path, format="space", key="Include", value="/etc/ssh/sshd_config.d/*.conf"),
        LineEdit(path=path, line="Match User backup"),
        LineEdit(path=path, state="absent", match="^UseDNS"),
        Block(path=path, name="tune", content="MaxAuthTries 3\n"),
    )
    outcomes = {
        o.check.spec.id: o.result(str) for o in evaluate_checks(plan_checks(state), LocalLink())
    }
    assert {i: (r.status, r.actual) for i, r in outcomes.items()} == {
        f"base/setting:{path}:X11Forwarding/value": ("failed", "line 3: 'X11Forwarding yes'"),
        f"base/setting:{path}:Include/value": (
            "passed",
            "line 1: 'Include /etc/ssh/sshd_config.d/*.conf'",
        ),
        f"base/line:{path}:Match User backup/present": ("passed", "line 5: 'Match User backup'"),
        f"base/line:{path}:^UseDNS/absent": ("passed", "no such line"),
        f"base/block:{path}:tune/content": ("failed", "no '# BEGIN patchring tune' line"),
    }
    title = outcomes[f"base/setting:{path}:X11Forwarding/value"].title
    assert title == f"{path}: X11Forwarding = no"


def test_the_write_binds_to_server_shell() -> None:
    import inspect

    observed = seen("/etc/login.defs", LOGIN_DEFS)
    ops = compile_host(STATE, only={r.id for r in STATE.resources}, observed=observed)
    edit = next(op for op in ops if op.description == "edit /etc/login.defs")
    func = OPERATIONS[edit.operation]
    inspect.signature(getattr(func, "_inner", func)).bind(**edit.args)


def test_a_block_template_renders_per_host(tmp_path: Path) -> None:
    from tests.unit.test_resolve import load

    policy = (
        "name: a\nselect: {all: true}\nblocks:\n"
        "  - {path: /etc/issue.net, name: banner, template: templates/banner.j2}\n"
    )
    project = load(tmp_path, {"policies/a.yml": policy, "templates/banner.j2": "{{ host.name }}\n"})
    (resource,) = project.desired["web-02"].resources
    assert (resource.id, resource.content) == ("block:/etc/issue.net:banner", "web-02\n")
    (check,) = plan_checks(project.desired["web-02"])
    assert check.want == '["# BEGIN patchring banner", "# END patchring banner", "web-02\\n"]'


def test_the_schema_covers_every_edit_key() -> None:
    from orchestrator.policy.schema import policy_json_schema

    schema = policy_json_schema()
    assert {"lines", "settings", "blocks"} <= set(schema["properties"])
    defs = schema["$defs"]
    assert set(defs["Setting"]["properties"]) == {
        "path", "create", "restart", "format", "section", "key", "value", "state", "after"
    }  # fmt: skip
    assert defs["Setting"]["properties"]["format"]["enum"] == ["space", "equals", "ini"]
    assert set(defs["LineEdit"]["properties"]) >= {
        "line",
        "match",
        "insert_after",
        "insert_before",
        "state",
    }
    assert set(defs["Block"]["properties"]) >= {"name", "content", "template", "marker"}
