"""Secrets: which variable names look secret, and the one `Masker` every output passes through.

A `Masker` is built once per command from the secret values of the loaded project (see
`policy.secretvars`) and applied by the CLI's output layer to everything it prints or writes:
text, JSON documents, run records and reports, ledger details, crash logs. The rules:

- a secret of at least `MIN_SECRET_LENGTH` characters is replaced by `********` wherever it
  occurs, as a substring of any text; a multi-line secret (a private key) also line by line,
  since diffs and logs show it a line at a time;
- a shorter secret ("42", "yes") would mask half of every report as a substring, so it is masked
  only where a whole value equals it (a variable's value in `explain`, a JSON string);
- a diff that shows any secret is replaced by `HIDDEN_DIFF` as a whole: it says the file
  changed and hides its lines.

Pure: imports only the standard library and pydantic; nothing from the package.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pydantic import BaseModel

MASK = "********"
MIN_SECRET_LENGTH = 4
HIDDEN_DIFF = "content changed (diff hidden: contains a secret)\n"

# Found anywhere in a name, once separators are dropped: `DB_PASSWORD`, `vaultToken`, `apikey`.
SECRET_SUBSTRINGS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "jwt",
    "apikey",
    "privatekey",
)
# Found as a whole word of a name (split at `_ - .` and camelCase): `db_pass`, `api_key`,
# `ssh_keys`, `key_material`, `basic_auth`, `private_pem`; but not `keyboard`, `author` or
# `compass`, which only contain the letters.
SECRET_WORDS = ("pass", "pwd", "key", "keys", "auth", "private")

_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
_PUBLIC_KEY = re.compile(
    r"\s*(-----BEGIN (PGP PUBLIC KEY BLOCK|PUBLIC KEY|CERTIFICATE)-----"
    r"|(ssh-(rsa|dss|ed25519)|ecdsa-sha2-nistp\d+|sk-\S+@openssh\.com) AAAA)"
)

T = TypeVar("T")


def looks_secret(name: str) -> bool:
    """Whether a variable name suggests a secret value: `db_password`, `API-Key`, `jwt`...

    A `host:name` form is judged by the part after the last colon, so a host called
    `tokenizer-01` does not make all of its variables secret."""
    name = name.rsplit(":", 1)[-1]
    squashed = re.sub(r"[^a-z0-9]", "", name.lower())
    if any(word in squashed for word in SECRET_SUBSTRINGS):
        return True
    return any(word.lower() in SECRET_WORDS for word in _WORD.findall(name))


def scalar_texts(value: Any) -> Iterator[str]:
    """Every scalar of `value` (at any depth) as text; booleans and nulls are never secrets."""
    if isinstance(value, Mapping):
        for item in value.values():
            yield from scalar_texts(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from scalar_texts(item)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def named_secret_texts(name: str, value: Any) -> Iterator[str]:
    """The strings a variable holds under secret-looking names, at any depth (`db.password`).
    Only strings: a number under such a name (`token_ttl: 3600`, `key_size: 4096`) is a
    setting, not a secret; and a public key (`lab_apt_key`) is meant to be seen."""
    if looks_secret(name):
        yield from (t for t in _strings(value) if not is_public_key(t))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from named_secret_texts(str(key), item)
    elif isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, Mapping | list | tuple):
                yield from named_secret_texts("", item)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def is_public_key(text: str) -> bool:
    """An ASCII-armored PGP public key, a PEM public key or certificate, or an OpenSSH public
    key line: named like a secret (`apt_key`, `ssh_key`) but meant to be seen."""
    return _PUBLIC_KEY.match(text) is not None


@dataclass(frozen=True)
class Masker:
    """Replaces known secrets in texts and in structured values (pydantic models, dicts, lists).

    Calling it masks one text; `value` masks every string of a structure, hiding `diff` fields
    that show a secret; `diff` hides one diff."""

    secrets: Iterable[str] = frozenset()
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _short: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "secrets", frozenset(self.secrets))
        texts = {s for s in self.secrets if s}
        texts |= {line.strip() for s in texts if "\n" in s for line in s.splitlines()}
        texts.discard("")
        long = sorted((s for s in texts if len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True)
        # longest first, so a secret that contains another one is masked whole
        pattern = re.compile("|".join(re.escape(s) for s in long)) if long else None
        object.__setattr__(self, "_pattern", pattern)
        object.__setattr__(
            self, "_short", frozenset(s for s in texts if len(s) < MIN_SECRET_LENGTH)
        )

    @classmethod
    def from_vars(cls, variables: Mapping[str, Any]) -> Masker:
        """A masker for the values of secret-looking names in `variables`, at any depth."""
        return cls(frozenset(t for k, v in variables.items() for t in named_secret_texts(k, v)))

    def extended(self, secrets: Iterable[str]) -> Masker:
        """A masker that also knows `secrets`."""
        known = frozenset(self.secrets)
        more = frozenset(secrets) - known
        return Masker(known | more) if more else self

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def reveals(self, text: str) -> bool:
        """Whether `text` shows a secret (one long enough to be found inside a text)."""
        return self._pattern is not None and self._pattern.search(text) is not None

    def diff(self, text: str) -> str:
        return HIDDEN_DIFF if self.reveals(text) else text

    def value(self, value: T) -> T:
        """A copy of `value` with every string masked: strings equal to a short secret too,
        and every `diff` field that shows a secret hidden whole."""
        # Imported here, not at the top: every command's start-up imports this module, and
        # `--version` must not pay for pydantic.
        from pydantic import BaseModel

        masked: Any = self._walk(value, "", BaseModel)
        return masked

    def _walk(self, value: Any, name: str, model: type[BaseModel]) -> Any:
        if isinstance(value, str):
            if value in self._short:
                return MASK
            masked = self.diff(value) if name == "diff" else self(value)
            return value if masked == value else masked
        if isinstance(value, model):
            update = {}
            for key in type(value).model_fields:
                item = getattr(value, key)
                masked = self._walk(item, key, model)
                if masked is not item:
                    update[key] = masked
            return value.model_copy(update=update) if update else value
        if isinstance(value, dict):
            walk = self._walk
            return {walk(k, "", model): walk(v, str(k), model) for k, v in value.items()}
        if isinstance(value, list | tuple):
            items = [self._walk(item, name, model) for item in value]
            return tuple(items) if isinstance(value, tuple) else items
        return value
