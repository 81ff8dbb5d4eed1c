"""Using a trained generator: BN statistics at inference, sampling and grids, sample files, attention maps, the SavedModel export."""
