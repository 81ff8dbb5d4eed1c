"""The input: the training pipeline, its resumable order, the image sources (digits, TFRecords, TFDS) and the TFRecord reader."""
