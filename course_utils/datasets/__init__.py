"""One module per dataset: a torch Dataset over the real on-disk layout and the writer of its
synthetic twin in that same layout."""
