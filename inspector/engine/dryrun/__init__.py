"""Dry runs: `inspector.check` on fake tensors, on isolated state (nothing of the user's is
written), with real integer inputs."""
