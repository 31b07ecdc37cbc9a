"""Toy problems: two moons (Part 1) and Gaussian condition toys (Part 2), with the tutorial
code and its plots."""
