"""The PBX's own record: Asterisk's ``queue_log``, read as evidence (issue 20).

- ``queue_log``: the file's line format, parsed (pure).
- ``tail``: reading the file on the PBX's host from a kept offset, through
  rotation and truncation, in bounded chunks (blocking reads, run off the
  event loop by the caller).

What is done with the evidence (no callback for a citizen the PBX saw
answered, a missed call for one it saw abandon) is the callback's business:
``ivr.callback.pbx_record``.
"""
