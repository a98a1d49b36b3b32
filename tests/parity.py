"""The spec the parity tests evaluate on every engine and every kind of source: each
dimension, percentiles, an estimated and a macro-averaged metric, an intersectional
fairness SLO."""

SPEC = """
service: parity
slos:
  - {name: uptime, dimension: availability, objective: {target: 0.999}, window: 3d}
  - name: latency
    dimension: latency
    sli: {latency_threshold: 250ms}
    objective: {target: 0.99}
    window: 3d
  - name: latency-p99
    dimension: latency
    sli: {percentile: 99}
    objective: {target: 400ms}
    window: 3d
  - name: freshness
    dimension: freshness
    sli: {lag_threshold: 15m}
    objective: {target: 0.95}
    window: 3d
  - name: lag-p95
    dimension: freshness
    sli: {percentile: 95}
    objective: {target: 20m}
    window: 3d
  - name: f1
    dimension: accuracy
    sli: {metric: f1, estimate: cbpe}
    objective: {target: 0.9}
    window: 3d
    filter: {model_version: v2}
  - name: macro-recall
    dimension: accuracy
    sli: {metric: recall, average: macro, classes: [0, 1]}
    objective: {target: 0.8}
    window: 3d
  - name: mae
    dimension: accuracy
    sli: {metric: mae}
    objective: {target: 0.5}
    window: 3d
  - name: fairness
    dimension: fairness
    sli: {metric: equalized_odds_difference, attribute: [group, region]}
    objective: {target: 0.1}
    window: 3d
"""
