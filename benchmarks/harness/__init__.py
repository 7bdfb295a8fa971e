"""What the benchmarks share: CPU and socket accounting from /proc (`proc`), starting and stopping
the servers under test (`servers`), py-spy profiles and their summaries (`profiling`), and the
machine a run was on (`machine`)."""
