"""Prompts: what citizens hear.

    announcements.py  the announcement sets of ``prompts/announcements.yaml``
    audio.py          uploads converted to Asterisk's 8 kHz mono WAV (in a child process)
    tts.py            draft prompts spoken by espeak-ng
"""
