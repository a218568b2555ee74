"""The configuration staff edit outside the flows, as one set that is always
valid as a whole:

    texts.py   which files belong to it, read from disk as path -> text, and
               the whole set checked at once (every file against the others
               and against the flows in force)
    store.py   every file's versions in Redis (who, when, a note), the set in
               force (the last good configuration) and its audit log

``ivr.services.config`` is where a change is checked, written and recorded;
the engine starts on the files, or on the last good set when they are broken.
"""
