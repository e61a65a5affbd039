"""The runtime: runs any training program on every device in compiled chunks, with memory
plans, the traced-program cache, checkpoints, progress, sweeps and experiments. It asks a
program what it can do and never which algorithm or environment it runs.
"""
