"""Image data: MNIST readers and preprocessing, and the offline 8x8 digits."""
