"""llamadeck's HTTP API: Ollama's (and OpenAI's) JSON shapes over the one engine facade.

    from api.app import create_app
    app = create_app(Engine())          # an ASGI app; ``api.server.serve`` runs it on uvicorn

A front end like the TUI: it imports only the ``engine`` package itself.
"""
