"""The layers: SN convolution, dense and embedding, batch norms and their moments, self-attention, replica-local weights."""
