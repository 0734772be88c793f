"""Trained generators on new images: tiled inference (`apply`), TorchScript/ONNX export, model cards."""
