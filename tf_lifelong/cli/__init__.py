"""absl entry points: parse flags, call the library, nothing else."""
