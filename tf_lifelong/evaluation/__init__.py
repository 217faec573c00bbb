"""Measuring a learner: test-set evaluation, the R matrix, sampling metrics."""
