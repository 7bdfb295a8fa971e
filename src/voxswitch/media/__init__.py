"""Media: RTP/RTCP packet cores, DTMF and call-quality estimates, all sans-I/O."""
