"""Alert payloads against golden files, and unit tests of the pure parts of alerting: the
state machine, rule checks, what is due to a notifier, and the scaled Workbook rules.

The golden files under tests/golden/ were written by the payload builders and read by eye:
each alert must tell a person woken at night which SLO and dimension, how fast each window
burns against which threshold, how much budget is left, when it runs out, and where the
runbook is. Regenerate them after an intended change with ``MLSLO_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import difflib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mlslo.decide.alerts import AlertState, Check, advance, check
from mlslo.measure.budget import Budget
from mlslo.measure.evaluate import BurnRate, SLOEvaluation
from mlslo.measure.sli import Measurement
from mlslo.render.notifications import (
    Alert,
    Kind,
    alertmanager_payload,
    slack_payload,
    webhook_payload,
)
from mlslo.server.alert_loop import _due
from mlslo.spec import Spec, parse_spec
from mlslo.spec.alert_rules import AlertRule, rule_windows, slo_rules, spec_rules

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("MLSLO_UPDATE_GOLDEN") == "1"
AT = datetime(2026, 3, 11, 14, 5, tzinfo=UTC)
M = timedelta(minutes=1)

SPEC = parse_spec("""
service: fraud-scoring
dashboard_url: https://mlslo.example.com/
slos:
  - name: uptime
    dimension: availability
    objective: {target: 0.999}
    runbook_url: https://runbooks.example.com/fraud-scoring/uptime
  - name: accuracy
    dimension: accuracy
    sli: {metric: f1, positive_label: 1}
    objective: {target: 0.92}
    min_samples: 1000
    runbook_url: https://runbooks.example.com/fraud-scoring/accuracy
  - name: freshness
    dimension: freshness
    sli: {lag_threshold: 15m}
    objective: {target: 0.95}
    min_samples: 100
    runbook_url: https://runbooks.example.com/fraud-scoring/freshness
  - name: fairness
    dimension: fairness
    sli: {metric: true_positive_rate_difference, attribute: group, min_group_size: 200}
    objective: {target: 0.05}
    min_samples: 2000
""")


def rule(slo: str, name: str, spec: Spec = SPEC) -> AlertRule:
    found = [r for r in slo_rules(spec.slo(slo), spec.bucket) if r.name == name]
    assert len(found) == 1, [r.name for r in slo_rules(spec.slo(slo), spec.bucket)]
    return found[0]


def make_alert(
    slo: str,
    name: str,
    *,
    state: AlertState,
    long_rate: float | None = None,
    short_rate: float | None = None,
    samples: tuple[int, int] = (0, 0),
    remaining: float | None = None,
    hours_left: float | None = None,
    at: datetime = AT,
    dashboard: str | None = SPEC.dashboard_url,
) -> Alert:
    r = rule(slo, name)
    result = Check(
        r, True, None, long_rate, short_rate, samples[0], samples[1], remaining, hours_left
    )
    return Alert(SPEC.service, SPEC.slo(slo), r, result, state, at, dashboard)


def notifications() -> list[tuple[Kind, Alert]]:
    """Four notifications as the replay's incidents produce them."""
    outage = make_alert(
        "uptime",
        "page-1h-5m",
        state=AlertState("uptime/page-1h-5m", "firing", AT - 4 * M, AT - 4 * M),
        long_rate=83.33,
        short_rate=1000.0,
        samples=(1800, 150),
        remaining=0.62,
        hours_left=0.62 * 720 / 83.33,
    )
    drift = make_alert(
        "accuracy",
        "ticket-3d-6h",
        state=AlertState(
            "accuracy/ticket-3d-6h",
            "firing",
            AT - timedelta(hours=12, minutes=30),
            AT - timedelta(hours=12, minutes=30),
            notified=(("hook", AT - timedelta(hours=12, minutes=30)),),
        ),
        long_rate=1.0625,
        short_rate=1.2125,
        samples=(129_600, 10_800),
        remaining=0.41,
        hours_left=0.41 * 720 / 1.25,
    )
    stall = make_alert(
        "freshness",
        "page-6h-30m",
        state=AlertState(
            "freshness/page-6h-30m",
            "resolved",
            AT - timedelta(hours=2, minutes=30),
            AT - timedelta(hours=2, minutes=30),
            AT,
            notified=(("hook", AT - timedelta(hours=2, minutes=30)),),
        ),
        long_rate=10.02,
        short_rate=0.07,
        samples=(10_800, 900),
        remaining=0.55,
        hours_left=None,
    )
    spent = make_alert(
        "fairness",
        "exhausted",
        state=AlertState("fairness/exhausted", "firing", AT, AT),
        remaining=-0.18,
        hours_left=0.0,
        dashboard=None,
    )
    return [("firing", outage), ("repeat", drift), ("resolved", stall), ("firing", spent)]


def assert_golden(name: str, document: Any) -> None:
    """Compare with tests/golden/<name> (rewrite it with MLSLO_UPDATE_GOLDEN=1)."""
    path = GOLDEN / name
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing; run with MLSLO_UPDATE_GOLDEN=1 to write it"
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                text.splitlines(keepends=True),
                f"golden/{name}",
                "now",
            )
        )
        pytest.fail(
            f"{name} differs from its golden file (MLSLO_UPDATE_GOLDEN=1 accepts the change):\n"
            f"{diff}",
            pytrace=False,
        )


# --- golden payloads ------------------------------------------------------------------------


def test_webhook_payload_golden() -> None:
    payload = webhook_payload(SPEC.service, notifications(), AT)
    assert_golden("webhook_payload.json", payload)
    assert [a["event"] for a in payload["alerts"]] == ["firing", "repeat", "resolved", "firing"]
    assert json.loads(json.dumps(payload)) == payload  # plain JSON, nothing lost


def test_slack_payload_golden() -> None:
    payload = slack_payload(SPEC.service, notifications(), AT)
    assert_golden("slack_payload.json", payload)
    assert payload["text"].splitlines()[0].startswith("FIRING: fraud-scoring: uptime")
    assert len(payload["blocks"]) == 4
    assert slack_payload(SPEC.service, [], AT) == {"text": "fraud-scoring: no alerts", "blocks": []}


def test_alertmanager_payload_golden() -> None:
    payload = alertmanager_payload(notifications())
    assert_golden("alertmanager_payload.json", payload)
    # only a resolved alert carries endsAt; it tells Alertmanager the alert is over
    assert ["endsAt" in entry for entry in payload] == [False, False, True, False]
    assert payload[2]["endsAt"] == "2026-03-11T14:05:00Z"
    assert payload[2]["startsAt"] == "2026-03-11T11:35:00Z"


def test_payloads_tell_a_person_what_is_wrong() -> None:
    """What a person woken at night needs, in every format: the SLO and its dimension, the
    burn rate of each window against the threshold, the budget left, the time to exhaustion,
    the runbook."""
    page = alertmanager_payload(notifications()[:1])[0]
    labels, notes = page["labels"], page["annotations"]
    assert labels["slo"] == "uptime" and labels["dimension"] == "availability"
    assert labels["severity"] == "page"
    assert notes["burn_rate_long"] == "83.330" and notes["burn_rate_short"] == "1000.000"
    assert notes["budget_remaining"] == "0.6200"
    assert notes["time_to_exhaustion"] == "5.4 hours"
    assert notes["runbook_url"] == "https://runbooks.example.com/fraud-scoring/uptime"
    description = notes["description"]
    for phrase in (
        "SLO uptime (availability: availability >= 99.9% over 30d)",
        "83.33× over the last 1h",
        "1000.00× over the last 5m",
        "threshold 14.4×",
        "62.0% of the budget is left",
        "gone in 5.4 hours",
        "Runbook: https://runbooks.example.com/fraud-scoring/uptime",
        "Dashboard: https://mlslo.example.com/slo/uptime",
    ):
        assert phrase in description, phrase
    webhook = webhook_payload(SPEC.service, notifications(), AT)["alerts"]
    drift = webhook[1]
    assert drift["event"] == "repeat" and drift["status"] == "firing"
    assert (drift["long_window"], drift["short_window"]) == ("3d", "6h")
    assert "gone in 9.8 days" in drift["description"]
    slack = slack_payload(SPEC.service, notifications(), AT)["blocks"]
    texts = [b["text"]["text"] for b in slack]
    assert texts[0].startswith(":rotating_light: *FIRING* · page · ")
    assert texts[1].startswith(":warning: *STILL FIRING* · ticket · ")
    assert texts[2].startswith(":white_check_mark: *RESOLVED* · page · ")
    assert "<https://mlslo.example.com/slo/uptime|Open the dashboard>" in texts[0]
    # no dashboard and no runbook: neither is invented
    spent = alertmanager_payload(notifications()[3:])[0]
    assert "runbook_url" not in spent["annotations"] and "generatorURL" not in spent
    assert spent["labels"]["alertname"] == "MlsloErrorBudgetExhausted"
    assert "has spent its whole error budget" in spent["annotations"]["description"]
    assert "gone in" not in spent["annotations"]["description"]


# --- state.advance ----------------------------------------------------------------------------


def test_advance_inactive_to_firing_without_for() -> None:
    state, event = advance(AlertState("s/r"), True, AT, timedelta(0))
    assert event == "firing"
    assert (state.status, state.since, state.fired_at, state.resolved_at) == (
        "firing",
        AT,
        AT,
        None,
    )


def test_advance_waits_for_the_for_duration() -> None:
    for_ = timedelta(minutes=5)
    state, event = advance(AlertState("s/r"), True, AT, for_)
    assert (state.status, state.since, event) == ("pending", AT, None)
    state, event = advance(state, True, AT + 4 * M, for_)
    assert (state.status, state.since, event) == ("pending", AT, None)
    state, event = advance(state, True, AT + 5 * M, for_)
    assert (state.status, state.since, state.fired_at, event) == (
        "firing",
        AT,
        AT + 5 * M,
        "firing",
    )


def test_advance_pending_that_clears_goes_back_to_inactive() -> None:
    pending = AlertState("s/r", "pending", since=AT, notified=(("hook", AT - M),))
    state, event = advance(pending, False, AT + M, timedelta(minutes=5))
    assert event is None
    assert state == AlertState("s/r", "inactive", notified=(("hook", AT - M),))
    # and a later pending counts its for: from the new start
    state, _ = advance(state, True, AT + 2 * M, timedelta(minutes=5))
    assert (state.status, state.since) == ("pending", AT + 2 * M)


def test_advance_firing_stays_then_resolves() -> None:
    firing = AlertState("s/r", "firing", since=AT, fired_at=AT)
    state, event = advance(firing, True, AT + M, timedelta(0))
    assert (state, event) == (firing, None)
    state, event = advance(firing, False, AT + 9 * M, timedelta(0))
    assert event == "resolved"
    assert (state.status, state.fired_at, state.resolved_at) == ("resolved", AT, AT + 9 * M)
    again, event = advance(state, False, AT + 10 * M, timedelta(0))
    assert (again, event) == (state, None)


def test_advance_resolved_to_pending_again_keeps_what_was_notified() -> None:
    resolved = AlertState("s/r", "resolved", AT, AT, AT + 9 * M, notified=(("hook", AT + 9 * M),))
    state, event = advance(resolved, True, AT + 20 * M, timedelta(minutes=5))
    assert event is None
    assert state == AlertState("s/r", "pending", since=AT + 20 * M, notified=resolved.notified)
    state, event = advance(state, True, AT + 25 * M, timedelta(minutes=5))
    assert (state.status, state.fired_at, state.resolved_at, event) == (
        "firing",
        AT + 25 * M,
        None,
        "firing",
    )
    # with no for:, resolved -> firing in one step, with a new fired_at
    state, event = advance(resolved, True, AT + 20 * M, timedelta(0))
    assert (state.status, state.fired_at, event) == ("firing", AT + 20 * M, "firing")


def test_advance_inactive_stays_inactive() -> None:
    state = AlertState("s/r")
    assert advance(state, False, AT, timedelta(0)) == (state, None)


def test_alert_state_round_trips_through_its_document() -> None:
    state = AlertState("s/r", "resolved", AT, AT + M, AT + 2 * M, (("a", AT), ("b", AT + M)))
    document = json.loads(json.dumps(state.as_dict()))
    assert AlertState.from_dict(document) == state
    assert state.with_notified("a", None).notified == (("b", AT + M),)
    assert state.with_notified("c", AT).last_notified("c") == AT


# --- rules.check --------------------------------------------------------------------------------


def slo_result(
    slo: str,
    rates: dict[timedelta, tuple[float | None, int]],
    *,
    status: str = "healthy",
    remaining: float | None = 0.5,
    hours: float | None = 100.0,
) -> SLOEvaluation:
    return SLOEvaluation(
        SPEC.slo(slo),
        AT - timedelta(days=30),
        AT,
        Measurement(0.95, 50_000),
        True,
        Budget(None if remaining is None else 1 - remaining, remaining, status),  # type: ignore[arg-type]
        tuple(BurnRate(w, v, n) for w, (v, n) in rates.items()),
        {"1h": hours, "1d": None},
    )


H, FIVE = timedelta(hours=1), timedelta(minutes=5)


def test_check_fires_when_both_windows_burn_past_the_threshold() -> None:
    r = rule("uptime", "page-1h-5m")
    result = check(r, slo_result("uptime", {H: (20.0, 1800), FIVE: (30.0, 150)}), 1)
    assert result.active and result.suppressed is None
    assert (result.long_rate, result.short_rate) == (20.0, 30.0)
    assert (result.long_samples, result.short_samples) == (1800, 150)
    assert (result.remaining, result.hours_left) == (0.5, 100.0)
    # one window at or below the threshold is not enough (the comparison is strict)
    assert not check(r, slo_result("uptime", {H: (14.4, 1800), FIVE: (99.0, 150)}), 1).active
    assert not check(r, slo_result("uptime", {H: (99.0, 1800), FIVE: (3.0, 150)}), 1).active


def test_check_suppresses_windows_with_too_few_samples() -> None:
    r = rule("accuracy", "page-1h-5m")
    burning = {H: (20.0, 1800), FIVE: (30.0, 150)}
    result = check(r, slo_result("accuracy", burning), 1000)
    assert not result.active
    assert result.suppressed == (
        "the 5m window has 150 samples, fewer than min_samples 1000: too few to fire"
    )
    assert (result.long_rate, result.short_rate) == (20.0, 30.0)  # still reported
    thin = check(r, slo_result("accuracy", {H: (20.0, 999), FIVE: (30.0, 150)}), 1000)
    assert thin.suppressed is not None and thin.suppressed.startswith("the 1h window has 999")
    enough = check(r, slo_result("accuracy", {H: (20.0, 1000), FIVE: (30.0, 1000)}), 1000)
    assert enough.active and enough.suppressed is None
    # a window the evaluation did not compute counts as no samples
    missing = check(r, slo_result("accuracy", {H: (20.0, 1800)}), 1)
    assert not missing.active
    assert missing.suppressed == (
        "the 5m window has 0 samples, fewer than min_samples 1: too few to fire"
    )


def test_check_null_burn_rates_never_fire() -> None:
    r = rule("fairness", "ticket-1d-2h")
    day, two = timedelta(days=1), timedelta(hours=2)
    for rates in (
        {day: (None, 40_000), two: (50.0, 3600)},
        {day: (50.0, 40_000), two: (None, 3600)},
        {day: (None, 40_000), two: (None, 3600)},
    ):
        result = check(r, slo_result("fairness", rates), 1)
        assert not result.active and result.suppressed is None, rates


def test_check_exhausted_rule() -> None:
    r = rule("uptime", "exhausted")
    gone = check(r, slo_result("uptime", {}, status="exhausted", remaining=-0.2, hours=0.0), 1)
    assert gone.active and gone.suppressed is None
    assert (gone.remaining, gone.hours_left, gone.long_rate) == (-0.2, 0.0, None)
    assert not check(r, slo_result("uptime", {}, status="low", remaining=0.1), 1).active
    thin = check(r, slo_result("uptime", {}, status="insufficient_data", remaining=None), 1)
    assert not thin.active
    assert thin.suppressed == "budget status is insufficient_data"
    none = check(r, slo_result("uptime", {}, status="no_data", remaining=None), 1)
    assert (none.active, none.suppressed) == (False, "budget status is no_data")


# --- engine._due ------------------------------------------------------------------------------


def due(
    state: AlertState,
    at: datetime,
    *,
    refresh: bool = False,
    send_resolved: bool = True,
    repeat: timedelta = timedelta(hours=4),
) -> Kind | None:
    alert = make_alert("uptime", "page-1h-5m", state=state, at=at)
    return _due(alert, "hook", refresh, send_resolved, repeat, at)


def test_due_firing_is_sent_once_then_repeated() -> None:
    firing = AlertState("uptime/page-1h-5m", "firing", AT, AT)
    assert due(firing, AT) == "firing"
    told = firing.with_notified("hook", AT)
    assert due(told, AT) is None
    assert due(told, AT + timedelta(hours=4) - M) is None
    assert due(told, AT + timedelta(hours=4)) == "repeat"
    repeated = told.with_notified("hook", AT + timedelta(hours=4))
    assert due(repeated, AT + timedelta(hours=5)) is None
    assert due(repeated, AT + timedelta(hours=8)) == "repeat"
    # another notifier's delivery does not count for this one
    assert due(firing.with_notified("pager", AT), AT) == "firing"


def test_due_a_new_firing_after_an_old_notification_is_sent() -> None:
    refired = AlertState("uptime/page-1h-5m", "firing", AT, AT, notified=(("hook", AT - 60 * M),))
    assert due(refired, AT) == "firing"


def test_due_resolved_only_if_the_firing_was_notified() -> None:
    resolved = AlertState("uptime/page-1h-5m", "resolved", AT, AT, AT + 10 * M)
    assert due(resolved, AT + 10 * M) is None  # nobody was told it fired
    told = resolved.with_notified("hook", AT)
    assert due(told, AT + 10 * M) == "resolved"
    assert due(told, AT + 10 * M, send_resolved=False) is None
    done = told.with_notified("hook", AT + 10 * M)
    assert due(done, AT + 11 * M) is None
    assert due(done, AT + timedelta(days=1)) is None  # resolved alerts are never repeated


def test_due_alertmanager_is_refreshed_every_evaluation() -> None:
    told = AlertState("uptime/page-1h-5m", "firing", AT, AT, notified=(("hook", AT),))
    assert due(told, AT + M, refresh=True) == "firing"
    assert due(told, AT + M) is None
    resolved = AlertState("uptime/page-1h-5m", "resolved", AT, AT, AT + M, (("hook", AT),))
    assert due(resolved, AT + M, refresh=True) == "resolved"


def test_due_nothing_for_inactive_or_pending() -> None:
    for status in ("inactive", "pending"):
        assert due(AlertState("uptime/page-1h-5m", status, since=AT), AT) is None  # type: ignore[arg-type]


# --- rules.slo_rules ------------------------------------------------------------------------


def test_workbook_rules_for_thirty_days() -> None:
    rules = slo_rules(SPEC.slo("uptime"), SPEC.bucket)
    assert [(r.name, r.severity, r.burn_rate) for r in rules] == [
        ("page-1h-5m", "page", 14.4),
        ("page-6h-30m", "page", 6.0),
        ("ticket-1d-2h", "ticket", 3.0),
        ("ticket-3d-6h", "ticket", 1.0),
        ("exhausted", "ticket", None),
        ("absent", "page", None),
    ]
    assert all(r.for_ == timedelta(0) for r in rules)
    assert rules[0].key == "uptime/page-1h-5m"
    # uptime and freshness have absent_after by default; accuracy and fairness do not
    assert len(spec_rules(SPEC)) == 4 * 5 + 2


def test_workbook_rules_scale_to_a_seven_day_window() -> None:
    spec = parse_spec("""
service: s
slos:
  - {name: weekly, dimension: availability, objective: {target: 0.99}, window: 7d}
  - {name: weekly5, dimension: availability, objective: {target: 0.99}, window: 7d}
  - {name: month, dimension: availability, objective: {target: 0.99}, window: month}
""")
    weekly = slo_rules(spec.slo("weekly"), spec.bucket)
    # every window times 7/30, rounded to whole 1-minute buckets (5m -> 1.17m -> 1m)
    assert [(r.long, r.short) for r in weekly[:4]] == [
        (timedelta(minutes=14), timedelta(minutes=1)),
        (timedelta(minutes=84), timedelta(minutes=7)),
        (timedelta(minutes=336), timedelta(minutes=28)),
        (timedelta(minutes=1008), timedelta(minutes=84)),
    ]
    assert [r.name for r in weekly] == [
        "page-14m-1m",
        "page-1h24m-7m",
        "ticket-5h36m-28m",
        "ticket-16h48m-1h24m",
        "exhausted",
        "absent",
    ]
    assert [r.burn_rate for r in weekly[:4]] == [14.4, 6.0, 3.0, 1.0]  # thresholds do not scale
    assert rule_windows(spec.slo("weekly"), spec.bucket) == {
        timedelta(minutes=m) for m in (14, 1, 84, 7, 336, 28, 1008)
    }
    # with 5-minute buckets no window is shorter than one bucket
    coarse = slo_rules(spec.slo("weekly5"), timedelta(minutes=5))
    assert [(r.long, r.short) for r in coarse[:2]] == [
        (timedelta(minutes=15), timedelta(minutes=5)),
        (timedelta(minutes=85), timedelta(minutes=5)),
    ]
    # a calendar month counts as 30 days
    month = slo_rules(spec.slo("month"), spec.bucket)
    assert [r.name for r in month][:2] == ["page-1h-5m", "page-6h-30m"]


def test_custom_alerts_replace_the_workbook_scheme() -> None:
    spec = parse_spec("""
service: s
slos:
  - name: uptime
    dimension: availability
    objective: {target: 0.99}
    alerts:
      - {long: 2h, short: 10m, burn_rate: 10, for: 5m}
      - {long: 2d, short: 4h, burn_rate: 2, severity: ticket}
""")
    rules = slo_rules(spec.slo("uptime"), spec.bucket)
    assert [(r.name, r.severity, r.burn_rate, r.for_) for r in rules] == [
        ("page-2h-10m", "page", 10.0, timedelta(minutes=5)),
        ("ticket-2d-4h", "ticket", 2.0, timedelta(0)),
        ("exhausted", "ticket", None, timedelta(0)),
        ("absent", "page", None, timedelta(0)),
    ]
    assert rule_windows(spec.slo("uptime"), spec.bucket) == {
        timedelta(hours=2),
        timedelta(minutes=10),
        timedelta(days=2),
        timedelta(hours=4),
    }


def test_rules_that_scale_to_the_same_windows_collapse() -> None:
    """A 1-hour SLO window scales both page rules to 1m/1m: one rule is kept, the one with
    the lower threshold (it fires whenever the other would)."""
    spec = parse_spec("""
service: s
slos:
  - {name: hourly, dimension: availability, objective: {target: 0.99}, window: 1h}
""")
    rules = slo_rules(spec.slo("hourly"), spec.bucket)
    assert [(r.name, r.burn_rate) for r in rules] == [
        ("page-1m-1m", 6.0),
        ("ticket-2m-1m", 3.0),
        ("ticket-6m-1m", 1.0),
        ("exhausted", None),
        ("absent", None),
    ]
    assert len({r.key for r in rules}) == len(rules)


def absent_alert(status: str, last: datetime | None) -> Alert:
    r = rule("uptime", "absent")
    result = Check(r, status == "firing", None, None, None, 0, 0, 1.0, None, last)
    state = AlertState(r.key, status, AT - M, AT - M, AT if status == "resolved" else None)  # type: ignore[arg-type]
    return Alert(SPEC.service, SPEC.slo("uptime"), r, result, state, AT, SPEC.dashboard_url)


def test_an_absent_alert_says_since_when_and_for_how_long() -> None:
    firing = absent_alert("firing", AT - timedelta(hours=2))
    assert firing.summary() == "fraud-scoring: uptime has had no events since 2026-03-11T12:05:00Z"
    assert firing.description() == (
        "SLO uptime (availability: availability >= 99.9% over 30d) has had no events since "
        "2026-03-11T12:05:00Z, longer than its absent_after of 1h: records stopped arriving "
        "(the model server or its logging may be down), so its budget is not judged. "
        "Runbook: https://runbooks.example.com/fraud-scoring/uptime. "
        "Dashboard: https://mlslo.example.com/slo/uptime."
    )
    (sent,) = alertmanager_payload([("firing", firing)])
    assert {k: sent["labels"][k] for k in ("alertname", "rule", "severity")} == {
        "alertname": "MlsloEventsAbsent",
        "rule": "absent",
        "severity": "page",
    }
    assert sent["annotations"]["last_event"] == "2026-03-11T12:05:00Z"
    assert "burn_rate_long" not in sent["annotations"]
    assert webhook_payload(SPEC.service, [("firing", firing)], AT)["alerts"][0]["last_event"] == (
        "2026-03-11T12:05:00Z"
    )
    never = absent_alert("firing", None)
    assert never.summary() == "fraud-scoring: uptime has had no events in its 30d window"
    resolved = absent_alert("resolved", AT)
    assert resolved.summary() == "fraud-scoring: uptime has events again"
    assert resolved.description().startswith(
        "SLO uptime (availability: availability >= 99.9% over 30d) receives events again; "
        "its budget is judged again."
    )


def test_a_resolved_notification_does_not_say_the_budget_is_burning() -> None:
    kind, alert = notifications()[2]
    assert (kind, alert.state.status) == ("resolved", "resolved")
    texts = {
        "summary": alert.summary(),
        "description": alert.description(),
        "slack": slack_payload(SPEC.service, [(kind, alert)], AT)["text"],
        "alertmanager": alertmanager_payload([(kind, alert)])[0]["annotations"]["summary"],
    }
    assert not {k: t for k, t in texts.items() if "is burning" in t}
