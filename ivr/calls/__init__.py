"""One call from the FastAGI connection to its end (``service.py``): the flow
version it runs on, the facts its conditions read, its summary written for the
missed-call capture and the reports."""
