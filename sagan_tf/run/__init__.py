"""The run directory: its paths, its lock, checkpoints and their safe saves and restores, and the run state a checkpoint holds."""
