"""What the benchmarks share: CPU and socket accounting from /proc (`proc`), starting and stopping
the servers under test (`servers`), py-spy profiles and their summaries (`profiling`), and the
machine a run was on (`machine`); for the SIPp ladders, one step run and judged, and the rate ladder
(`steps`), their command-line options (`options`) and chart panels (`charts`)."""
