"""The algorithm: config, the training loop and its pieces (replay, losses, networks,
exploration, evaluation, random keys). Nothing here knows about devices, files or the CLI.
"""
