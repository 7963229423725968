"""The study's experiments, each a function that trains what it needs and writes figures + numbers."""
