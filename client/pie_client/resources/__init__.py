"""One module per resource; each class groups the operations on it."""
