"""The ground floor: what every layer may use and what imports nothing else of facemath.

The error type and exit codes, atomic files and folders, a quiet TensorFlow import, the names of models,
signatures and tensors (the serving API, named once), per-image seeds, metrics, Markdown tables and the drawing
helpers of every figure. Modules here import only the standard library, numpy, Pillow and (inside functions)
TensorFlow.
"""
