"""The official TF1 checkpoints: the name map and the conversion into a sagan_tf workdir."""
