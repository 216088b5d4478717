"""The debiasing baselines the paper compares (one module per method)."""
