"""The machine and the fit: memory estimates, quant choice, GPU probing, the layer planner."""
