"""The comparison report, the trade-off plot and the curated metrics."""
