"""Image operations without learned weights (colour conversion, linear filters, windows).

The bottom layer of moewir: it imports nothing else from the package, and metrics, synthesis,
distillation and training take their helpers from here. Each convention (luma weights, border
handling, kernel radius, summation method) is an argument the caller states.
"""
