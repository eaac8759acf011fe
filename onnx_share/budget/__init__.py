"""The budget search: every weight's scheme, bits and granularity chosen to meet a size, bits or loss budget."""
