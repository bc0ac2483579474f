"""Verbatim files, template options and apt repositories: located errors, plans, checks, keys."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from orchestrator.drift.changes import diff_host, file_diff
from orchestrator.drift.expected import apt_repository_files
from orchestrator.drift.observed import Observation, ObservedPath
from orchestrator.drift.probe import build_probe_script, parse_probe_output
from orchestrator.engine.keyfetch import KeyFetchError, fetch_key
from orchestrator.errors import ValidationError
from orchestrator.model.policy import AptRepository
from orchestrator.openpgp import armor, dearmor, key_fingerprints, key_format
from orchestrator.policy import Project, WorktreeSource, load_project
from orchestrator.verify.checks import plan_checks
from orchestrator.verify.export import render_pytest_module

KEYS = Path(__file__).parent / "keys"
ARMORED = (KEYS / "test-key.asc").read_bytes()
BINARY = (KEYS / "test-key.gpg").read_bytes()
FPR = "93E02DAA2674B497C4A7C6F0DF1B56B572F471D4"
HOSTS = "hosts:\n  web-01: {address: 10.0.0.1}\n"
BLOB = bytes(range(256))


def project(tmp_path: Path, policy: str, extra: dict[str, bytes] | None = None) -> Project:
    files = {"inventory/hosts.yml": HOSTS.encode(), "policies/p.yml": policy.encode()}
    files.update(extra or {})
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    return load_project(WorktreeSource(tmp_path))


def errors(tmp_path: Path, policy: str, extra: dict[str, bytes] | None = None) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        project(tmp_path, policy, extra)
    return [str(d) for d in caught.value.diagnostics]


HEAD = "name: p\nselect: {all: true}\n"
REPO = "apt_repositories:\n  - name: lab\n    url: http://10.0.0.9/\n    suite: lab\n"


# --- the OpenPGP reader, against gpg's own answers --------------------------------------------


def test_fingerprints_and_formats_match_gpg() -> None:
    assert key_fingerprints(ARMORED) == key_fingerprints(BINARY) == [FPR]
    assert (key_format(ARMORED), key_format(BINARY)) == ("armored", "binary")
    assert dearmor(ARMORED) == BINARY
    assert dearmor(armor(BINARY)) == BINARY


def test_armor_output_is_read_by_gpg(tmp_path: Path) -> None:
    shown = subprocess.run(
        ["gpg", "--show-keys", "--with-colons"],
        input=armor(BINARY),
        capture_output=True,
        check=True,
        env={"GNUPGHOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    ).stdout.decode()
    assert f"fpr:::::::::{FPR}:" in shown


# --- located errors ----------------------------------------------------------------------------


def test_a_missing_source_file_is_an_error_at_its_source_value(tmp_path: Path) -> None:
    policy = HEAD + "files:\n  - path: /etc/x.bin\n    source: files/x.bin\n"
    assert errors(tmp_path, policy) == [
        "policies/p.yml:5:13: error: source file 'files/x.bin' not found"
    ]


def test_content_template_and_source_are_exclusive(tmp_path: Path) -> None:
    policy = HEAD + "files:\n  - path: /etc/x\n    content: a\n    source: files/x\n"
    assert errors(tmp_path, policy) == [
        "policies/p.yml:4:5: error: set exactly one of content, template or source"
    ]


def test_template_options_on_a_non_template_file_is_an_error(tmp_path: Path) -> None:
    policy = (
        HEAD + "files:\n  - {path: /etc/x, content: a, template_options: {trim_blocks: true}}\n"
    )
    assert errors(tmp_path, policy) == [
        "policies/p.yml:4:5: error: template_options apply to template: files only"
    ]


def test_key_file_errors_are_located_at_the_key(tmp_path: Path) -> None:
    policy = HEAD + REPO + "    key_file: keys/none.gpg\n"
    assert errors(tmp_path, policy) == [
        "policies/p.yml:7:15: error: key file 'keys/none.gpg' not found"
    ]
    policy = HEAD + REPO + "    key_file: keys/bad.gpg\n"
    assert errors(tmp_path / "2", policy, {"keys/bad.gpg": b"not a key\n"}) == [
        "policies/p.yml:7:15: error: key file 'keys/bad.gpg' is not a public key apt can read: "
        "neither an ASCII-armored public key nor an OpenPGP binary key"
    ]


def test_fingerprint_format_and_keyring_extension_are_located(tmp_path: Path) -> None:
    policy = HEAD + REPO + "    key_url: http://10.0.0.9/key.asc\n    fingerprint: ABC\n"
    assert errors(tmp_path, policy) == [
        "policies/p.yml:8:18: error: 'ABC' is not an OpenPGP fingerprint (40 or 64 hex digits, "
        "spaces allowed)"
    ]
    policy = (
        HEAD + REPO + "    key_file: keys/k.gpg\n    keyring: /usr/share/keyrings/k.asc\n"
        f"    fingerprint: {'F' * 40}\n"
    )
    assert errors(tmp_path / "2", policy, {"keys/k.gpg": BINARY}) == [
        "policies/p.yml:8:14: error: keyring '/usr/share/keyrings/k.asc' must end in .gpg: key "
        "file 'keys/k.gpg' is a binary key, and apt reads a .asc keyring as armored and any "
        "other as binary",
        f"policies/p.yml:9:18: error: key file 'keys/k.gpg' does not hold key {'F' * 40} "
        f"(it holds {FPR})",
    ]


def test_key_url_needs_a_fingerprint_and_one_key_only(tmp_path: Path) -> None:
    policy = HEAD + REPO + "    key_url: http://10.0.0.9/key.asc\n"
    assert errors(tmp_path, policy) == [
        "policies/p.yml:4:5: error: key_url needs the key's fingerprint: set fingerprint"
    ]
    policy = HEAD + REPO + "    key: abc\n    key_file: k.gpg\n"
    assert errors(tmp_path / "2", policy) == [
        "policies/p.yml:4:5: error: set only one of key, key_file or key_url (here: key, key_file)"
    ]


# --- resolution, plans and checks -------------------------------------------------------------


def test_a_verbatim_binary_file_is_planned_and_checked_by_sha256(tmp_path: Path) -> None:
    policy = HEAD + "files:\n  - {path: /etc/x.bin, source: files/x.bin, mode: '0600'}\n"
    state = project(tmp_path, policy, {"files/x.bin": BLOB}).desired["web-01"]
    (resource,) = state.resources
    assert resource.data == BLOB and resource.content is None
    sha = hashlib.sha256(BLOB).hexdigest()
    (change,) = diff_host(state, Observation(paths={"/etc/x.bin": ObservedPath(path="/etc/x.bin")}))
    assert change.summary == f"/etc/x.bin (absent) -> created, mode 0600 (binary, sha256 {sha})"
    assert (
        change.diff
        == f"--- /etc/x.bin (current)\n+++ /etc/x.bin\nbinary file created, sha256 {sha}\n"
    )
    content = next(c for c in plan_checks(state) if c.spec.property == "content")
    assert (content.probe, content.want, content.spec.expected) == (
        "path.sha256",
        sha,
        f"sha256 {sha}",
    )
    assert content.spec.title == f"file /etc/x.bin is a copy of files/x.bin (sha256 {sha})"
    assert str(content.spec.location) == "policies/p.yml:4:32"
    # The probe sends a differing file back as bytes: the plan names both hashes.
    script_line = next(line for line in build_probe_script(state).splitlines() if "x.bin" in line)
    assert script_line == f"pf /etc/x.bin {sha}"


def test_binary_and_text_diffs() -> None:
    old_sha = hashlib.sha256(b"\xff").hexdigest()
    new_sha = hashlib.sha256(BLOB).hexdigest()
    assert file_diff(b"\xff", BLOB, "/x").endswith(
        f"binary file changed, sha256 {old_sha} -> {new_sha}\n"
    )
    assert file_diff(b"a\n", b"b\n", "/x") == "--- /x (current)\n+++ /x\n@@ -1 +1 @@\n-a\n+b\n"


def test_probe_content_is_kept_as_bytes() -> None:
    import base64

    text = (
        "patchring-probe 1\n"
        f"path\t/etc/x.bin\tfile\t{'0' * 64}\troot\troot\t600\n"
        f"content\t/etc/x.bin\t{base64.b64encode(BLOB).decode()}\n"
        "patchring-probe-end\n"
    )
    assert parse_probe_output(text).paths["/etc/x.bin"].content == BLOB


def test_template_options_per_file_over_the_policy(tmp_path: Path) -> None:
    template = b"{% for x in [1, 2] %}\n    {% if x %}\nv{{ x }}\n    {% endif %}\n{% endfor %}\n"
    policy = (
        HEAD
        + "template_options: {trim_blocks: true}\nfiles:\n"
        + "  - {path: /etc/a, template: t.j2}\n"
        + "  - {path: /etc/b, template: t.j2, template_options: {lstrip_blocks: true}}\n"
        + "  - {path: /etc/c, template: t.j2, template_options: {trim_blocks: false}}\n"
    )
    state = project(tmp_path, policy, {"t.j2": template}).desired["web-01"]
    got = {r.key: r.content for r in state.resources}
    assert got == {
        "/etc/a": "    v1\n        v2\n    ",
        "/etc/b": "v1\nv2\n",
        "/etc/c": "\n    \nv1\n    \n\n    \nv2\n    \n\n",
    }


def test_deb822_repository_with_a_binary_key_file(tmp_path: Path) -> None:
    policy = (
        HEAD + REPO + "    key_file: keys/lab.gpg\n    keyring: /usr/share/keyrings/lab.gpg\n"
        f"    fingerprint: {FPR[:4]} {FPR[4:]}\n    format: sources\n"
    )
    state = project(tmp_path, policy, {"keys/lab.gpg": BINARY}).desired["web-01"]
    (resource,) = state.resources
    assert isinstance(resource.spec, AptRepository) and resource.spec.fingerprint == FPR
    key, sources = apt_repository_files(resource.spec, resource.data)
    assert (key.path, key.content) == ("/usr/share/keyrings/lab.gpg", BINARY)
    assert sources.path == "/etc/apt/sources.list.d/lab.sources"
    assert sources.content == (
        b"Types: deb\nURIs: http://10.0.0.9/\nSuites: lab\nComponents: main\n"
        b"Signed-By: /usr/share/keyrings/lab.gpg\n"
    )
    (change,) = diff_host(state, Observation())
    assert change.summary.endswith("; apt lists refreshed because lab changed")
    assert "+Signed-By: /usr/share/keyrings/lab.gpg\n" in change.diff
    checks = {c.spec.property: c for c in plan_checks(state)}
    assert checks["key"].want == hashlib.sha256(BINARY).hexdigest()
    assert str(checks["key"].spec.location) == "policies/p.yml:7:15"


def test_default_keyring_follows_the_key_format(tmp_path: Path) -> None:
    for name, data, path in (("k.asc", ARMORED, "lab.asc"), ("k.gpg", BINARY, "lab.gpg")):
        policy = HEAD + REPO + f"    key_file: {name}\n"
        (resource,) = project(tmp_path / name, policy, {name: data}).desired["web-01"].resources
        assert isinstance(resource.spec, AptRepository)
        key, sources = apt_repository_files(resource.spec, resource.data)
        assert key.path == f"/etc/apt/keyrings/{path}" and key.content == data  # kept as is
        assert sources.content == (
            f"deb [signed-by=/etc/apt/keyrings/{path}] http://10.0.0.9/ lab main\n".encode()
        )


def test_signed_by_alone_writes_only_the_sources_file() -> None:
    repo = AptRepository(
        name="deb", url="http://10.0.0.9/", suite="x", signed_by="/usr/share/keyrings/d.gpg"
    )
    (sources,) = apt_repository_files(repo)
    assert sources.content == b"deb [signed-by=/usr/share/keyrings/d.gpg] http://10.0.0.9/ x main\n"


def test_a_key_from_a_url_is_planned_and_checked_by_fingerprint(tmp_path: Path) -> None:
    policy = (
        HEAD + REPO + f"    key_url: http://10.0.0.9/key.asc\n    fingerprint: {FPR}\n"
        "    keyring: /usr/share/keyrings/lab.gpg\n"
    )
    state = project(tmp_path, policy).desired["web-01"]
    assert "pf /usr/share/keyrings/lab.gpg -" in build_probe_script(state)
    keyring = "/usr/share/keyrings/lab.gpg"
    (change,) = diff_host(state, Observation())
    assert change.summary.startswith(
        f"{keyring}: key absent -> {FPR} fetched from http://10.0.0.9/key.asc"
    )
    seen = ObservedPath(
        path=keyring, kind="file", sha256="x", owner="root", group="root", mode="644",
        content=BINARY,
    )  # fmt: skip
    sources, *_ = apt_repository_files(state.resources[0].spec)[1:]  # type: ignore[arg-type]
    held = Observation(
        paths={
            keyring: seen,
            sources.path: seen.model_copy(
                update={"path": sources.path, "sha256": sources.sha256, "content": None}
            ),
        }
    )
    assert diff_host(state, held) == ()  # the key on the host holds the fingerprint
    key_check = next(c for c in plan_checks(state) if c.spec.property == "key")
    assert (key_check.probe, key_check.want) == ("path.openpgp_key", FPR)
    assert key_check.spec.title == f"apt repository lab: signing key {keyring} holds key {FPR}"


def test_the_exported_checks_carry_the_openpgp_reader(tmp_path: Path) -> None:
    policy = HEAD + REPO + f"    key_url: http://10.0.0.9/k.asc\n    fingerprint: {FPR}\n"
    state = project(tmp_path, policy).desired["web-01"]
    module = render_pytest_module({"10.0.0.1": plan_checks(state)})
    assert "from orchestrator" not in module
    namespace: dict[str, object] = {}
    exec(compile(module, "generated.py", "exec"), namespace)
    probe = namespace["PROBES"]["path.openpgp_key"]  # type: ignore[index]

    class File:
        content = ARMORED

    class Host:
        def file(self, path: str) -> File:
            return File()

    assert probe(Host(), "/k", FPR) == (True, f"key {FPR}")


def test_a_fetched_key_is_refused_unless_it_holds_the_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "k.asc").write_bytes(ARMORED)
    with pytest.raises(KeyFetchError, match="only http and https"):
        fetch_key((tmp_path / "k.asc").as_uri(), FPR, "/k.gpg", 1)


def test_opspec_content_is_text_in_json_unless_binary(tmp_path: Path) -> None:
    from orchestrator.compiler import compile_host

    policy = (
        HEAD + "files:\n  - {path: /etc/x.bin, source: x.bin}\n  - {path: /etc/t, content: t}\n"
    )
    state = project(tmp_path, policy, {"x.bin": b"\xff\x00"}).desired["web-01"]
    dumped = [json.loads(op.model_dump_json()) for op in compile_host(state)]
    assert [d["content"] for d in dumped] == [{"base64": "/wA="}, "t"]
    assert "fetch_url" not in dumped[0]


def test_the_json_schema_covers_the_new_keys() -> None:
    from orchestrator.policy.schema import policy_json_schema

    schema = policy_json_schema()
    defs = schema["$defs"]
    assert {"key_file", "key_url", "fingerprint", "keyring", "signed_by", "format"} <= set(
        defs["AptRepository"]["properties"]
    )
    assert {"source", "template_options"} <= set(defs["File"]["properties"])
    assert set(defs["TemplateOptions"]["properties"]) == {"trim_blocks", "lstrip_blocks"}
    assert "template_options" in schema["properties"]


def test_a_key_url_must_be_http(tmp_path: Path) -> None:
    policy = HEAD + REPO + f"    key_url: file:///etc/shadow\n    fingerprint: {FPR}\n"
    assert errors(tmp_path, policy) == [
        "policies/p.yml:7:14: error: 'file:///etc/shadow' is not an http or https URL (the "
        "controller fetches it)"
    ]
