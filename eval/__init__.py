"""Evaluation of sagan_tf generators: Inception score, FID and KID (TF-GAN metrics).

Modules:

* ``tfgan_compat``: TF-GAN's metric code on TF 2.21 (its package cannot be imported);
* ``inception``: the TF-GAN Inception network behind a callable interface;
* ``metrics``: streamed statistics of classifier outputs and the metric values;
* ``features``: classifier outputs of image sets, batched across replicas;
* ``real_stats``: real-image statistics, cached per protocol;
* ``sampling``: seeded class-conditional samples from a generator;
* ``grids``: truncated samples, latent and class interpolation grids;
* ``sample_files``: the PNG/.npz/attention files of a checkpoint (launch.sample);
* ``evaluate``: the evaluation protocol, result files, summaries, watch mode;
* ``testing``: a tiny stand-in classifier for tests.
"""
