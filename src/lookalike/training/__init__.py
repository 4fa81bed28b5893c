"""Learning embeddings from the user's own images: a convolutional autoencoder (no labels), a
projection head trained with triplet loss (labelled folders) and a bag-of-visual-words
vocabulary. PyTorch is imported only by the modules that train networks."""
