"""Training: the shared core, the objectives and shared-prefix packing."""
