"""Policy-level settings that reach into resources, and the variables that hold password hashes.

`with_policy_defaults` gives a sysctl entry without `file:` its policy's `sysctl_file`.
`password_variables` names the variables that `users[].password` templates read: their values
are crypt(3) hashes, secret whatever the variable is called, so `policy.secretvars` adds them
to the masker's secrets. Pure: imports the package's model only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeVar

from pydantic import BaseModel

from orchestrator.model.policy import PolicyDocument, Sysctl

M = TypeVar("M", bound=BaseModel)

# The names a template reads, e.g. `{{ deploy_hash }}` or `{{ hashes.deploy | trim }}`: the
# first name of each expression (a dotted or filtered use keeps the whole variable secret).
_TEMPLATE_NAME = re.compile(r"\{\{-?\s*([A-Za-z_][A-Za-z0-9_]*)")


def with_policy_defaults(spec: M, document: PolicyDocument) -> M:
    """`spec` with the settings its policy gives all entries of its kind filled in."""
    if isinstance(spec, Sysctl) and spec.file is None and document.sysctl_file is not None:
        return spec.model_copy(update={"file": document.sysctl_file})
    return spec


def password_variables(documents: Iterable[PolicyDocument]) -> frozenset[str]:
    """Every variable a user's `password:` template reads, in any of `documents`."""
    return frozenset(
        name
        for document in documents
        for user in document.users
        if user.password is not None
        for name in _TEMPLATE_NAME.findall(user.password)
    )
