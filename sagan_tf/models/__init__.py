"""The networks: per-size architecture tables, the generator, the discriminator, building both, and the EMA generator."""
