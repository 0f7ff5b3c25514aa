"""Faces as data: reading and writing images, CelebA-format face folders, synthetic faces, TFRecord shards, and
the training input pipeline over either.

Imports `base`, and `host` to call the face-detector plugins (`align`).
"""
