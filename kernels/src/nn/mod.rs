//! Neural-network models that run on the kernels: the BERT sentence encoder.
