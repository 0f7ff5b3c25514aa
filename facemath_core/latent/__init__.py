"""Faces as vectors: the latents file, latents joined with attribute labels, the expression language of `facemath
math` and its evaluator, attribute vectors, matched exemplars, worked examples and the oracle's scoring of edits
and analogies.

Imports `serving`, `models`, `data`, `host` and `base` (never `projection`: arithmetic works on any latents file).
"""
