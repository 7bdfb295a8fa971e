"""Voice: TTS, STT, VAD and the agent loop. Works on PCM frames and knows nothing of SIP."""
