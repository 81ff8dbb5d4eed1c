"""Evaluation of sagan_tf generators: Inception score, FID and KID (TF-GAN metrics).

Modules: ``tfgan_compat`` (TF-GAN's metric code on TF 2.21), ``inception`` (the
TF-GAN Inception network behind a small callable interface), ``metrics``
(streaming statistics and the metric values), ``real_stats`` (cached real-image
statistics), ``sampling`` (class-conditional samples from a generator) and
``evaluate`` (the evaluation protocol, results files and summaries).
"""
