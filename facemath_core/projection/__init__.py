"""Finding z for an image: the projector (one compiled step over plugin loss terms), a projection run from images
to a result folder, settings and presets, outlier flags and bulk shards.

Imports `latent` (it writes latents files) and everything below it.
"""
