"""Operations without learned weights: colour conversion, linear filters, windows, tiled inference.

The bottom layer of moewir: it imports nothing else from the package, and metrics, synthesis,
distillation, training and inference take their helpers from here. Each convention (luma
weights, border handling, kernel radius, summation method, tile overlap) is an argument the
caller states.
"""
