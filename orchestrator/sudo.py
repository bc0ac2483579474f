"""Commands through sudo, for hosts whose inventory says `ssh.sudo: true`.

`sudo_command` wraps one shell script so the login user runs it as root (or `sudo_user`):
`sudo -n` when no password is given (sudo fails at once instead of prompting), and
`sudo -S -k -p ''` when one is, reading the password from the command's standard input
(`sudo_input`) so it never appears in a command line, a process list or a log. The script is
one quoted argument of `sh -c`, so nothing in it reaches sudo's own options. `sudo_refusal`
turns what sudo says when it refuses into the message a user can act on.
Pure: imports the standard library and the package's model only.
"""

from __future__ import annotations

import shlex

from orchestrator.model.desired import HostTarget

PASSWORD_REQUIRED = ("a password is required", "interactive authentication is required")
WRONG_PASSWORD = ("incorrect password", "sorry, try again", "authentication failure")


def sudo_prefix(target: HostTarget) -> list[str]:
    """The sudo words before the command (`sudo -n -H -u www --`)."""
    words = ["sudo", "-H"]
    words += ["-S", "-k", "-p", ""] if target.sudo_password is not None else ["-n"]
    if target.sudo_user:
        words += ["-u", target.sudo_user]
    return [*words, "--"]


def sudo_command(script: str, target: HostTarget) -> str:
    """`script` as the target runs it: unchanged without sudo, else through sudo and `sh -c`."""
    if not target.sudo:
        return script
    return shlex.join([*sudo_prefix(target), "sh", "-c", script])


def sudo_input(target: HostTarget) -> str | None:
    """What the wrapped command needs on standard input: the password line, or nothing."""
    if not target.sudo or target.sudo_password is None:
        return None
    return target.sudo_password.get_secret_value() + "\n"


def sudo_refusal(target: HostTarget, output: str) -> str | None:
    """The message for a command that sudo refused to run (None when sudo did not refuse)."""
    if not target.sudo:
        return None
    said = output.lower()
    where = f"sudo on {target.name}"
    if any(text in said for text in PASSWORD_REQUIRED):
        return (
            f"{where} asks for a password; set ssh.sudo_password_env (an environment variable) "
            "or ssh.sudo_password_file in the inventory, or allow NOPASSWD for this user"
        )
    if any(text in said for text in WRONG_PASSWORD) and "sudo" in said:
        source = target.sudo_password_source or "the inventory"
        return f"{where} refused the password from {source} (incorrect password)"
    for line in output.splitlines():
        if line.startswith(("sudo:", "sudo-rs:")) or "not in the sudoers" in line:
            return f"{where} failed: {line.strip()}"
    return None
