"""``lofi studio``: a local web page over the engine (generate, listen, regenerate, download).

``library`` keeps the song folders and refuses paths that would leave them, ``tasks`` holds the
work a job does, ``jobs`` runs jobs in a worker process, ``app`` is the FastAPI app with the JSON
API under ``/api`` and the page in ``static/``, ``server`` starts uvicorn.
"""
