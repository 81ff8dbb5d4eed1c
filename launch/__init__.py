"""Command-line launchers (absl flags); the logic lives in sagan_tf."""
