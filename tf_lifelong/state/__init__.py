"""What a run keeps on disk: checkpoints, the workdir and its resume, atomic files."""
