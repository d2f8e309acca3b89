"""HTTP routes: thin handlers over api.submission, the job store and the views. Each takes
what it needs as typed dependencies (api/deps.py: ``Context``, ``Owner``, ``IdempotencyKey``)."""
