"""Calorimeter showers: the CaloGAN layout reader and writer, CaloFlow preprocessing, the
synthetic stand-in, shower observables and the comparison report."""
