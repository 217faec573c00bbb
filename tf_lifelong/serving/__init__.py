"""The SavedModel export and its named serving signatures."""
