"""Training: one loop (engine), tasks, augmentation, metrics; plain PyTorch, no Ray."""
