"""Training: data sets, autograd VAE family, LiBI, evaluation and experiments."""
