"""Alert channels: the log, an Atom feed file, a webhook (signed JSON POST), e-mail (SMTP).

A channel sends one stored alert (:class:`~sitewatch.store.watchstate.AlertRecord`); a failure raises
:class:`DeliveryError` and the watcher retries it later with back-off. The Atom feed is rewritten
whole from the store's newest alerts on every change (atomic replace), so it never holds an alert
twice. Webhook bodies are signed: header ``X-Sitewatch-Signature: sha256=<hex HMAC-SHA256 of the
body>`` with the configured secret; ``X-Sitewatch-Alert`` carries the alert id, so a receiver can
drop the rare repeat (a watcher killed after sending but before recording the delivery).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import smtplib
import ssl
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import requests

from sitewatch import __version__
from sitewatch.errors import SitewatchError
from sitewatch.store.watchstate import AlertRecord
from sitewatch.watch.config import AtomChannel, EmailChannel, LogChannel, WebhookChannel

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Sitewatch-Signature"
ALERT_HEADER = "X-Sitewatch-Alert"


class DeliveryError(SitewatchError, OSError):
    """An alert could not be delivered on a channel (unreachable server, refused, error status)."""


def alert_json(a: AlertRecord) -> dict[str, Any]:
    """The JSON document of an alert (webhook body, e-mail attachment)."""
    return {
        "id": a.id, "site": a.site, "kind": a.kind, "subject": a.subject, "title": a.title,
        "created": a.created.isoformat(), "source": a.source, "item": a.item_id, "pass_id": a.pass_id,
        **a.payload,
    }  # fmt: skip


def sign(body: bytes, secret: bytes) -> str:
    """The signature header value of a webhook body: ``sha256=`` + hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class AlertChannel(ABC):
    """Sends alerts somewhere."""

    name: str
    #: Push channels wait for the end of a site's quiet hours; the log and the feed do not.
    push: bool = True

    @abstractmethod
    def send(self, alert: AlertRecord) -> None:
        """Deliver one alert.

        Raises:
            DeliveryError: it was not delivered (the watcher retries later).
        """


class LogSink(AlertChannel):
    push = False

    def __init__(self, cfg: LogChannel) -> None:
        self.name = cfg.name

    def send(self, alert: AlertRecord) -> None:
        ev = alert.payload.get("evidence") or {}
        report = f" report: {ev['report']}" if ev.get("report") else ""
        log.warning("ALERT %s%s", alert.title, report)


class AtomFeed(AlertChannel):
    """An Atom (RFC 4287) feed file of the newest alerts, rewritten from the store on each send."""

    push = False

    def __init__(self, cfg: AtomChannel, newest: Callable[[int], list[AlertRecord]]) -> None:
        self.name = cfg.name
        self.path = cfg.path.expanduser()
        self.entries = cfg.entries
        self._newest = newest

    def send(self, alert: AlertRecord) -> None:
        try:
            write_atom(self.path, self._newest(self.entries))
        except OSError as e:
            raise DeliveryError(f"Atom feed {self.path}: cannot write ({e})") from e


def write_atom(path: Path, alerts: list[AlertRecord]) -> None:
    """Write an Atom feed of ``alerts`` (newest first) to ``path`` atomically."""
    body = atom_document(alerts, f"urn:sitewatch:alerts:{path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atom_document(alerts: list[AlertRecord], feed_id: str, title: str = "sitewatch alerts") -> bytes:
    """An Atom (RFC 4287) feed of ``alerts`` (newest first), UTF-8 XML; each entry's content is the alert
    JSON."""
    ns = "http://www.w3.org/2005/Atom"
    ET.register_namespace("", ns)
    feed = ET.Element(f"{{{ns}}}feed")

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        el = ET.SubElement(parent, f"{{{ns}}}{tag}", attrs)
        if text is not None:
            el.text = text
        return el

    sub(feed, "id", feed_id)
    sub(feed, "title", title)
    sub(feed, "updated", (alerts[0].created if alerts else _epoch()).isoformat())
    sub(feed, "generator", "sitewatch", version=__version__)
    for a in alerts:
        e = sub(feed, "entry")
        sub(e, "id", f"urn:sitewatch:alert:{a.site}:{a.id}")
        sub(e, "title", a.title)
        sub(e, "updated", a.created.isoformat())
        sub(sub(e, "author"), "name", "sitewatch")
        sub(e, "category", term=a.kind)
        sub(e, "category", term=a.site, scheme="urn:sitewatch:site")
        report = (a.payload.get("evidence") or {}).get("report")
        if report:
            sub(
                e,
                "link",
                href=Path(report).resolve().as_uri()
                if not str(report).startswith(("http:", "https:"))
                else report,
                rel="alternate",
            )
        sub(e, "content", json.dumps(alert_json(a), indent=1, default=str), type="text")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def _epoch():  # noqa: ANN202
    from datetime import UTC, datetime

    return datetime(1970, 1, 1, tzinfo=UTC)


class Webhook(AlertChannel):
    """JSON POST of the alert, signed with HMAC-SHA256; any status other than 2xx is a failure."""

    def __init__(self, cfg: WebhookChannel) -> None:
        self.name = cfg.name
        self.cfg = cfg
        self.secret = cfg.secret()

    def send(self, alert: AlertRecord) -> None:
        body = json.dumps(alert_json(alert), default=str, sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            ALERT_HEADER: str(alert.id),
            "User-Agent": f"sitewatch/{__version__}",
        }
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, self.secret)
        problem = ""
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                time.sleep(0.5 * 2 ** (attempt - 1))
            try:
                r = requests.post(self.cfg.url, data=body, headers=headers, timeout=self.cfg.timeout_s)
            except requests.RequestException as e:
                problem = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                continue
            if 200 <= r.status_code < 300:
                return
            problem = f"HTTP {r.status_code} {r.reason}"
            if 400 <= r.status_code < 500 and r.status_code not in (408, 429):
                break  # the receiver refuses this alert: retrying now will not help
        raise DeliveryError(f"webhook {self.cfg.url}: {problem} (after {attempt + 1} attempt(s))")


class Email(AlertChannel):
    """A plain-text e-mail per alert (SMTP, optional STARTTLS/SSL and login), the alert JSON attached."""

    def __init__(self, cfg: EmailChannel) -> None:
        self.name = cfg.name
        self.cfg = cfg

    def message(self, alert: AlertRecord) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = f"[sitewatch] {alert.title}"[:250]
        msg["From"] = self.cfg.sender
        msg["To"] = ", ".join(self.cfg.to)
        msg["Message-ID"] = f"<sitewatch-alert-{alert.id}-{alert.site}@sitewatch>"
        ev = alert.payload.get("evidence") or {}
        lines = [alert.title, ""]
        ind = alert.payload.get("indicator")
        if ind:
            lines.append(
                f"Indicator {ind['name']}: {ind['state']} (was {alert.payload.get('previous_state')}), "
                f"values {ind['values']}"
            )
        p, q = ev.get("pass") or {}, ev.get("previous_pass") or {}
        if p:
            lines.append(f"Pass {p.get('id')} ({p.get('acquired')}): {p.get('counts')}")
        if q:
            lines.append(f"Previous pass {q.get('id')} ({q.get('acquired')}): {q.get('counts')}")
        if ev.get("changes"):
            lines.append(f"Changes: {ev['changes']['sentence']}")
        if ev.get("report"):
            lines.append(f"Report: {ev['report']}")
        msg.set_content("\n".join(lines) + "\n")
        msg.add_attachment(json.dumps(alert_json(alert), indent=1, default=str).encode(),
                           maintype="application", subtype="json",
                           filename=f"alert-{alert.id}.json")  # fmt: skip
        return msg

    def send(self, alert: AlertRecord) -> None:
        c = self.cfg
        try:
            if c.ssl:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    c.host, c.port, timeout=c.timeout_s, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout_s)
            with smtp:
                if c.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if c.username:
                    smtp.login(c.username, os.environ.get(c.password_env or "", ""))
                smtp.send_message(self.message(alert))
        except (OSError, smtplib.SMTPException) as e:
            raise DeliveryError(
                f"e-mail via {c.host}:{c.port}: {type(e).__name__}: "
                f"{str(e).splitlines()[0][:200] if str(e) else ''}"
            ) from e


def make_channels(cfgs: list[Any], newest: Callable[[int], list[AlertRecord]]) -> dict[str, AlertChannel]:
    """The channels of a configuration, by name."""
    out: dict[str, AlertChannel] = {}
    for c in cfgs:
        if isinstance(c, LogChannel):
            out[c.name] = LogSink(c)
        elif isinstance(c, AtomChannel):
            out[c.name] = AtomFeed(c, newest)
        elif isinstance(c, WebhookChannel):
            out[c.name] = Webhook(c)
        else:
            out[c.name] = Email(c)
    return out
