"""Training: the losses, the per-replica step, the loop, its summaries and the XLA choice."""
