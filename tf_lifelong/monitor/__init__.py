"""What a person watches: the progress lines and the TensorBoard summaries."""
