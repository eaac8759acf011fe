"""Deployment targets: static checks of what each runtime rejects, and TensorRT engine builds via Polygraphy."""
