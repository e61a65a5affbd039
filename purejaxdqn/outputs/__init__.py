"""What a run leaves behind and what reads it: results folders, statistics, TensorBoard,
saved policies (eval, render) and plots.
"""
