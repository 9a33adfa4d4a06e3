"""Capture: the hooks and their one owner, and the records they build of a pass (calls,
tensor descriptions and statistics, gradients, the caller's context), while the user's
program runs."""
