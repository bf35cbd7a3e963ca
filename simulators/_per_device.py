"""The simulator with per-device credentials: who sends each message, and what the broker lets through.

Every device publishes through its own connection, signed in as itself with its password from
``secrets.csv`` (CONTRACT §10: ``principal,role,password``, written by ``firegrid credentials``).
Each run of ``firegrid credentials`` replaces that file with the passwords it made (a rotation, a
new device): earlier files kept beside it as ``secrets.<name>.csv`` are read too, the most
recently written file winning for a principal in several.
A message goes out through the connection of the device whose topic it is. A message on a topic
that is no device's own (the hostile cases ``kind_mismatch``, ``district_mismatch``,
``unknown_device``, ``unknown_kind``, ``short_topic``, ``long_topic``, ``topic_injection``) is
sent by the device the topic names, else by the first device of the kind it names, else by the
registry's first device; the broker's ACL refuses it (a device may publish only its own topic), so
ingest never sees it. Such messages go at QoS 1 to learn the broker's verdict, and the ground
truth lists them as ``refused`` instead of as rejects.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

import orjson

from devices import ConfigError
from simulators._connections import DeviceConnections
from simulators._physics import Fleet
from simulators._truth import ExpectedReject, Plan

SECRETS: Final = "secrets.csv"
SECRETS_HEADER: Final = ("principal", "role", "password")
"""CONTRACT §10's ``secrets.csv``."""
KEPT: Final = "secrets.*.csv"
"""Earlier runs' ``secrets.csv``, kept beside it under another name (each run replaces it)."""
SHOWN: Final = 5
"""Device ids named in one error message, at most."""


class CredentialsError(ConfigError):
    """The devices' passwords cannot be had: no or no readable ``secrets.csv``, or devices missing."""


class MissingPasswordsError(CredentialsError):
    """``secrets.csv`` lacks the password of some devices of the registry."""


def read_passwords(credentials: Path) -> dict[str, str]:
    """``principal → password`` of ``credentials/secrets.csv`` and of the earlier runs' files kept
    beside it as ``secrets.*.csv``, the most recently written file winning;
    :class:`CredentialsError` (one line) when there is none or one cannot be read."""
    files = [credentials / SECRETS, *credentials.glob(KEPT)]
    try:
        dated = sorted((path.stat().st_mtime_ns, str(path)) for path in files if path.exists())
    except OSError as exc:
        raise CredentialsError(f"cannot read {credentials}: {exc.strerror or exc}") from None
    if not dated:
        raise CredentialsError(
            f"no {credentials / SECRETS}: write the credentials with 'firegrid credentials --registry "
            f"REGISTRY --out {credentials}' (or point --credentials / FIREGRID_CREDENTIALS at them)"
        )
    passwords: dict[str, str] = {}
    for _, name in dated:
        passwords.update(_read_secrets(Path(name)))
    return passwords


def _read_secrets(path: Path) -> dict[str, str]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = csv.reader(handle)
            header = next(rows, None)
            if header is None or tuple(header) != SECRETS_HEADER:
                raise CredentialsError(
                    f"{path} is not a secrets.csv of 'firegrid credentials' "
                    f"(its header must be {','.join(SECRETS_HEADER)})"
                )
            return {row[0]: row[2] for row in rows if len(row) == len(SECRETS_HEADER)}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CredentialsError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def rotate_command(devices: Iterable[str], registry: Path, credentials: Path, prefix: str) -> str:
    """The ``firegrid credentials`` command that makes new passwords for ``devices``."""
    command = f"firegrid credentials --registry {registry} --out {credentials}"
    if prefix:
        command += f" --topic-prefix {prefix}"
    return f"{command} --rotate {' '.join(devices)}"


def keep_note(credentials: Path) -> str:
    """Why and how to keep the current ``secrets.csv`` before a re-run of ``firegrid credentials``."""
    return (
        f"it replaces {credentials / SECRETS} with the passwords it makes: first keep the current file "
        f"as {credentials / 'secrets.<name>.csv'}, which the simulator reads too"
    )


def missing_passwords(
    missing: list[str], *, registry: Path, credentials: Path, prefix: str, what: str = "device"
) -> MissingPasswordsError:
    """The error for devices (or workers: ``what``) without a password: which, why, and how to fix it."""
    which = f"{what} {missing[0]}" if len(missing) == 1 else f"{len(missing):,} {what}s ({named(missing)})"
    if len(missing) <= SHOWN:
        fix = f"re-run '{rotate_command(missing, registry, credentials, prefix)}' ({keep_note(credentials)})"
    else:
        fix = (
            f"if an earlier {SECRETS} had them, put it back as {credentials / 'secrets.<name>.csv'}; "
            f"else re-run '{rotate_command(['ID', '...'], registry, credentials, prefix)}' naming each "
            f"({keep_note(credentials)})"
        )
    return MissingPasswordsError(
        f"{credentials / SECRETS} has no password for {which} of the registry (each run of "
        f"'firegrid credentials' writes only the passwords it makes): {fix}; then reload the broker "
        "(SIGHUP)"
    )


def named(devices: list[str]) -> str:
    """The first few of ``devices``, and how many more."""
    more = f" and {len(devices) - SHOWN:,} more" if len(devices) > SHOWN else ""
    return ", ".join(devices[:SHOWN]) + more


class Senders:
    """Which device sends each message: the connection index (into :attr:`names`) of a topic."""

    def __init__(self, fleet: Fleet, prefix: str) -> None:
        self.prefix = prefix
        self.names: list[str] = []
        self.own: dict[str, int] = {}
        """A device's own topic → its index."""
        self._index: dict[str, int] = {}
        self._first_of_kind: dict[str, int] = {}
        for kind, bank in fleet.banks.items():
            for device_id, topic in zip(bank.device_ids, bank.topics(prefix), strict=True):
                i = len(self.names)
                self.names.append(device_id)
                self.own[topic] = i
                self._index[device_id] = i
                self._first_of_kind.setdefault(kind, i)

    def sender(self, topic: str) -> int:
        """The topic's owner; else the device it names; else the first device of the kind it names;
        else the first device."""
        i = self.own.get(topic)
        if i is not None:
            return i
        levels = (topic.removeprefix(self.prefix) if self.prefix else topic).split("/")
        for level in reversed(levels):  # the device id is the last level of a device topic
            if level in self._index:
                return self._index[level]
        for level in levels:
            if level in self._first_of_kind:
                return self._first_of_kind[level]
        return 0

    def is_own(self, topic: str) -> bool:
        return topic in self.own


@dataclass(frozen=True, slots=True)
class Refused:
    """A message of the plan the broker is expected to refuse: its topic is not its sender's."""

    reject: ExpectedReject
    sender: str


def split_rejects(plan: Plan, senders: Senders) -> tuple[list[ExpectedReject], list[Refused]]:
    """The plan's expected rejects that reach ingest (on their sender's own topic), and those the
    broker refuses."""
    kept: list[ExpectedReject] = []
    refused: list[Refused] = []
    for reject in plan.rejects:
        if senders.is_own(reject.topic):
            kept.append(reject)
        else:
            refused.append(Refused(reject, senders.names[senders.sender(reject.topic)]))
    return kept, refused


def write_truth(plan: Plan, path: Path, senders: Senders) -> tuple[int, int]:
    """The ground truth of a per-device run: as without, except that the rejects the broker
    refuses are ``refused`` lines; returns (rejects, refused)."""
    kept, refused = split_rejects(plan, senders)
    lines = replace(plan, rejects=kept).truth_lines()
    for item in refused:
        lines.append(
            orjson.dumps(
                {
                    "refused": "not_authorized",
                    "topic": item.reject.topic,
                    "sender": item.sender,
                    "case": item.reject.case,
                    "scenario": plan.scenario.name,
                    "step": item.reject.step,
                }
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return len(kept), len(refused)


class DevicePublisher:
    """The runner's publisher with per-device connections: routes each message to its sender."""

    def __init__(self, connections: DeviceConnections, senders: Senders) -> None:
        self.connections = connections
        self.senders = senders

    def publish(self, topic: str, payload: bytes, kind: str = "") -> bool:
        i = self.senders.own.get(topic)
        if i is not None:
            return self.connections.publish(i, topic, payload, kind)
        return self.connections.publish(self.senders.sender(topic), topic, payload, kind, watch=True)

    def service(self, timeout: float = 0.0) -> None:
        self.connections.service(timeout)

    def idle(self, seconds: float) -> None:
        self.connections.idle(seconds)

    def drain(self, timeout: float) -> int:
        return self.connections.drain(timeout)

    def close(self) -> None:
        self.connections.close()
