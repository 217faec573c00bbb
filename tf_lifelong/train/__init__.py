"""The learner and its loop: hand-over, one interval's training, task-free detection."""
