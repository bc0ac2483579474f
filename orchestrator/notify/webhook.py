"""Sending rollout events to the inventory's webhooks over HTTP(S), with the standard library.

`Notifier` reads each webhook's URL once (from its environment variable or file), so the caller
can mask the URLs before anything is printed or recorded; then each event is POSTed as JSON to
every webhook that wants it. A delivery that fails is retried a few times with a short backoff
and recorded as failed: a notification never fails, slows for long or stops a rollout. Imports
the standard library (urllib), `model` and `notify.messages`; never the CLI.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.model.inventory import Webhook
from orchestrator.model.notification import NotificationDelivery, RolloutEvent
from orchestrator.notify.messages import message_body

ATTEMPTS = 3
FIRST_BACKOFF_SECONDS = 0.25
TIMEOUT_SECONDS = 5.0


def url_source(hook: Webhook) -> str:
    return f"env:{hook.url_env}" if hook.url_env else f"file:{hook.url_file}"


def read_webhook_url(hook: Webhook, environ: Mapping[str, str]) -> str:
    """The webhook's URL; ValueError saying why it cannot be read or is not http(s)."""
    if hook.url_env:
        url = environ.get(hook.url_env, "").strip()
        if not url:
            raise ValueError(f"environment variable {hook.url_env} is not set")
    else:
        try:
            url = Path(str(hook.url_file)).expanduser().read_text().strip()
        except OSError as error:
            raise ValueError(f"cannot read {hook.url_file}: {error.strerror or error}") from None
    if not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
        raise ValueError("its URL is not an http:// or https:// URL")
    return url


@dataclass
class Notifier:
    webhooks: Sequence[Webhook]
    environ: Mapping[str, str]
    mask: Callable[[str], str] = lambda text: text
    sleep: Callable[[float], None] = time.sleep
    attempts: int = ATTEMPTS
    deliveries: list[NotificationDelivery] = field(default_factory=list)
    _urls: dict[str, str | ValueError] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for hook in self.webhooks:
            try:
                self._urls[hook.name] = read_webhook_url(hook, self.environ)
            except ValueError as error:
                self._urls[hook.name] = error

    @property
    def secrets(self) -> list[str]:
        """The URLs read: every output must mask them."""
        return [url for url in self._urls.values() if isinstance(url, str)]

    def __call__(self, event: RolloutEvent) -> None:
        for hook in self.webhooks:
            if event.kind in hook.events:
                self.deliveries.append(self._deliver(hook, event))

    def _deliver(self, hook: Webhook, event: RolloutEvent) -> NotificationDelivery:
        url = self._urls[hook.name]
        attempts, error = 0, None
        if isinstance(url, ValueError):
            error = f"not sent: {url}"
        else:
            body = json.dumps(message_body(event, hook.format)).encode()
            for attempts in range(1, self.attempts + 1):
                error = _post(url, body)
                if error is None:
                    break
                if attempts < self.attempts:
                    self.sleep(FIRST_BACKOFF_SECONDS * 2 ** (attempts - 1))
        return NotificationDelivery(
            webhook=hook.name,
            format=hook.format,
            source=url_source(hook),
            event=event.kind,
            ring=event.ring,
            status="failed" if error else "delivered",
            attempts=attempts,
            error=self.mask(error) if error else None,
        )


def _post(url: str, body: bytes) -> str | None:
    """None when the receiver accepted the body (a 2xx answer); what went wrong otherwise."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:
            answer.read(4096)
            return None
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code} {error.reason}"
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return f"delivery failed: {reason}"
