"""Detection: the Detector interface, the ONNX backend, sliced inference and seam merging."""
