"""The math: activations, losses, layers (each with its hand-derived backward), the
`Sequential` model and `MLP`, the finite-difference `gradcheck` and the gradient-flow
diagnostics. Written only against the Array API namespace; imports nothing from training, the
application or the scikit-learn front end (data's host RNG is the one thing it uses below it).
"""
