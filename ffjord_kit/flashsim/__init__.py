"""FlashSim-style fast simulation: conditional spline flows from gen-level to reco-level jets
and muons (schemas, preprocessing, HDF5 reader, synthetic data, training, generation,
validation)."""
