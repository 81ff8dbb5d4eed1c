"""Evaluation of sagan_tf generators: Inception score, FID and KID (TF-GAN metrics).

Modules:

* ``tfgan_compat``: TF-GAN's metric code on TF 2.21 (its package cannot be imported);
* ``inception``: the TF-GAN Inception network behind a callable interface;
* ``metrics``: streamed statistics of classifier outputs and the metric values;
* ``features``: classifier outputs of image sets, batched across replicas;
* ``manifold``: precision/recall, density/coverage, per-class moments, intra-FID;
* ``real_stats``: real-image statistics (global and per class), cached per protocol;
* ``sampling``: seeded class-conditional samples from a generator;
* ``grids``: truncated samples, latent and class interpolation grids;
* ``sample_files``: the PNG/.npz/attention files of a checkpoint (launch.sample);
* ``evaluate``: the evaluation protocol of a checkpoint or generator, watch mode;
* ``results``: result JSON and TensorBoard scalars in a workdir, per BN mode;
* ``image_sets``: two .npz image sets compared (``launch.eval --images_a/b``);
* ``train_eval``: evaluation during training (``eval_every``);
* ``testing``: a tiny stand-in classifier for tests.
"""
