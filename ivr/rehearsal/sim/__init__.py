"""The simulated Asterisk: plays the PBX over the real sockets (the FastAGI
client side here), answering every command the way Asterisk 22 does in the
transcripts under tests/fixtures/asterisk-22/ (facts in its README.md)."""
