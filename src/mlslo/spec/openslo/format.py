"""The vocabulary mlslo's OpenSLO documents share between writing (:mod:`mlslo.render.openslo`)
and reading (:mod:`mlslo.spec.openslo`): the annotation keys that carry what OpenSLO has no
field for, OpenSLO's duration shorthand, and names in both alphabets.

OpenSLO names are lowercase (``^[a-z0-9][a-z0-9.|/\\-]*``) while mlslo's may hold capitals
and ``_``; a name that changes on the way out keeps its original in ``mlslo.dev/name``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import timedelta

from mlslo.moments import LONGEST, parse_duration

API_VERSION = "openslo/v1"
API_VERSION_ALPHA = "openslo/v1alpha"
MLSLO_TYPE = "mlslo"
"""The ``metricSource.type`` (and ``DataSource`` type) of what mlslo measures itself."""

PREFIX = "mlslo.dev/"
NAME = PREFIX + "name"
DESCRIPTION = PREFIX + "description"
BUDGET_LOW = PREFIX + "budget-low"
CORRECTIONS = PREFIX + "corrections"
COMPOSITES = PREFIX + "composites"
POLICY = PREFIX + "policy"
POLICIES = PREFIX + "policies"
DEFAULT_POLICY = PREFIX + "default-policy"
DASHBOARD_URL = PREFIX + "dashboard-url"
WINDOW = PREFIX + "window"
BUDGETING = PREFIX + "budgeting"
OBJECTIVE_OP = PREFIX + "objective-op"
ALLOW_REVERSE_OP = PREFIX + "allow-reverse-op"
MIN_SAMPLES = PREFIX + "min-samples"
MAX_CI_WIDTH = PREFIX + "max-ci-width"
RUNBOOK_URL = PREFIX + "runbook-url"
ALERTS = PREFIX + "alerts"
STANDARD_ALERTS = "standard"
CUSTOM_ALERTS = "custom"
LONG_WINDOW = PREFIX + "long-window"
SHORT_WINDOW = PREFIX + "short-window"
FOR = PREFIX + "for"
NO_FOR = "none"
NOTIFIER = PREFIX + "notifier"
PLACEHOLDER = PREFIX + "placeholder"
PROMETHEUS_TIMEOUT = PREFIX + "prometheus-timeout"
DIMENSION = PREFIX + "dimension"
PROMETHEUS_TYPE = "Prometheus"
"""The ``metricSource.type`` of an SLO read from Prometheus (its ``spec`` has the ``query``)."""

CALENDAR_START = "2024-01-01 00:00:00"
"""Midnight of a Monday that is also the first of a month: where mlslo's calendar weeks and
months start, in :data:`CALENDAR_ZONE`."""
CALENDAR_ZONE = "Etc/UTC"
UTC_ZONES = frozenset({"UTC", "Etc/UTC", "Etc/GMT", "GMT", "Etc/Universal", "Etc/Zulu"})

AGGREGATE_TARGET = 0.99
"""OpenSLO requires every objective to have a ``target`` share, which mlslo's aggregate
budgeting (one value over the whole window against a bound) does not have; its objectives are
written with the bound as ``op``/``value`` and this target, and ``mlslo.dev/budgeting``."""

MONTH = timedelta(days=30)
QUARTER = timedelta(days=90)
YEAR = timedelta(days=365)
_SHORTHAND = re.compile(r"^([1-9][0-9]*)([mhdwMQY])$")
_UNITS = {
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
    "M": MONTH,
    "Q": QUARTER,
    "Y": YEAR,
}


def scaled(amount: float, unit: timedelta) -> timedelta | None:
    """``amount`` units as a timedelta, or None when that is not a positive duration mlslo
    can hold (zero, negative, not a number, past :data:`~mlslo.moments.LONGEST`)."""
    try:
        duration = amount * unit
    except (OverflowError, ValueError):
        return None
    return duration if timedelta(0) < duration <= LONGEST else None


def shorthand(duration: timedelta) -> str | None:
    """``duration`` in OpenSLO's shorthand (one whole number and one unit of m, h, d), or
    None when it is not a whole number of minutes."""
    minutes, rest = divmod(duration, timedelta(minutes=1))
    if rest or minutes <= 0:
        return None
    for unit, size in (("d", 1440), ("h", 60), ("m", 1)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    raise AssertionError("unreachable: every whole minute is a number of minutes")


def shorthand_at_least(duration: timedelta, least: timedelta = timedelta(minutes=1)) -> str:
    """The shorthand of ``duration`` rounded up to whole minutes, and at least ``least``:
    for fields that must hold one when mlslo's exact value is kept in an annotation."""
    minutes = max(math.ceil(duration / timedelta(minutes=1)), math.ceil(least.total_seconds() / 60))
    text = shorthand(timedelta(minutes=minutes))
    assert text is not None
    return text


def parse_shorthand(text: object) -> tuple[timedelta, str] | None:
    """An OpenSLO duration as a timedelta and its unit (``M`` counts 30 days, ``Q`` 90 and
    ``Y`` 365), or mlslo's own spelling (``1h30m``, unit ``""``); None if it is neither."""
    if not isinstance(text, str):
        return None
    match = _SHORTHAND.match(text.strip())
    if match:
        duration = scaled(int(match.group(1)), _UNITS[match.group(2)])
        return None if duration is None else (duration, match.group(2))
    try:
        return parse_duration(text), ""
    except ValueError:
        return None


def openslo_name(name: str) -> str:
    """``name`` in OpenSLO's alphabet: lowercase, every other character a ``-``."""
    lowered = re.sub(r"[^a-z0-9.-]", "-", name.lower())
    return re.sub(r"^[^a-z0-9]+", "", lowered) or "x"


def mlslo_name(name: str) -> str:
    """``name`` in mlslo's alphabet (letters, digits, ``_.-``; at most 100 characters)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", name)
    cleaned = re.sub(r"^[^A-Za-z0-9]+", "", cleaned)[:100]
    return cleaned or "slo"


def unique(name: str, taken: Iterable[str]) -> str:
    """``name``, or ``name-2``, ``name-3``, ... when it is taken."""
    used = set(taken)
    candidate, number = name, 1
    while candidate in used:
        number += 1
        candidate = f"{name}-{number}"
    return candidate


def slug(text: str) -> str:
    """A short lowercase name part from free text (``'SLA objective'`` -> ``sla-objective``)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]
