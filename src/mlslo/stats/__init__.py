"""Rollups and what they hold: sufficient statistics per bucket and slice, timelines with
prefix sums, log-bucketed histograms and confidence intervals. Pure."""
