"""Located YAML and the worktree source: locations, safe values, and every parse error verbatim."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.errors import ValidationError
from orchestrator.policy.projectsource import PathOutsideRootError, WorktreeSource
from orchestrator.policy.yamlsource import LocatedYaml, parse_yaml
from orchestrator.source import SourceLocation


def errors(text: str, what: str = "policy") -> list[str]:
    with pytest.raises(ValidationError) as caught:
        parse_yaml(text, "policies/t.yml", what)
    return [str(d) for d in caught.value.diagnostics]


def loc(line: int, col: int) -> SourceLocation:
    return SourceLocation("policies/t.yml", line, col)


DOC = """\
name: web
select: {all: true}
packages:
  - name: nginx
    version: "1.22-1"
  - name: curl
"""


def test_values_and_locations_by_path() -> None:
    doc = parse_yaml(DOC, "policies/t.yml")
    assert doc.data == {
        "name": "web",
        "select": {"all": True},
        "packages": [{"name": "nginx", "version": "1.22-1"}, {"name": "curl"}],
    }
    assert doc.values[()] == loc(1, 1)
    assert doc.keys[("packages",)] == loc(3, 1)
    assert doc.values[("packages", 0)] == loc(4, 5)
    assert doc.keys[("packages", 0, "version")] == loc(5, 5)
    assert doc.values[("packages", 0, "version")] == loc(5, 14)
    assert doc.values[("select", "all")] == loc(2, 15)
    assert str(doc.values[("packages", 1, "name")]) == "policies/t.yml:6:11"


def test_unrecorded_paths_fall_back_to_the_nearest_ancestor() -> None:
    doc = parse_yaml(DOC, "policies/t.yml")
    assert doc.value_location(("packages", 1, "version")) == loc(6, 5)
    assert doc.key_location(("packages", 1, "version")) == loc(6, 5)
    assert doc.key_location(("name",)) == loc(1, 1)
    assert doc.mapping_at(("packages", 0)) == {"name": "nginx", "version": "1.22-1"}
    assert doc.mapping_at(("packages", 7)) == {}
    assert doc.mapping_at(("name",)) == {}


def test_scalars_are_plain_safe_values_and_dates_stay_text() -> None:
    doc = parse_yaml("a: 1\nb: 1.5\nc: yes\nd: ~\ne: 2024-01-01\nf: '0640'\ng: 0640\n", "x.yml")
    assert doc.data == {
        "a": 1,
        "b": 1.5,
        "c": True,
        "d": None,
        "e": "2024-01-01",
        "f": "0640",
        "g": 416,
    }
    # The source text of non-string scalars is kept, for "quote it" hints.
    assert doc.texts[("g",)] == "0640"
    assert doc.texts[("c",)] == "yes"
    assert ("f",) not in doc.texts


def test_aliases_are_expanded_and_located_at_their_anchor() -> None:
    doc = parse_yaml("base: &b [a, b]\nother: *b\n", "x.yml")
    assert doc.data == {"base": ["a", "b"], "other": ["a", "b"]}
    assert doc.values[("other",)] == SourceLocation("x.yml", 1, 7)
    assert doc.keys[("other",)] == SourceLocation("x.yml", 2, 1)


def test_empty_and_comment_only_files_are_errors() -> None:
    assert errors("") == ["policies/t.yml:1:1: error: empty policy file"]
    assert errors("# nothing yet\n\n", "inventory") == [
        "policies/t.yml:1:1: error: empty inventory file"
    ]


def test_syntax_errors_carry_line_and_column() -> None:
    assert errors("a: [1, 2\nb: 3\n") == [
        "policies/t.yml:2:2: error: invalid YAML: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence started at line 1)"
    ]
    assert errors("a: b: c\n") == [
        "policies/t.yml:1:5: error: invalid YAML: mapping values are not allowed here"
    ]
    assert errors("a:\n\t- b\n") == [
        "policies/t.yml:2:1: error: invalid YAML: found character '\\t' that cannot start "
        "any token (indent with spaces, not tabs)"
    ]


def test_one_document_per_file() -> None:
    assert errors("a: 1\n---\nb: 2\n") == [
        "policies/t.yml:2:1: error: invalid YAML: expected a single document in the stream, "
        "but found another document"
    ]


def test_control_characters_are_located() -> None:
    assert errors("a: 1\nb: x\x07\n") == [
        "policies/t.yml:2:5: error: invalid YAML: character #x0007 is not allowed"
    ]


def test_every_structural_problem_in_a_file_is_reported() -> None:
    text = "name: x\nname: y\n1: a\non: b\n<<: {a: 1}\nz: !!binary aGVsbG8=\nw: !custom 1\n"
    assert errors(text) == [
        "policies/t.yml:2:1: error: duplicate key 'name' (first at line 1)",
        "policies/t.yml:3:1: error: key '1' is read as a number, not a string; quote it",
        "policies/t.yml:4:1: error: key 'on' is read as a boolean, not a string; quote it",
        "policies/t.yml:5:1: error: merge keys ('<<') are not supported; write the keys out",
        "policies/t.yml:6:4: error: unsupported tag '!!binary'",
        "policies/t.yml:7:4: error: unsupported tag '!custom'",
    ]


def test_complex_keys_and_collection_tags_are_rejected() -> None:
    assert errors("? [a, b]\n: 1\nm: !!set {a}\n") == [
        "policies/t.yml:1:3: error: a key must be a plain string, not a list or mapping",
        "policies/t.yml:3:4: error: unsupported tag '!!set'",
    ]


def test_recursive_aliases_are_refused() -> None:
    assert errors("a: &r [1, *r]\n") == [
        "policies/t.yml:1:4: error: an alias refers to the value that contains it"
    ]


def test_alias_bombs_are_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    assert errors("\n".join(lines) + "\n") == [
        "policies/t.yml:5:1: error: document too large: more than 100000 values once "
        "aliases are expanded"
    ]


def test_located_yaml_is_frozen() -> None:
    doc = parse_yaml("a: 1\n", "x.yml")
    assert isinstance(doc, LocatedYaml)
    with pytest.raises(AttributeError):
        doc.file = "y.yml"  # type: ignore[misc]


# --- WorktreeSource -------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    names = (
        "policies/b.yml",
        "policies/a.yaml",
        "policies/sub/c.yml",
        "policies/notes.txt",
        "policies/.#b.yml",
        "policies/.drafts/d.yml",
    )
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"# {name}\n", encoding="utf-8")
    (tmp_path / "secret.yml").write_text("password: x\n", encoding="utf-8")
    return root


def test_list_files_is_recursive_sorted_and_filtered(tree: Path) -> None:
    source = WorktreeSource(tree)
    assert source.list_files("policies") == [
        "policies/a.yaml",
        "policies/b.yml",
        "policies/sub/c.yml",
    ]
    assert source.list_files("policies", (".txt",)) == ["policies/notes.txt"]
    assert source.list_files("missing") == []
    assert source.list_files("policies/b.yml") == []
    assert source.root_dir == tree.resolve()
    assert source.root_label == str(tree.resolve())


def test_read_text_reads_relative_posix_paths(tree: Path) -> None:
    source = WorktreeSource(tree)
    assert source.read_text("policies/sub/c.yml") == "# policies/sub/c.yml\n"
    with pytest.raises(FileNotFoundError):
        source.read_text("policies/none.yml")
    with pytest.raises(IsADirectoryError):
        source.read_text("policies")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../secret.yml", "'../secret.yml' leaves the repository ('..' is not allowed)"),
        ("policies/../../secret.yml", "'policies/../../secret.yml' leaves the repository"),
        ("/etc/passwd", "'/etc/passwd' is an absolute path; use a path inside the repository"),
        ("C:/x.yml", "'C:/x.yml' is an absolute path; use a path inside the repository"),
    ],
)
def test_read_text_refuses_paths_outside_the_root(tree: Path, path: str, message: str) -> None:
    with pytest.raises(PathOutsideRootError) as caught:
        WorktreeSource(tree).read_text(path)
    assert caught.value.message.startswith(message)


def test_symlinks_pointing_outside_are_refused(tree: Path) -> None:
    os.symlink(tree.parent / "secret.yml", tree / "policies" / "leak.yml")
    source = WorktreeSource(tree)
    assert "policies/leak.yml" in source.list_files("policies")
    with pytest.raises(PathOutsideRootError) as caught:
        source.read_text("policies/leak.yml")
    assert caught.value.message == (
        "'policies/leak.yml' points outside the repository (via a symlink)"
    )


def test_symlinks_inside_the_root_are_followed(tree: Path) -> None:
    os.symlink(tree / "policies" / "b.yml", tree / "policies" / "link.yml")
    assert WorktreeSource(tree).read_text("policies/link.yml") == "# policies/b.yml\n"
