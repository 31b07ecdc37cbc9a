"""EIC KLM photon hit time: data schema, readers, synthetic timing model, conditional spline
flow training, physical-support sampling and context-binned validation."""
